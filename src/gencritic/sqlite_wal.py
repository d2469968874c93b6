"""Open a SQLite file in WAL mode safely when several processes open it at once.

Why this module: switching a file to WAL needs an exclusive lock, and SQLite answers
"database is locked" at once, without calling its busy handler, while another connection
holds a write lock on the file (e.g. a second process creating the same new database).
Two ``generate run`` processes started together failed that way in CI, and the shared
embedding cache is opened by every scoring process. The switch is retried until a deadline.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from gencritic.errors import InputError

BUSY_TIMEOUT_S = 60.0


def connect_wal(path: Path, *, timeout_s: float = BUSY_TIMEOUT_S, check_same_thread: bool = True,
                what_to_do: str = "stop the other process or use another location") -> sqlite3.Connection:
    """An autocommit connection to ``path`` in WAL mode, with a busy timeout of ``timeout_s``."""
    conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=check_same_thread)
    try:
        _enable_wal(conn, path, timeout_s, what_to_do)
    except BaseException:
        conn.close()
        raise
    return conn


def _enable_wal(conn: sqlite3.Connection, path: Path, timeout_s: float, what_to_do: str) -> None:
    deadline = time.monotonic() + timeout_s
    delay = 0.01
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise InputError(f"{path} stayed locked for {timeout_s:.0f} s by another process; "
                                 f"{what_to_do}") from exc
            time.sleep(delay)
            delay = min(delay * 2, 0.2)
            continue
        if str(mode).lower() != "wal":
            raise InputError(f"{path}: SQLite refused WAL mode (got {mode!r}); keep this file on a "
                             f"local disk (network file systems cannot share WAL)")
        return
