"""Key-value tables in a shared SQLite file: what the embedding cache and the VLM answer cache
are made of.

Why one module: both caches open a WAL file that several processes share, create their tables,
read many keys at once (in chunks SQLite accepts) and write many rows in one transaction, under
one lock per connection. Written once here, so a fix to one is a fix to both.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from gencritic.sqlite_wal import connect_wal

CHUNK = 500  # keys per SELECT: far below SQLite's limit on bound parameters


class KeyValueFile:
    """One SQLite file of key-value tables; ``None`` path: a disabled store that holds nothing."""

    def __init__(self, path: Path | None, tables: dict[str, str]) -> None:
        """``tables``: name -> the columns after ``key`` (``"dim INTEGER, vec BLOB"``)."""
        self.path = path
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = connect_wal(path, check_same_thread=False,
                               what_to_do="stop the other run, or set GENCRITIC_CACHE_DIR / --cache-dir elsewhere")
            conn.execute("PRAGMA synchronous=NORMAL")
            for name, columns in tables.items():
                conn.execute(f"CREATE TABLE IF NOT EXISTS {name} (key TEXT PRIMARY KEY, {columns})")
            self.conn = conn

    def select(self, table: str, columns: str, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """``(key, *columns)`` of the rows of ``table`` whose key is among ``keys``."""
        if self.conn is None or not keys:
            return
        with self.lock:
            rows: list[tuple[Any, ...]] = []
            for start in range(0, len(keys), CHUNK):
                chunk = list(keys[start:start + CHUNK])
                marks = ",".join("?" * len(chunk))
                rows.extend(self.conn.execute(f"SELECT key, {columns} FROM {table} WHERE key IN ({marks})", chunk))
        yield from rows

    def upsert(self, table: str, columns: str, rows: Iterable[tuple[Any, ...]]) -> None:
        """Insert or replace ``(key, *columns)`` rows in one transaction."""
        rows = list(rows)
        if self.conn is None or not rows:
            return
        marks = ",".join("?" * len(rows[0]))
        with self.lock:
            self.conn.execute("BEGIN")
            self.conn.executemany(f"INSERT OR REPLACE INTO {table} (key, {columns}) VALUES ({marks})", rows)
            self.conn.execute("COMMIT")

    def count(self, table: str) -> int:
        if self.conn is None:
            return 0
        with self.lock:
            return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def clear(self, table: str) -> None:
        """Delete every row of ``table`` through SQLite (safe beside another open connection)."""
        if self.conn is None:
            return
        with self.lock:
            self.conn.execute(f"DELETE FROM {table}")
            self.conn.commit()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
