"""On-disk cache of rendered views keyed by (asset content, render settings).

Why PNG files in a folder per key: lossless, readable by any tool when debugging, written
atomically (a temporary folder renamed into place), safe with several threads or processes
rendering the same asset (the first rename wins, the other copy is dropped).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gencritic.cache import default_cache_dir

log = logging.getLogger("gencritic")


def default_render_cache_dir() -> Path:
    return default_cache_dir() / "renders"


class RenderCache:
    """Premultiplied RGBA views stored as ``<dir>/<key[:2]>/<key>/NNN.png`` plus ``meta.json``."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_render_cache_dir()

    def _folder(self, key: str) -> Path:
        return self.directory / key[:2] / key

    def get(self, key: str) -> tuple[np.ndarray, dict[str, Any]] | None:
        folder = self._folder(key)
        meta_path = folder / "meta.json"
        try:
            meta = json.loads(meta_path.read_text())
            views = [np.asarray(Image.open(folder / f"{i:03d}.png").convert("RGBA"), dtype=np.uint8)
                     for i in range(int(meta["num_views"]))]
        except (OSError, ValueError, KeyError):
            return None  # absent or damaged entry: render again (and overwrite it)
        return np.stack(views), meta

    def put(self, key: str, views: np.ndarray, meta: dict[str, Any]) -> None:
        folder = self._folder(key)
        if (folder / "meta.json").exists():
            return
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=folder.parent))
        try:
            for i, view in enumerate(views):
                Image.fromarray(view, "RGBA").save(tmp / f"{i:03d}.png", compress_level=1)
            (tmp / "meta.json").write_text(json.dumps({**meta, "num_views": len(views)}, indent=1))
            if folder.exists():  # damaged earlier entry
                shutil.rmtree(folder, ignore_errors=True)
            os.replace(tmp, folder)
        except OSError as exc:  # another writer won the rename, or the disk is full
            if not (folder / "meta.json").exists():
                log.warning("render cache: cannot store %s (%s); the render is used uncached", folder, exc)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
