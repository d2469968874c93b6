"""An output folder's journal: finished records appended durably, guarded by a settings fingerprint.

Layout inside the output folder::

    .gencritic/run.json        {"fingerprint": ...}: the settings the results were made with
    .gencritic/journal.jsonl   append-only log of finished records (the resume authority)

Each record is a JSON object with ``record["item"]["item_id"]``; the rest is the caller's
(:mod:`gencritic.scoring.journal` keeps scoring's typed records in it, ``compare3d`` and
``meshcheck`` their rows). The journal is appended and fsynced after every batch, so a crash or
Ctrl-C loses at most the batch in flight, and a torn last line is dropped on the next start.
Values are written losslessly (NaN and ±inf kept: :func:`gencritic.jsonio.journal_line`).
A folder holding results made with other settings is refused unless ``overwrite``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.errors import InputError
from gencritic.io.fsnames import CSV_ERRORS
from gencritic.io.tables import rows_to_csv
from gencritic.jsonio import dumps_strict, journal_line, parse_journal_line

__all__ = ["JOURNAL", "STATE_DIR", "Journal", "read_journal"]

JOURNAL = "journal.jsonl"
STATE_DIR = ".gencritic"


def _parse(raw: bytes) -> list[dict[str, Any]]:
    return [parse_journal_line(line) for line in raw.decode("utf-8").splitlines() if line.strip()]


def read_journal(folder: Path) -> list[dict[str, Any]]:
    """The records of an output folder's journal, in the order they were written."""
    path = folder / STATE_DIR / JOURNAL
    return _parse(path.read_bytes()) if path.exists() else []


class Journal:
    """Journal + live CSV for one output folder, guarded by a settings fingerprint."""

    def __init__(self, out_dir: Path, fingerprint: str, overwrite: bool = False) -> None:
        self.out_dir = out_dir
        self.state_dir = out_dir / STATE_DIR
        self.journal_path = self.state_dir / JOURNAL
        self.meta_path = self.state_dir / "run.json"
        self.fingerprint = fingerprint
        out_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(exist_ok=True)
        if overwrite:
            self.journal_path.unlink(missing_ok=True)
        if self.meta_path.exists() and self.journal_path.exists():
            previous = json.loads(self.meta_path.read_text()).get("fingerprint")
            if previous != fingerprint:
                raise InputError(
                    f"{out_dir} holds results of a run with other settings (model, metrics or options); "
                    f"use a new --out folder, or --overwrite to replace them"
                )
        atomic_write_text(self.meta_path, dumps_strict({"fingerprint": fingerprint}))
        self._records = self._read_journal()

    def _read_journal(self) -> dict[str, dict[str, Any]]:
        if not self.journal_path.exists():
            return {}
        raw = self.journal_path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        if good_end < len(raw):  # a torn last line from a crash mid-write: drop it
            with open(self.journal_path, "r+b") as fh:
                fh.truncate(good_end)
        return {rec["item"]["item_id"]: rec for rec in _parse(raw[:good_end])}

    @property
    def done_ids(self) -> set[str]:
        return set(self._records)

    def records(self) -> dict[str, dict[str, Any]]:
        return dict(self._records)

    def append(self, records: Iterable[dict[str, Any]]) -> None:
        """Durably record finished items (one JSON line each), then fsync."""
        lines = []
        for rec in records:
            self._records[rec["item"]["item_id"]] = rec
            lines.append(journal_line(rec) + "\n")
        if not lines:
            return
        with open(self.journal_path, "a", encoding="utf-8") as fh:
            fh.write("".join(lines))
            fh.flush()
            os.fsync(fh.fileno())

    def append_csv(self, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
        """Live view of a long run; the final rewrite makes it canonical."""
        path = self.out_dir / "results.csv"
        text = rows_to_csv(rows, columns)
        if path.exists() and path.stat().st_size > 0:
            text = text.split("\n", 1)[1]
        with open(path, "a", encoding="utf-8", errors=CSV_ERRORS, newline="") as fh:
            fh.write(text)
