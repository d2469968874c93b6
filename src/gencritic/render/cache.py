"""On-disk cache of rendered views keyed by (asset content, render settings).

One file per entry, ``<dir>/<key[:2]>/<key>.gcr``: a short header (magic, JSON with the meta
data and array shape) followed by the premultiplied RGBA views as one zstd frame.

Why not PNG files (the first format): Pillow's PNG encoder cost ~85 ms per asset (8 views at
512²) even at compression level 1, about 15% of a whole scoring run on a 2-core CPU, and reading
them back (~43 ms) was barely cheaper than rendering again. zstd level 1 writes the same views,
file included, in ~14 ms, reads them in ~5.5 ms, and the files are smaller (mostly empty
background compresses well).
Entries are written to a temporary file and renamed into place, so a reader never sees half an
entry and several threads or processes may render the same asset (the last rename wins; the
contents are identical). A damaged or foreign file is a miss: the asset is rendered again and
the entry rewritten. ``gencritic render`` still writes PNGs for people; this cache is internal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.atomic import atomic_open
from gencritic.cache import default_cache_dir

log = logging.getLogger("gencritic")

MAGIC = b"GCRENDER1\n"
_HEADER_LEN = struct.Struct("<I")
ZSTD_LEVEL = 1


def default_render_cache_dir() -> Path:
    return default_cache_dir() / "renders"


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as exc:
        raise RuntimeError(f"the render cache needs zstandard ({exc}): `pip install gencritic[render]`, "
                           f"or turn the cache off with --no-cache") from None
    return zstandard


class RenderCache:
    """Premultiplied RGBA views (V, H, W, 4) uint8 plus the render's meta data, per key."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_render_cache_dir()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.gcr"

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        zstd = _zstd()
        try:
            blob = self.path(key).read_bytes()
            if not blob.startswith(MAGIC):
                return None
            start = len(MAGIC) + _HEADER_LEN.size
            (header_len,) = _HEADER_LEN.unpack_from(blob, len(MAGIC))
            header = json.loads(blob[start:start + header_len])
            shape = tuple(int(n) for n in header["shape"])
            raw = zstd.ZstdDecompressor().decompress(blob[start + header_len:], max_output_size=int(np.prod(shape)))
            views = np.frombuffer(raw, dtype=np.uint8).reshape(shape)
        except (OSError, ValueError, KeyError, TypeError, struct.error, zstd.ZstdError):
            return None  # absent or damaged entry: render again (and overwrite it)
        # a hit marks the entry used (`gencritic cache prune --unused-days N` goes by this time);
        # a read-only cache still serves hits
        with contextlib.suppress(OSError):
            os.utime(self.path(key))
        return views, header["meta"]

    def put(self, key: str, views: np.ndarray, meta: dict[str, Any]) -> None:
        """Store (or replace) an entry. Callers put only after a miss, so an existing file is a
        damaged one, or a concurrent writer's identical copy: replacing it is right either way."""
        target = self.path(key)
        views = np.ascontiguousarray(views, dtype=np.uint8)
        header = json.dumps({"meta": meta, "shape": list(views.shape)}).encode()
        body = _zstd().ZstdCompressor(level=ZSTD_LEVEL).compress(views.data)
        try:  # a cache: no fsync (a file lost to a crash is rendered again); the umask decides who reads it
            with atomic_open(target, binary=True, prefix=".tmp-", suffix=".gcr", fsync=False) as f:
                f.write(MAGIC + _HEADER_LEN.pack(len(header)) + header)
                f.write(body)
        except OSError as exc:  # disk full, read-only cache folder...
            log.warning("render cache: cannot store %s (%s); the render is used uncached", target, exc)
