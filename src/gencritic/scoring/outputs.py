"""What a run hands back and writes: rows, their columns, the long view table and the summary.

Rows and files are made from :class:`~gencritic.scoring.records.ItemRecord` in input order,
so a resumed run and an uninterrupted one write the same bytes.
"""

from __future__ import annotations

import math
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.io.tables import write_table
from gencritic.io.urls import UrlPath
from gencritic.items import Item
from gencritic.jsonio import write_json
from gencritic.metrics.base import Metric
from gencritic.row_warnings import join_cell
from gencritic.scoring.records import ItemRecord

VIEW_COLUMNS = ["item_id", "view", "metric", "value", "model", "settings_id", "error", "warnings"]
_TEXT_COLUMNS = ("prompt", "caption", "text")


@dataclass
class ScoreRun:
    """What a run produced: rows (one per item), their column order and the summary."""

    rows: list[dict[str, Any]]
    columns: list[str]
    view_rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path | UrlPath | None

    def to_pandas(self) -> Any:
        import pandas as pd

        from gencritic.io.fsnames import printable_tree

        # pandas' Arrow strings refuse the surrogate escapes of non-UTF-8 file names: show their bytes
        return pd.DataFrame(printable_tree(self.rows), columns=self.columns)


def software_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("gencritic", "torch", "transformers", "open_clip_torch", "numpy", "pillow", "moderngl"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def output_columns(items: Sequence[Item], metrics: Sequence[Metric], any_text: bool) -> list[str]:
    """results.csv's columns: the inputs' own, then each per-view metric's, then the run's."""
    cols: list[str] = []
    for item in items:
        for c in item.columns:
            if c not in cols:
                cols.append(c)
    if "item_id" not in cols:
        cols.append("item_id")
    if any(i.prompt is not None for i in items) and not any(c.lower() in _TEXT_COLUMNS for c in cols):
        cols.append("prompt")
    for m in metrics:
        cols.extend(c for c in m.info.columns if c not in cols)
    if any(i.kind in ("mesh", "views") for i in items):
        cols.extend(["num_views", "num_views_scored"])
    if any_text:
        cols.append("prompt_tokens_cut")
    cols.extend(["success", "error", "warnings", "model", "settings_id"])
    return cols


def item_row(rec: ItemRecord) -> dict[str, Any]:
    """The results.csv row of a record."""
    row: dict[str, Any] = dict(rec.columns)
    row.setdefault("item_id", rec.item_id)
    if rec.prompt is not None and not any(k.lower() in _TEXT_COLUMNS for k in row):
        row["prompt"] = rec.prompt
    row.update(rec.values)
    row.update(num_views=rec.num_views, num_views_scored=rec.num_views_scored,
               prompt_tokens_cut=rec.prompt_tokens_cut, success=rec.success, error=rec.error or "",
               warnings=join_cell(rec.warnings), model=rec.model, settings_id=rec.settings_id)
    return row


def view_rows(rec: ItemRecord) -> list[dict[str, Any]]:
    """views.csv rows: a metric's row names that metric's model (empty for weight-free ones);
    records journaled before per-column models were kept name the run's label."""
    warnings = join_cell(rec.warnings)  # the asset's: every view of it was drawn so

    def row(view: str, metric: str, value: float | None, model: str | None, error: str | None) -> dict[str, Any]:
        return {"item_id": rec.item_id, "view": view, "metric": metric, "value": value, "model": model,
                "settings_id": rec.settings_id, "error": error or "", "warnings": warnings}

    rows = []
    for v in rec.views:
        if not v.values:
            rows.append(row(v.view, "", None, rec.model, v.error))
        for col, value in v.values.items():
            rows.append(row(v.view, col, value, rec.models.get(col) if rec.models is not None else rec.model, v.error))
    return rows


def _stats(values: np.ndarray) -> dict[str, float | None]:
    vals = values[~np.isnan(values)]
    if not vals.size:
        return {"mean": None, "std": None, "min": None, "max": None}
    return {"mean": float(vals.mean()), "std": float(vals.std()), "min": float(vals.min()), "max": float(vals.max())}


def column_summaries(records: Sequence[ItemRecord], metrics: Sequence[Metric]) -> dict[str, dict[str, Any]]:
    """Per column of the per-view metrics: its metric, model, settings and statistics over the
    successful items."""
    successes = [r for r in records if r.success]
    per_column: dict[str, dict[str, Any]] = {}
    for m in metrics:
        for col in m.info.columns:
            vals = np.array([r.values.get(col, math.nan) for r in successes], dtype=np.float64)
            stats = _stats(vals)
            per_column[col] = {"metric": m.name, "model": m.model_id(), "settings": m.settings(), **stats,
                               "n": int((~np.isnan(vals)).sum()), "higher_is_better": m.info.higher_is_better}
    return per_column


def summarise(records: Sequence[ItemRecord], metrics: Sequence[Metric], settings: dict[str, Any], model: str,
              unavailable: dict[str, str], wall_time: float, interrupted: bool) -> dict[str, Any]:
    """Run statistics and provenance. ``settings`` are the run's (what ran, with the asked device
    and dtype under ``requested``: see :func:`gencritic.scoring.run.score`)."""
    successes = sum(1 for r in records if r.success)
    per_column = column_summaries(records, metrics)
    primary = metrics[0].info.columns[0] if metrics else None
    head = per_column.get(primary or "", {})
    return {
        "primary_metric": primary,
        "mean": head.get("mean"),
        "mean_x100": None if head.get("mean") is None else 100.0 * head["mean"],
        "std": head.get("std"),
        "count": len(records),
        "successes": successes,
        "failures": len(records) - successes,
        "success_rate": (successes / len(records)) if records else None,
        "metrics": per_column,
        "unavailable_metrics": unavailable,
        "model": model,
        "settings": settings,
        "versions": software_versions(),
        # which rasteriser drew the meshes (a GPU's GL, llvmpipe on the CPU, Cycles): numbers from
        # different renderers may differ slightly, so a published figure should say which
        "renderers": sorted({str(r.renderer) for r in records if r.renderer}),
        "wall_time_s": round(wall_time, 3),
        "interrupted": interrupted,
    }


def write_outputs(out_dir: Path, run: ScoreRun, formats: Sequence[str]) -> None:
    """results.<fmt> (CSV always), views.csv and summary.json, each written atomically."""
    for fmt in dict.fromkeys(["csv", *formats]):
        write_table(run.rows, run.columns, out_dir / f"results.{fmt}")
    write_table(run.view_rows, VIEW_COLUMNS, out_dir / "views.csv")
    write_json(out_dir / "summary.json", run.summary, default=str)
