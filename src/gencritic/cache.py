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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from gencritic.kvstore import KeyValueFile


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
        self._store = KeyValueFile(path, {"emb": "dim INTEGER, vec BLOB", "facts": "value TEXT"})
        self.hits = 0
        self.misses = 0

    @classmethod
    def in_dir(cls, directory: Path | None) -> EmbeddingCache:
        return cls(None if directory is None else directory / "embeddings.sqlite")

    @staticmethod
    def key(content_sha256: str, namespace: str, kind: str) -> str:
        return f"{kind}|{content_sha256}|{namespace}"

    def get_many(self, keys: Sequence[str]) -> dict[str, np.ndarray]:
        found = {key: np.frombuffer(blob, dtype=np.float32, count=dim).copy()
                 for key, dim, blob in self._store.select("emb", "dim, vec", keys)}
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, pairs: Iterable[tuple[str, np.ndarray]]) -> None:
        if self._store.conn is None:
            return
        self._store.upsert("emb", "dim, vec", ((k, int(v.shape[-1]), np.ascontiguousarray(v, dtype=np.float32).tobytes())
                                               for k, v in pairs))

    def get_facts(self, keys: Sequence[str]) -> dict[str, str]:
        """Stored facts (text) by key; absent keys are left out. Not counted as hits or misses."""
        return {key: value for key, value in self._store.select("facts", "value", keys)}

    def put_facts(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._store.upsert("facts", "value", pairs)

    def row_count(self) -> int:
        """Embeddings stored (0 for a disabled cache)."""
        return self._store.count("emb")

    def clear(self) -> None:
        """Delete every embedding and give the space back to the disk. Safe while other
        processes have the file open (SQLite locks); deleting the file itself would not be."""
        conn = self._store.conn
        if conn is None:
            return
        with self._store.lock:
            conn.execute("DELETE FROM emb")
            conn.execute("DELETE FROM facts")
            conn.execute("VACUUM")
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._store.close()
