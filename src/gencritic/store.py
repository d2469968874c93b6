"""Results on disk: written as they are made, resumable, and exported in formats people load.

Layout of an output folder::

    results.csv      one row per item (wide): input columns, metric columns, success, error
    views.csv        long format: item_id, view, metric column, value, model, settings_id
    summary.json     run statistics, settings, versions, wall time
    .gencritic/journal.jsonl   append-only log of finished items (the resume authority)

The journal is appended and fsynced after every batch, so a crash or Ctrl-C loses at most
the batch in flight. ``results.csv`` is appended at the same time for people watching a
long run, and rewritten from the journal (in input order) when the run ends or resumes, so
two runs of the same job give byte-identical files.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.errors import InputError
from gencritic.io.fsnames import CSV_ERRORS, printable
from gencritic.jsonio import dumps_strict, journal_line, parse_journal_line

__all__ = ["ResultsStore", "atomic_write_text", "format_value", "rows_to_csv", "write_table"]

JOURNAL = "journal.jsonl"
STATE_DIR = ".gencritic"


def format_value(value: Any) -> str:
    """CSV cell text: full float precision (repr), empty for missing, stable across runs."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rows_to_csv(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row.get(c)) for c in columns])
    return buf.getvalue()


class ResultsStore:
    """Journal + exports for one output folder, guarded by a settings fingerprint."""

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
        records: dict[str, dict[str, Any]] = {}
        if not self.journal_path.exists():
            return records
        raw = self.journal_path.read_bytes()
        good_end = raw.rfind(b"\n") + 1
        if good_end < len(raw):  # a torn last line from a crash mid-write: drop it
            with open(self.journal_path, "r+b") as fh:
                fh.truncate(good_end)
        for line in raw[:good_end].decode("utf-8").splitlines():
            if line.strip():
                rec = parse_journal_line(line)
                records[rec["item"]["item_id"]] = rec
        return records

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


def write_table(rows: Sequence[dict[str, Any]], columns: Sequence[str], path: Path) -> None:
    """Write rows as CSV, JSONL or Parquet depending on the suffix (atomically)."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        atomic_write_text(path, rows_to_csv(rows, columns), errors=CSV_ERRORS)
    elif suffix == ".jsonl":
        lines = [dumps_strict({c: r.get(c) for c in columns}, ensure_ascii=False) for r in rows]
        atomic_write_text(path, "\n".join(lines) + ("\n" if lines else ""))
    elif suffix == ".parquet":
        import pandas as pd

        # Arrow strings must be UTF-8: undecodable file-name bytes become \xNN text here
        frame = pd.DataFrame([{c: printable(r.get(c)) for c in columns} for r in rows], columns=list(columns))
        tmp = path.with_name(f".{path.name}.tmp")
        frame.to_parquet(tmp, index=False)
        os.replace(tmp, path)
    else:
        raise InputError(f"unsupported output format {suffix!r}: use csv, jsonl or parquet")
