"""Tables on disk: CSV, JSONL or Parquet by the file's suffix, written atomically.

Why here and not with the scoring run: ``validate``, ``train``, ``diagnose``, ``generate`` and
Toys4k write tables too, and they should not depend on the scoring package to do it. One writer
also means one cell format everywhere: full float precision (``repr``), empty for a missing
value, ``true``/``false``, and file names that are not UTF-8 kept as their bytes in CSV
(:mod:`gencritic.io.fsnames`).
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.errors import InputError
from gencritic.io.fsnames import CSV_ERRORS, printable
from gencritic.jsonio import dumps_strict

__all__ = ["format_value", "rows_to_csv", "write_table"]


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
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([format_value(row.get(c)) for c in columns])
    return buf.getvalue()


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
