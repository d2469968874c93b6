"""Look after the on-disk caches: what they hold, and removing what is no longer wanted.

Why a command for it: the render cache grows by one file per (asset, render settings), the
embedding cache by one row per (image, model); a Toys4k run leaves ~3,000 renders behind, and
nothing removes them. Before the zstd format (``render/cache.py``), renders were a folder of
PNGs per entry; such folders are never read again and only ``prune`` deletes them.

Everything here is safe beside a running scoring job: render entries are whole files replaced
atomically (a job that loses one renders that asset again), the embedding cache is emptied
through SQLite (not by deleting its file under an open connection), and temporary files are
only removed once they are an hour old, so a write in flight is never pulled away.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gencritic.cache import EmbeddingCache
from gencritic.errors import InputError
from gencritic.kvstore import KeyValueFile

RENDER_SUFFIX = ".gcr"
VLM_ANSWERS_FILE = "vlm_answers.sqlite"  # the VLM judges' answer cache (models/vlm_cache.py)
VLM_ANSWERS_TABLE = "answers"
TEMP_PREFIX = ".tmp-"
STALE_TEMP_S = 3600.0  # a temporary file untouched this long belongs to a process that died


@dataclass
class Tally:
    """A count of entries and the bytes they take on disk."""

    count: int = 0
    bytes: int = 0

    def add(self, size: int) -> None:
        self.count += 1
        self.bytes += size


@dataclass
class CacheReport:
    """What a cache root holds (``inspect_cache``) or what was removed from it (``prune_cache``)."""

    root: str
    renders: Tally = field(default_factory=Tally)
    legacy_render_folders: Tally = field(default_factory=Tally)
    temporaries: Tally = field(default_factory=Tally)
    embeddings: Tally = field(default_factory=Tally)  # rows, and the SQLite files' size
    conversions: Tally = field(default_factory=Tally)  # .blend files converted to GLB (mesh/blend.py)
    vlm_answers: Tally = field(default_factory=Tally)  # rows, and the SQLite files' size
    remote: Tally = field(default_factory=Tally)  # objects fetched from addresses (io/fetch.py), by content

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _tree_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _render_dir(root: Path) -> Path:
    return root / "renders"


def _walk_conversions(root: Path) -> Iterator[tuple[str, Path, int, float]]:
    """(kind, path, bytes, mtime) of each .blend conversion ('conversion': its GLB and manifest
    together) and each staging folder ('temp') under ``root/blend``."""
    folder = root / "blend"
    if not folder.is_dir():
        return
    for entry in sorted(folder.iterdir()):
        try:
            st = entry.stat()
            if entry.name.startswith(".staging-") and entry.is_dir():
                yield "temp", entry, _tree_size(entry), st.st_mtime
            elif entry.is_dir():
                for glb in sorted(entry.glob("*.glb")):
                    manifest = glb.with_suffix(".json")
                    size = glb.stat().st_size + (manifest.stat().st_size if manifest.exists() else 0)
                    yield "conversion", glb, size, glb.stat().st_mtime
        except FileNotFoundError:  # removed by a concurrent run
            continue


def _walk_remote(root: Path) -> Iterator[tuple[str, Path, int, float]]:
    """(kind, path, bytes, mtime) under ``root/remote``: each fetched 'object', each asset 'tree'
    (hard links to objects: no bytes of its own) and each download or tree in progress ('temp')."""
    from gencritic.io.fetch import REMOTE_DIR

    for sub, kind in (("objects", "object"), ("trees", "tree")):
        folder = root / REMOTE_DIR / sub
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            try:
                if entry.name.startswith("."):  # a download (.fetch-*.tmp) in progress or left by a dead process
                    st = entry.stat()
                    yield "temp", entry, _tree_size(entry) if entry.is_dir() else st.st_size, st.st_mtime
                    continue
                for item in sorted(entry.iterdir()) if entry.is_dir() else []:
                    st = item.stat()
                    if item.name.startswith("."):
                        yield "temp", item, _tree_size(item) if item.is_dir() else st.st_size, st.st_mtime
                    else:
                        yield kind, item, st.st_size if kind == "object" else 0, st.st_mtime
            except FileNotFoundError:  # removed by a concurrent run
                continue


def _sqlite_files(base: Path) -> list[Path]:
    """The database file and its WAL side files, those that exist."""
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-shm")) if p.exists()]


def _embedding_files(root: Path) -> list[Path]:
    return _sqlite_files(root / "embeddings.sqlite")


def _vlm_answers(root: Path, clear: bool = False) -> Tally:
    """Rows and bytes of the VLM answer cache; with ``clear``, its rows are deleted through SQLite."""
    files = _sqlite_files(root / VLM_ANSWERS_FILE)
    if not files:
        return Tally()
    size = sum(p.stat().st_size for p in files)
    store = KeyValueFile(root / VLM_ANSWERS_FILE, {VLM_ANSWERS_TABLE: "value TEXT NOT NULL"})
    try:
        tally = Tally(store.count(VLM_ANSWERS_TABLE), size)
        if clear:
            store.clear(VLM_ANSWERS_TABLE)
    finally:
        store.close()
    return tally


def _walk_renders(render_dir: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(kind, path, stat) for every entry under the render cache: 'render', 'legacy' or 'temp'."""
    if not render_dir.is_dir():
        return
    for shard in sorted(render_dir.iterdir()):
        if not shard.is_dir():
            continue
        for entry in sorted(shard.iterdir()):
            try:
                st = entry.stat()
            except FileNotFoundError:  # removed by a concurrent run
                continue
            if entry.name.startswith(TEMP_PREFIX):
                yield "temp", entry, st
            elif entry.is_dir():
                yield "legacy", entry, st  # <key>/NNN.png + meta.json, the first format
            elif entry.suffix == RENDER_SUFFIX:
                yield "render", entry, st


