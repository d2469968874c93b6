"""``correlate``: agreement statistics for scores someone already has, read from a CSV.

Why a separate command: a model's output (another toolkit's, a paper's released predictions,
``gencritic score``'s own ``results.csv``) should be comparable with ``validate``'s tables
without scoring anything again. So the numbers come from the very function ``validate`` uses
(:func:`gencritic.agreement.validate.correlation_table`): PLCC raw and after the VQEG
4-parameter logistic, SRCC, KRCC, RMSE after the mapping and pairwise accuracy, each with a
seeded percentile bootstrap interval; with a ``--group-by`` column the bootstrap draws whole
groups by default (``--resample auto``), as validate does with prompts. Several ``--pred``
columns are compared pairwise (paired bootstrap, Williams' test) on the rows they all have.

The file is read strictly (:func:`gencritic.io.strict_csv.read_csv_rows`): a missing column or a
cell that is not a number is refused in one line that names the file, the line and the fix. An
empty cell means "no value" and drops that row from the statistics, counted in ``n_excluded``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.agreement.bootstrap import RESAMPLE_CHOICES, STATS
from gencritic.agreement.validate import (
    COMPARISON_COLUMNS,
    CORRELATION_COLUMNS,
    MetricColumn,
    correlation_table,
)
from gencritic.errors import InputError


@dataclass
class CorrelateOptions:
    pred: Sequence[str]
    mos: Sequence[str]
    group_by: str | None = None
    resample: str = "auto"
    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    lower_is_better: Sequence[str] = field(default_factory=tuple)


@dataclass
class Correlation:
    rows: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    provenance: dict[str, Any]

    def payload(self) -> dict[str, Any]:
        return {"rows": self.rows, "comparisons": self.comparisons, "provenance": self.provenance}


def _delimiter(path: Path) -> str:
    return "\t" if path.suffix.lower() in (".tsv", ".tab") else ","


def read_columns(path: Path, numeric: Sequence[str], group_by: str | None
                 ) -> tuple[list[dict[str, Any]], list[str] | None]:
    """Rows holding the ``numeric`` columns as floats (NaN for an empty cell) and the groups."""
    from gencritic.io.strict_csv import read_csv_rows

    if not path.is_file():
        raise InputError(f"{path}: no such file; give the CSV of scores and ratings")
    raw, lines = read_csv_rows(path, _delimiter(path))
    if not raw:
        raise InputError(f"{path} has no data rows")
    header = list(raw[0])
    wanted = [*numeric, *([group_by] if group_by else [])]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise InputError(f"{path}: no column {', '.join(repr(c) for c in missing)}; its columns are "
                         f"{', '.join(header)}")
    rows: list[dict[str, Any]] = []
    for rec, line in zip(raw, lines, strict=True):
        row: dict[str, Any] = {}
        for col in numeric:
            cell = rec[col].strip()
            if cell == "":
                row[col] = math.nan
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
                bad = True
            else:
                bad = not math.isfinite(value)
            if bad:
                raise InputError(f"{path}, line {line}: column {col!r} holds {cell!r}, not a finite number; fix the "
                                 f"cell, or empty it to leave the row out")
            row[col] = value
        rows.append(row)
    groups = None
    if group_by:
        groups = [rec[group_by].strip() for rec in raw]
        empty = [line for g, line in zip(groups, lines, strict=True) if not g]
        if empty:
            raise InputError(f"{path}, line {empty[0]}: column {group_by!r} is empty ({len(empty)} row(s)); every row "
                             f"needs a group for --group-by")
    return rows, groups


def correlate(path: str | Path, opts: CorrelateOptions) -> Correlation:
    """Statistics of every ``pred`` column against every ``mos`` column of the CSV at ``path``."""
    from gencritic.hashing import sha256_file
    from gencritic.scoring.outputs import software_versions

    src = Path(path).expanduser()
    if not opts.pred or not opts.mos:
        raise InputError("correlate needs --pred COLUMN and --mos COLUMN")
    if opts.resample not in RESAMPLE_CHOICES:
        raise InputError(f"--resample {opts.resample!r}: use one of {', '.join(RESAMPLE_CHOICES)}")
    if opts.bootstrap < 0:
        raise InputError("--bootstrap must be 0 (no intervals) or more")
    both = [c for c in opts.pred if c in opts.mos]
    if both:
        raise InputError(f"column {both[0]!r} is given as both --pred and --mos")
    unknown = [c for c in opts.lower_is_better if c not in opts.pred]
    if unknown:
        raise InputError(f"--lower-is-better {unknown[0]!r} is not one of the --pred columns")
    rows, groups = read_columns(src, [*dict.fromkeys([*opts.pred, *opts.mos])], opts.group_by)
    columns = [MetricColumn(metric=c, column=c, higher_is_better=c not in opts.lower_is_better, model=None)
               for c in opts.pred]
    table, comps, _, _, plans = correlation_table(rows, list(opts.mos), columns, opts.bootstrap, opts.seed,
                                                  opts.confidence, groups, opts.resample)
    prov = {"source": str(src), "sha256": sha256_file(src), "rows": len(rows), "pred": list(opts.pred),
            "mos": list(opts.mos), "bootstrap": opts.bootstrap, "seed": opts.seed, "confidence": opts.confidence,
            "resample": opts.resample, "group_by": opts.group_by,
            "resampling": {k: {"unit": p.unit, "n_groups": p.n_groups, "reason": p.reason} for k, p in plans.items()},
            "versions": software_versions()}
    return Correlation(rows=table, comparisons=comps, provenance=prov)


def _cell(v: Any) -> str:
    return "–" if isinstance(v, float) and math.isnan(v) else (f"{v:.4f}" if isinstance(v, float) else str(v))


def text_table(result: Correlation) -> str:
    """One block per (mos, pred): each statistic with its interval; then the comparisons."""
    lines = []
    for r in result.rows:
        plan = result.provenance["resampling"].get(r["rating"])
        how = ("no intervals" if plan is None else
               f"{plan['n_groups']} groups resampled" if plan["unit"] == "groups" else "items resampled")
        lines.append(f"{r['column']} vs {r['rating']}: n={r['n']} (excluded {r['n_excluded']}), {how}")
        for s in STATS:
            lines.append(f"  {s:<14} {_cell(r[s]):>8}  [{_cell(r[s + '_lo'])}, {_cell(r[s + '_hi'])}]")
    for c in result.comparisons:
        lines.append(f"{c['metric_a']} - {c['metric_b']} on {c['rating']}: SRCC diff {_cell(c['srcc_diff'])} "
                     f"[{_cell(c['srcc_diff_lo'])}, {_cell(c['srcc_diff_hi'])}] p={_cell(c['srcc_p_bootstrap'])}; "
                     f"Williams p={_cell(c['plcc_p_williams'])}")
    return "\n".join(lines)


__all__ = ["COMPARISON_COLUMNS", "CORRELATION_COLUMNS", "CorrelateOptions", "Correlation", "correlate", "text_table"]
