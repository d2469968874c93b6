"""Read a frame sequence: a folder of frames, an animated GIF/WebP, or a video (MP4, WebM, MOV...).

Why one reader: temporal metrics must see the same frames in the same order whatever the
container. Folders are listed by :func:`gencritic.io.listing.list_folder` (the listing every
command uses), sorted *naturally* (``frame_2`` before ``frame_10``); frames with
alpha are composited on ``background`` (black by default: VFX renders are judged on black);
videos are decoded with OpenCV (``pip install gencritic[metrics]``), GIF/WebP with Pillow.
All frames must share one size; anything else is an :class:`~gencritic.errors.InputError`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

from gencritic.errors import InputError, ItemError
from gencritic.io.images import RGB, load_image, to_rgb
from gencritic.io.listing import FolderError, list_folder
from gencritic.items import IMAGE_EXTENSIONS

VIDEO_EXTENSIONS = frozenset({".mp4", ".webm", ".mov", ".avi", ".mkv", ".m4v"})
ANIMATED_EXTENSIONS = frozenset({".gif", ".webp", ".png", ".apng"})


@dataclass
class FrameSequence:
    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float | None  # None for a folder (unknown timing)
    source: str
    names: list[str]
    alphas: np.ndarray | None = None  # (T, H, W) float32 in [0, 1] when the frames had alpha

    def __len__(self) -> int:
        return int(self.frames.shape[0])


def _animated_frame_count(path: Path) -> int:
    try:
        with Image.open(path) as img:
            return int(getattr(img, "n_frames", 1))
    except Exception:
        return 1


def is_sequence(path: str | Path) -> bool:
    """True for a folder, a video file, or an image file with more than one frame."""
    p = Path(path)
    if p.is_dir():
        return True
    suffix = p.suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    return suffix in ANIMATED_EXTENSIONS and p.is_file() and _animated_frame_count(p) > 1


def _stack(frames: list[np.ndarray], alphas: list[np.ndarray | None], source: str, names: list[str],
           fps: float | None) -> FrameSequence:
    if not frames:
        raise InputError(f"no frames could be read from {source}; give a folder of images, a GIF or an MP4/WebM")
    sizes = {f.shape for f in frames}
    if len(sizes) > 1:
        raise InputError(f"frames of {source} differ in size ({', '.join(sorted(str(s[:2]) for s in sizes))}); "
                         f"resize them to one size first")
    alpha = None
    if any(a is not None for a in alphas):
        h, w = frames[0].shape[:2]
        alpha = np.stack([np.ones((h, w), np.float32) if a is None else a for a in alphas])
    return FrameSequence(np.stack(frames), fps, source, names, alpha)


def _from_folder(path: Path, background: RGB, max_frames: int | None) -> FrameSequence:
    # the one folder listing (io/listing.py): the same frames in the same order as `score` reads
    try:
        listing = list_folder(path, IMAGE_EXTENSIONS)
    except FolderError as exc:
        raise InputError(f"{exc}; check the path and its permissions") from None
    if listing.bad:  # a frame left out would change every temporal number: name it instead
        raise InputError(f"frames of {path} cannot all be read: {listing.bad_summary()}")
    files = listing.files
    if max_frames is not None:
        files = files[:max_frames]
    frames, alphas = [], []
    for f in files:
        try:
            loaded = load_image(f, background)
        except ItemError as exc:
            raise InputError(f"frame {f} cannot be read ({exc}); remove or fix it") from None
        frames.append(np.asarray(loaded.rgb, dtype=np.uint8))
        alphas.append(loaded.alpha)
    return _stack(frames, alphas, str(path), [f.name for f in files], None)


def _from_animated_image(path: Path, background: RGB, max_frames: int | None) -> FrameSequence:
    frames, alphas, durations = [], [], []
    i = 0
    try:
        with Image.open(path) as img:
            for i, frame in enumerate(ImageSequence.Iterator(img)):
                if max_frames is not None and i >= max_frames:
                    break
                durations.append(float(frame.info.get("duration", img.info.get("duration", 0)) or 0))
                rgb, alpha = to_rgb(frame.convert("RGBA"), background)
                frames.append(np.asarray(rgb, dtype=np.uint8))
                alphas.append(alpha)
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as exc:
        # a corrupt frame is the input's fault: say which, rather than a traceback (or a 500)
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise InputError(f"frame {i} of {path} cannot be decoded ({reason}); re-export the animation, or give "
                         f"its frames as a folder of images") from None
    positive = [d for d in durations if d > 0]
    fps = 1000.0 / float(np.median(positive)) if positive else None
    return _stack(frames, alphas, str(path), [f"{path.name}#{i}" for i in range(len(frames))], fps)


def _from_video(path: Path, max_frames: int | None) -> FrameSequence:
    try:
        import cv2
    except ImportError:
        raise InputError(f"reading {path.suffix} video needs OpenCV: pip install 'gencritic[metrics]' "
                         f"(or give a folder of frames / a GIF)") from None
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"OpenCV cannot open video {path}; convert it to MP4 (H.264) or a folder of frames")
    fps = float(cap.get(cv2.CAP_PROP_FPS)) or None
    frames: list[np.ndarray] = []
    try:
        while max_frames is None or len(frames) < max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        cap.release()
    return _stack(frames, [None] * len(frames), str(path), [f"{path.name}#{i}" for i in range(len(frames))], fps)


def load_frames(path: str | Path, background: RGB = (0, 0, 0), max_frames: int | None = None) -> FrameSequence:
    """Decode a sequence (see module docstring); a missing path is an InputError."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"input not found: {p}; give a folder of frames, a GIF/WebP or an MP4/WebM file")
    if p.is_dir():
        return _from_folder(p, background, max_frames)
    if p.suffix.lower() in VIDEO_EXTENSIONS:
        return _from_video(p, max_frames)
    return _from_animated_image(p, background, max_frames)