def _check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise InputError(f"cache location {root} is a file, not a folder: pass the folder given to --cache-dir")


def inspect_cache(root: Path) -> CacheReport:
    """Count what ``root`` (the ``--cache-dir`` folder) holds, without changing anything."""
    _check_root(root)
    report = CacheReport(str(root))
    for kind, path, st in _walk_renders(_render_dir(root)):
        if kind == "render":
            report.renders.add(st.st_size)
        elif kind == "legacy":
            report.legacy_render_folders.add(_tree_size(path))
        else:
            report.temporaries.add(_tree_size(path) if path.is_dir() else st.st_size)
    for kind, _, size, _ in _walk_conversions(root):
        (report.conversions if kind == "conversion" else report.temporaries).add(size)
    for kind, _, size, _ in _walk_remote(root):
        if kind == "object":
            report.remote.add(size)
        elif kind == "temp":
            report.temporaries.add(size)
    files = _embedding_files(root)
    if files:
        cache = EmbeddingCache(root / "embeddings.sqlite")
        try:
            report.embeddings.count = cache.row_count()
        finally:
            cache.close()
        report.embeddings.bytes = sum(p.stat().st_size for p in _embedding_files(root))
    report.vlm_answers = _vlm_answers(root)
    return report


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def prune_cache(root: Path, unused_days: float | None = None, dry_run: bool = False,
                now: float | None = None) -> CacheReport:
    """Remove old-format render folders, temporaries left by dead processes and, with
    ``unused_days``, render entries not read or written for that many days (a hit refreshes an
    entry's time). Returns what was (or, with ``dry_run``, would be) removed."""
    _check_root(root)
    if unused_days is not None and not unused_days >= 0:
        raise InputError(f"--unused-days must be 0 or more, got {unused_days}")
    now = time.time() if now is None else now
    removed = CacheReport(str(root))
    for kind, path, st in _walk_renders(_render_dir(root)):
        if kind == "legacy":
            removed.legacy_render_folders.add(_tree_size(path))
        elif kind == "temp" and now - st.st_mtime > STALE_TEMP_S:
            removed.temporaries.add(_tree_size(path) if path.is_dir() else st.st_size)
        elif kind == "render" and unused_days is not None and now - st.st_mtime > unused_days * 86400:
            removed.renders.add(st.st_size)
        else:
            continue
        if not dry_run:
            _remove(path)
    for kind, path, size, mtime in _walk_conversions(root):
        if kind == "temp" and now - mtime > STALE_TEMP_S:
            removed.temporaries.add(size)
            if not dry_run:
                _remove(path)
    for kind, path, size, mtime in _walk_remote(root):
        old = now - mtime > (STALE_TEMP_S if kind == "temp" else (unused_days or 0) * 86400)
        if not old or (kind != "temp" and unused_days is None):
            continue
        if kind == "object":
            removed.remote.add(size)
        elif kind == "temp":
            removed.temporaries.add(size)
        if not dry_run:  # an index entry whose object is gone is a miss: the object is fetched again
            _remove(path)
    return removed


def clear_cache(root: Path, renders: bool, embeddings: bool, dry_run: bool = False,
                conversions: bool = False, vlm_answers: bool = False, remote: bool = False) -> CacheReport:
    """Empty the render cache, the embedding cache, the .blend conversions, the VLM answer cache
    and/or the objects fetched from addresses under ``root``; returns what went."""
    _check_root(root)
    if not (renders or embeddings or conversions or vlm_answers or remote):
        raise InputError("say what to clear: --renders, --embeddings, --conversions, --vlm-answers, --remote, "
                         "or several")
    removed = CacheReport(str(root))
    if vlm_answers:
        removed.vlm_answers = _vlm_answers(root, clear=not dry_run)
    if remote:
        from gencritic.io.fetch import REMOTE_DIR

        if not dry_run:  # the index first: a lookup then misses instead of finding a file being removed
            shutil.rmtree(root / REMOTE_DIR / "index", ignore_errors=True)
        for kind, path, size, mtime in _walk_remote(root):
            if kind == "temp" and time.time() - mtime <= STALE_TEMP_S:
                continue  # a download in flight
            (removed.remote if kind == "object" else removed.temporaries if kind == "temp" else Tally()).add(size)
            if not dry_run:
                _remove(path)
    if conversions:
        for kind, path, size, mtime in _walk_conversions(root):
            if kind == "conversion":
                removed.conversions.add(size)
                if not dry_run:  # the manifest first: a GLB without one is never read
                    path.with_suffix(".json").unlink(missing_ok=True)
                    path.unlink(missing_ok=True)
            elif time.time() - mtime > STALE_TEMP_S:
                removed.temporaries.add(size)
                if not dry_run:
                    _remove(path)
    if renders:
        for kind, path, st in _walk_renders(_render_dir(root)):
            size = _tree_size(path) if path.is_dir() else st.st_size
            {"render": removed.renders, "legacy": removed.legacy_render_folders,
             "temp": removed.temporaries}[kind].add(size)
            if not dry_run and (kind != "temp" or time.time() - st.st_mtime > STALE_TEMP_S):
                _remove(path)
    if embeddings and _embedding_files(root):
        size = sum(p.stat().st_size for p in _embedding_files(root))
        cache = EmbeddingCache(root / "embeddings.sqlite")
        try:
            removed.embeddings = Tally(cache.row_count(), size)
            if not dry_run:
                cache.clear()
        finally:
            cache.close()
    return removed
