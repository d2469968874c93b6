"""Opening a shared SQLite file while another process initialises it must wait, not fail.

SQLite refuses a switch to WAL at once, without its busy handler, while another connection
holds a write lock on the file. Two ``generate run`` processes started together failed with
"database is locked" in CI; the embedding cache is opened by every scoring process the same way.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from gencritic.cache import EmbeddingCache
from gencritic.generate.tracker import Tracker
from tests.fake_csm import FakeClock


def _open_tracker(path: Path) -> sqlite3.Connection:
    tracker = Tracker(path, FakeClock())
    assert tracker.all() == []
    return tracker._conn


def _open_cache(path: Path) -> sqlite3.Connection:
    cache = EmbeddingCache(path)
    assert cache.get_many(["absent"]) == {}
    assert cache._store.conn is not None
    return cache._store.conn


@pytest.mark.parametrize("open_db", [_open_tracker, _open_cache], ids=["job-tracker", "embedding-cache"])
def test_opening_waits_for_another_process_that_holds_the_new_file(
        tmp_path: Path, open_db: Callable[[Path], sqlite3.Connection]) -> None:
    path = tmp_path / "shared.sqlite"
    other = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    other.execute("CREATE TABLE other_process_was_here (x)")
    other.execute("BEGIN IMMEDIATE")  # the lock the other process holds while it initialises
    probe = sqlite3.connect(str(path), timeout=5, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        probe.execute("PRAGMA journal_mode=WAL")  # the SQLite behaviour this guards against
    probe.close()
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    release.start()
    try:
        conn = open_db(path)
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        conn.close()
    finally:
        release.join()
        other.close()
    assert mode == "wal"
