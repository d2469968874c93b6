"""On-disk embedding cache keyed by content, model and preprocessing.

Why SQLite: one file, atomic writes, safe with several processes (WAL), and a re-run that
finds every embedding here never decodes an image or touches the model. Keys are
``sha256(content) | backbone namespace`` (model id, preprocessing hash, precision, device
type), so renaming files is free and changing any setting that alters numbers misses.

Beside the vectors, a small ``facts`` table keeps what is known about a model without loading
it (its cache namespace, context length, the token count of a prompt: see
:mod:`gencritic.models.lazy`), which is how a re-run whose embeddings are all here never loads
a model.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from gencritic.sqlite_wal import connect_wal


def default_cache_dir() -> Path:
    env = os.environ.get("GENCRITIC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(base) / "gencritic"


class EmbeddingCache:
    """Vectors stored as float32 blobs. ``None`` path means a disabled (always-miss) cache."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.hits = 0
        self.misses = 0
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(path, check_same_thread=False,
                               what_to_do="stop the other run, or set GENCRITIC_CACHE_DIR / --cache-dir elsewhere")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS emb (key TEXT PRIMARY KEY, dim INTEGER, vec BLOB)")
            conn.execute("CREATE TABLE IF NOT EXISTS facts (key TEXT PRIMARY KEY, value TEXT)")
            self._conn = conn

    @classmethod
    def in_dir(cls, directory: Path | None) -> EmbeddingCache:
        return cls(None if directory is None else directory / "embeddings.sqlite")

    @staticmethod
    def key(content_sha256: str, namespace: str, kind: str) -> str:
        return f"{kind}|{content_sha256}|{namespace}"

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        if self._conn is None or not keys:
            self.misses += len(keys)
            return {}
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                for key, dim, blob in self._conn.execute(f"SELECT key, dim, vec FROM emb WHERE key IN ({marks})", chunk):
                    found[key] = np.frombuffer(blob, dtype=np.float32, count=dim).copy()
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, pairs: Iterable[tuple[str, np.ndarray]]) -> None:
        if self._conn is None:
            return
        rows = [(k, int(v.shape[-1]), np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in pairs]
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO emb (key, dim, vec) VALUES (?, ?, ?)", rows)
            self._conn.execute("COMMIT")

    def get_facts(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored facts (text) by key; absent keys are left out. Not counted as hits or misses."""
        if self._conn is None or not keys:
            return {}
        found: dict[str, str] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                found.update(self._conn.execute(f"SELECT key, value FROM facts WHERE key IN ({marks})", chunk))
        return found

    def put_facts(self, pairs: Iterable[tuple[str, str]]) -> None:
        if self._conn is None:
            return
        rows = list(pairs)
        if not rows:
            return
        with self._lock:
            self._conn.execute("BEGIN")
            self._conn.executemany("INSERT OR REPLACE INTO facts (key, value) VALUES (?, ?)", rows)
            self._conn.execute("COMMIT")

    def row_count(self) -> int:
        """Embeddings stored (0 for a disabled cache)."""
        if self._conn is None:
            return 0
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM emb").fetchone()[0])

    def clear(self) -> None:
        """Delete every embedding and give the space back to the disk. Safe while other
        processes have the file open (SQLite locks); deleting the file itself would not be."""
        if self._conn is None:
            return
        with self._lock:
            self._conn.execute("DELETE FROM emb")
            self._conn.execute("DELETE FROM facts")
            self._conn.execute("VACUUM")
            self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
