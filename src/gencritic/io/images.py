"""Decode any image a user is likely to have into 8-bit RGB, or fail the item with a reason.

Why this is careful: a generator's output folder holds PNGs with alpha, 16-bit TIFFs,
CMYK JPEGs from a photo pipeline, phone photos with EXIF rotation and the odd truncated file.
Scoring a half-decoded or wrongly-rotated image is a silent wrong number, so every such case
is either converted by a documented rule or reported as a failed item.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gencritic.errors import ItemError

RGB = tuple[int, int, int]
WHITE: RGB = (255, 255, 255)


@dataclass(frozen=True)
class LoadedImage:
    """An image decoded to RGB plus what the pipeline needs to cache it."""

    rgb: Image.Image
    sha256: str
    alpha: np.ndarray | None  # float32 HxW in [0, 1] when the file had transparency


def parse_background(value: str | RGB) -> RGB:
    """Accept ``white``, ``black``, ``grey``, ``#rrggbb`` or ``r,g,b``."""
    if isinstance(value, tuple):
        return value
    named = {"white": WHITE, "black": (0, 0, 0), "grey": (128, 128, 128), "gray": (128, 128, 128)}
    text = value.strip().lower()
    if text in named:
        return named[text]
    try:
        if text.startswith("#") and len(text) == 7:
            return (int(text[1:3], 16), int(text[3:5], 16), int(text[5:7], 16))
        parts = [int(p) for p in text.split(",")]
        if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
            return (parts[0], parts[1], parts[2])
    except ValueError:
        pass
    raise ValueError(f"background {value!r} is not a colour: use white, black, grey, #rrggbb or r,g,b")


def read_file_bytes(path: Path, what: str = "image", allow_empty: bool = False) -> bytes:
    """Read a file for hashing and decoding; a missing, unreadable or (unless ``allow_empty``)
    empty file is an item error naming it. ``what``: ``image`` or ``mesh``, as the messages say."""
    noun = "file" if what == "image" else f"{what} file"
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ItemError(f"{noun} not found: {path}") from None
    except IsADirectoryError:
        raise ItemError(f"expected {'an' if what[0] in 'aeiou' else 'a'} {what} file but found a folder: {path}") from None
    except OSError as exc:
        raise ItemError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not data and not allow_empty:
        raise ItemError(f"{noun} is empty (0 bytes): {path}")
    return data


def decode_image(data: bytes, source: str, background: RGB = WHITE) -> tuple[Image.Image, np.ndarray | None]:
    """Decode bytes to RGB, honouring EXIF orientation and compositing alpha on ``background``."""
    img: Image.Image
    try:
        img = Image.open(io.BytesIO(data))
        img.load()  # force a full decode so a truncated file fails here, not later
    except UnidentifiedImageError:
        raise ItemError(f"not an image (unrecognised format): {source}") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ItemError(f"cannot decode image {source}: {exc}") from None
    # a broken EXIF block must not fail an otherwise good image
    with contextlib.suppress(Exception):
        img = ImageOps.exif_transpose(img) or img
    return to_rgb(img, background)


def to_rgb(img: Image.Image, background: RGB = WHITE) -> tuple[Image.Image, np.ndarray | None]:
    """Convert any PIL mode to RGB; return the alpha channel separately when there was one."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max(initial=0) > 255 else 255.0
        img = Image.fromarray(np.clip(arr / peak * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        scale = 255.0 if arr.max(initial=0) <= 1.0 else 1.0
        img = Image.fromarray(np.clip(arr * scale + 0.5, 0, 255).astype(np.uint8), "L")
    elif mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif mode in ("LA", "PA", "La") or mode == "RGBa":
        img = img.convert("RGBA")

    if img.mode == "RGBA":
        alpha = np.asarray(img.getchannel("A"), dtype=np.float32) / 255.0
        if alpha.min() >= 1.0:
            return img.convert("RGB"), None
        canvas = Image.new("RGB", img.size, background)
        canvas.paste(img.convert("RGB"), mask=img.getchannel("A"))
        return canvas, alpha
    if img.mode != "RGB":
        img = img.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV
    return img, None


def load_image(path: Path, background: RGB = WHITE) -> LoadedImage:
    """Read, hash and decode one image file."""
    data = read_file_bytes(path)
    rgb, alpha = decode_image(data, str(path), background)
    return LoadedImage(rgb=rgb, sha256=hashlib.sha256(data).hexdigest(), alpha=alpha)
