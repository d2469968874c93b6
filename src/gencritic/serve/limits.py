"""The one size check every endpoint and tool applies before anything is decoded.

Why: ``diagnose`` by path skipped the limits uploads had, and a 420 KB PNG whose header says
12000x12000 took the service from 1.6 GB to over 12 GB. Sizes are now read from headers only
(Pillow opens an image lazily; OpenCV reads a video's stream header; a mesh's size is its
file's) and checked against three limits, whatever the endpoint, the transport or whether
the input was uploaded or named by path:

* **bytes** of each file (``--max-upload-mb``, also the request body limit);
* **pixels** an input decodes to: width x height, times the frames the endpoint decodes (all
  frames of an animation or a folder for ``diagnose``, every view of a views folder, the first
  frame of a still);
* **frames** of an animation, video or folder (``--max-frames``).

Diagnostics keep several float copies of every pixel (about 155 bytes per pixel measured on a
still, 37 per pixel of each frame of a sequence), so the pixel limit is what bounds memory.
"""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from gencritic.errors import InputError
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, UNREAD_3D_EXTENSIONS
from gencritic.serve.errors import TooLarge, UnsupportedMedia

DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 2_097_152  # 2 Mpixel (Full HD fits): diagnose keeps ~155 B/pixel, so one request ~330 MB
DEFAULT_MAX_FRAMES = 1000
DEFAULT_MAX_MODELS = 4  # models and heads a service keeps loaded (serve/models.py; here so --help needs no torch)
VIDEO_SUFFIXES = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"})
IMAGE_FORMATS = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "gif": ".gif",
                 "mpo": ".jpg"}
READABLE = "PNG, JPEG, WebP, BMP, TIFF or GIF"


@dataclass(frozen=True)
class Limits:
    """The most one input may be: bytes per file, decoded pixels (all frames), frames."""

    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES

    def __post_init__(self) -> None:
        if min(self.max_bytes, self.max_pixels, self.max_frames) < 1:
            raise InputError(f"--max-upload-mb, --max-pixels and --max-frames must be positive (got "
                             f"{self.max_bytes} bytes, {self.max_pixels} pixels, {self.max_frames} frames)")


@dataclass(frozen=True)
class MediaSize:
    """What a header says: the format's suffix, one frame's size, and how many frames."""

    suffix: str
    width: int
    height: int
    frames: int = 1

    @property
    def pixels(self) -> int:
        return self.width * self.height * self.frames


def _over_bytes(name: str, size: int, limits: Limits) -> TooLarge:
    return TooLarge(f"{name} is {size:,} bytes: over this server's limit of {limits.max_bytes:,} bytes "
                    f"(--max-upload-mb)")


def check_bytes(name: str, size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise _over_bytes(name, size, limits)


def check_size(name: str, size: MediaSize, limits: Limits) -> None:
    """Frames first (a count says most), then decoded pixels; 413 naming the limit."""
    if size.frames > limits.max_frames:
        raise TooLarge(f"{name} has {size.frames:,} frames: over this server's limit of {limits.max_frames:,} "
                       f"frames (--max-frames)")
    if size.pixels > limits.max_pixels:
        frames = f" x {size.frames:,} frames" if size.frames > 1 else ""
        raise TooLarge(f"{name} is {size.width:,}x{size.height:,} pixels{frames} = {size.pixels:,} pixels: over "
                       f"this server's limit of {limits.max_pixels:,} pixels (--max-pixels)")


def image_header(source: Path | bytes, name: str, all_frames: bool, verify: bool = False) -> MediaSize:
    """Format, size and (with ``all_frames``) frame count from an image's header; nothing decoded.

    A file Pillow does not recognise is :class:`UnsupportedMedia`; one whose header claims more
    pixels than Pillow will ever open is :class:`TooLarge`. ``verify``: also Pillow's integrity
    check (PNG chunk checksums; nothing is decompressed).
    """
    from PIL import Image, UnidentifiedImageError

    fp: IO[bytes] | Path = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(fp) as img:
                fmt = (img.format or "").lower()
                width, height = img.size
                frames = int(getattr(img, "n_frames", 1)) if all_frames else 1
                if verify:
                    img.verify()
    except Image.DecompressionBombError:
        bomb = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        raise TooLarge(f"{name} is over {bomb:,} pixels (more than Pillow opens at all): over this server's pixel "
                       f"limit (--max-pixels)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        raise UnsupportedMedia(f"{name} is not a readable image ({type(exc).__name__}): send {READABLE}") from None
    suffix = IMAGE_FORMATS.get(fmt)
    if suffix is None:
        raise UnsupportedMedia(f"{name}: unsupported image format {fmt or 'unknown'!r}: send {READABLE}")
    return MediaSize(suffix, width, height, max(frames, 1))


def video_header(path: Path, name: str) -> MediaSize:
    """A video's frame size and count from its stream header (OpenCV); unknown counts are refused,
    since the limit could not hold."""
    try:
        import cv2
    except ImportError:  # the decoder says what to install when it runs; nothing is decoded here
        return MediaSize(path.suffix.lower(), 0, 0, 1)
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise UnsupportedMedia(f"{name}: OpenCV cannot open this video; convert it to MP4 (H.264) or a folder "
                                   f"of frames")
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    if frames <= 0 or width <= 0 or height <= 0:
        raise UnsupportedMedia(f"{name}: the video's header does not say its size and frame count, so this server "
                               f"cannot check its limits; convert it to MP4 (H.264) or a folder of frames")
    return MediaSize(path.suffix.lower(), width, height, frames)


def check_image_bytes(data: bytes, name: str, limits: Limits) -> str:
    """An uploaded still: bytes, then its header; returns the format's suffix."""
    if not data:
        raise UnsupportedMedia(f"{name} is empty: send an image file")
    check_bytes(name, len(data), limits)
    size = image_header(data, name, all_frames=False)
    check_size(name, size, limits)
    image_header(data, name, all_frames=False, verify=True)
    return size.suffix


def check_file(path: Path, name: str, limits: Limits, all_frames: bool) -> MediaSize:
    """One file named by path or uploaded: bytes, then what its header says."""
    check_bytes(name, path.stat().st_size, limits)
    suffix = path.suffix.lower()
    if suffix in MESH_EXTENSIONS | UNREAD_3D_EXTENSIONS:
        return MediaSize(suffix, 0, 0, 1)  # a mesh: its bytes are its size; views come from the server's rig
    if suffix in VIDEO_SUFFIXES:
        size = video_header(path, name)
    else:
        size = image_header(path, name, all_frames)
    check_size(name, size, limits)
    return size


def check_folder(path: Path, name: str, limits: Limits) -> None:
    """A folder of frames or views: the image files in it, all decoded, so all counted."""
    files = [p for p in path.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if len(files) > limits.max_frames:
        raise TooLarge(f"{name} holds {len(files):,} images: over this server's limit of {limits.max_frames:,} "
                       f"frames (--max-frames)")
    pixels = 0
    for f in files:
        pixels += check_file(f, f"{name}/{f.name}", limits, all_frames=False).pixels
        if pixels > limits.max_pixels:
            raise TooLarge(f"{name}: its {len(files):,} images hold over {limits.max_pixels:,} pixels together: "
                           f"over this server's limit (--max-pixels)")


def check_input(path: Path, name: str, limits: Limits, all_frames: bool) -> None:
    """The shared check for anything a request names: a file (image, animation, video, mesh) or a
    folder (frames, views). ``all_frames``: the endpoint decodes every frame of an animation."""
    if path.is_dir():
        check_folder(path, name, limits)
    else:
        check_file(path, name, limits, all_frames)
