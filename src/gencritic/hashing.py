"""Content hashes of files (what caches, downloads and dataset checks key on) and the short id
of a settings mapping (what output folders are keyed on)."""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Any

CHUNK = 1 << 20


def sha256_file(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks (assets and downloads can be large).

    Remembered per file version (size, modification and change times, inode): one run asks for
    the same .blend's hash when it plans, hashes the asset and loads it, and a Toys4k .blend is
    megabytes."""
    st = os.stat(path)
    return _sha256(str(path), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


@functools.lru_cache(maxsize=8192)
def _sha256(path: str, _size: int, _mtime_ns: int, _ctime_ns: int, _inode: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def describe_settings(obj: Any) -> str:
    """Short stable id of a settings mapping, written in rows so two runs can be compared (and
    what resuming an output folder checks)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:12]
