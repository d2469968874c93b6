"""Writing a per-row run (``compare3d``, ``meshcheck``): journal, live CSV, canonical CSV, summary.

Rows are journaled through :class:`gencritic.io.journal.Journal` as they finish (fsynced), so a
crash loses at most the row in flight and re-running the same command into the same ``--out``
resumes; ``results.csv`` is appended live and rewritten in input order at the end (full float
precision, byte-identical across runs); ``summary.json`` is strict JSON, written atomically.
"""

from __future__ import annotations

import hashlib
import json
import math
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.io.journal import Journal
from gencritic.io.tables import write_table
from gencritic.jsonio import write_json


def software_versions(packages: Sequence[str] = ("gencritic", "numpy", "scipy", "trimesh", "pillow")) -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def fingerprint(settings: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


class RowRun:
    """One output folder of rows keyed by ``row_id``; numeric columns in ``values`` (NaN/inf kept exactly)."""

    def __init__(self, out_dir: Path, settings: dict[str, Any], columns: Sequence[str], numeric: Sequence[str],
                 overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.columns = list(columns)
        self.numeric = set(numeric)
        self.store = Journal(self.out_dir, fingerprint(settings), overwrite=overwrite)
        if overwrite:
            (self.out_dir / "results.csv").unlink(missing_ok=True)

    @property
    def done(self) -> set[str]:
        return self.store.done_ids

    def add(self, row_id: str, row: dict[str, Any], views: Sequence[dict[str, Any]] = ()) -> None:
        values = {k: v for k, v in row.items() if k in self.numeric}
        info = {k: v for k, v in row.items() if k not in self.numeric}
        record: dict[str, Any] = {"item": {"item_id": row_id}, "values": values, "info": info}
        if views:
            record["views"] = list(views)
        self.store.append([record])
        self.store.append_csv([row], self.columns)

    def rows(self, order: Sequence[str]) -> list[dict[str, Any]]:
        records = self.store.records()
        return [{**records[i]["info"], **records[i]["values"]} for i in order if i in records]

    def finish(self, order: Sequence[str], summary: dict[str, Any]) -> list[dict[str, Any]]:
        rows = self.rows(order)
        write_table(rows, self.columns, self.out_dir / "results.csv")
        write_json(self.out_dir / "summary.json", summary)
        return rows


def column_stats(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per numeric column over successful rows: mean, std (population), median, min, max and the
    count of finite values (a NaN — e.g. the volume IoU of an open mesh — is not averaged in)."""
    out: dict[str, dict[str, Any]] = {}
    ok = [r for r in rows if r.get("success")]
    for column in columns:
        values = np.array([float(r[column]) for r in ok if isinstance(r.get(column), (int, float))
                           and not isinstance(r.get(column), bool) and math.isfinite(float(r[column]))])
        if len(values) == 0:
            out[column] = {"count": 0, "mean": None, "std": None, "median": None, "min": None, "max": None}
        else:
            out[column] = {"count": len(values), "mean": float(values.mean()), "std": float(values.std()),
                           "median": float(np.median(values)), "min": float(values.min()), "max": float(values.max())}
    return out
