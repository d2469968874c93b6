"""``validate``: score a human-rated dataset with some metrics and say how well each agrees.

The shell around the statistics: load the dataset (:mod:`gencritic.datasets.human`), score
its images through :func:`gencritic.scoring.score` (so caching, batching and resume come
for free), then compute, per rating dimension × metric, the statistics of
:mod:`gencritic.agreement.bootstrap` on the items every metric scored, compare metrics pairwise,
and write::

    scores.csv          per image: ratings and metric values (failed items keep their error)
    correlations.csv    one row per rating × metric: n, resample (groups/items), n_groups, plcc,
                        plcc_logistic, srcc, krcc, rmse, pairwise_acc and their _lo/_hi bounds
    correlations.json   the same rows + metric comparisons + provenance
    comparisons.csv     per rating, each metric pair: paired-bootstrap and Williams tests
    report.md           the tables in Markdown, with provenance
    scatter_<rating>.png
    scoring/            the scoring run (resumable)

Provenance (dataset sha256, bootstrap seed and resampling unit, model ids, software versions)
is in every report, so a number can be traced to the data and code that made it.

The bootstrap resamples whole content groups (the prompt, or ``--group-by COLUMN``) when items
share them, since images of one prompt move together and resampling them one by one makes the
intervals too narrow; ``resample="items"`` keeps the item bootstrap of published IQA tables.
Every table row, the JSON and the report say which was used.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.agreement.bootstrap import (
    RESAMPLE_CHOICES,
    STATS,
    Agreement,
    Resampling,
    agreement,
    bootstrap_counts,
    compare,
    percentile_interval,
)
from gencritic.atomic import atomic_write_text
from gencritic.datasets.human import HumanDataset, load_human_dataset
from gencritic.errors import InputError
from gencritic.hashing import describe_settings
from gencritic.io.tables import write_table
from gencritic.jsonio import write_json
from gencritic.scoring.options import ScoreOptions

log = logging.getLogger("gencritic")

CORRELATION_COLUMNS = ["rating", "metric", "column", "higher_is_better", "n", "n_excluded", "resample", "n_groups",
                       *[c for s in STATS for c in (s, f"{s}_lo", f"{s}_hi")]]
COMPARISON_COLUMNS = ["rating", "metric_a", "metric_b", "n", "resample", "n_groups", "srcc_diff", "srcc_diff_lo", "srcc_diff_hi",
                      "srcc_p_bootstrap", "plcc_diff", "plcc_diff_lo", "plcc_diff_hi", "plcc_p_bootstrap",
                      "williams_t", "plcc_p_williams"]


@dataclass
class ValidateOptions:
    """Settings of a validation run: how to score (``scoring``, the options of
    :func:`gencritic.scoring.score`: metrics, model, device, cache...) and how to compare the
    scores with the ratings."""

    scoring: ScoreOptions = field(default_factory=ScoreOptions)
    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    resample: str = "auto"  # auto (groups when items share one), groups, items
    group_by: str | None = None  # column whose values group items; None: the dataset's content group
    plots: bool = True


@dataclass
class MetricColumn:
    """A column that a metric writes and that validation correlates with ratings."""

    metric: str
    column: str
    higher_is_better: bool
    model: str | None
    settings: dict[str, Any] = field(default_factory=dict)
    trained_on: str | None = None  # sha256 of a learned head's training data


@dataclass
class ValidationReport:
    rows: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    scores: list[dict[str, Any]]
    provenance: dict[str, Any]
    agreements: dict[tuple[str, str], Agreement] = field(default_factory=dict)
    out_dir: Path | None = None


def metric_columns(specs: Sequence[str], model: str) -> list[MetricColumn]:
    """The columns to validate: each metric's primary column; every column of a learned head."""
    from gencritic.metrics.registry import create_metric

    out: list[MetricColumn] = []
    for spec in specs:
        m = create_metric(spec, model)
        cols = m.info.columns if m.info.family == "learned" else m.info.columns[:1]
        for c in cols:
            if any(o.column == c for o in out):
                raise InputError(f"two metrics write the column {c!r}; give trained heads different names "
                                 f"(gencritic train --name) or list each metric once")
            card = getattr(m, "card", None) or {}
            out.append(MetricColumn(m.name, c, m.info.higher_is_better, m.model_id(), m.settings(),
                                    (card.get("data") or {}).get("sha256")))
    return out


def _values(rows: Sequence[dict[str, Any]], col: str) -> np.ndarray:
    out = np.full(len(rows), np.nan)
    for i, r in enumerate(rows):
        v = r.get(col)
        if v is None or v == "":
            continue
        try:
            out[i] = float(v)
        except (TypeError, ValueError):
            continue
    return out


def _resampling(n: int, n_boot: int, seed: int, groups: Sequence[str] | None,
                resample: str) -> tuple[np.ndarray, Resampling]:
    try:
        return bootstrap_counts(n, n_boot, seed, groups, resample)
    except ValueError as exc:
        raise InputError(f"--resample {resample}: {exc}") from None


def _resample_cells(plan: Resampling | None) -> dict[str, Any]:
    if plan is None:
        return {"resample": "none", "n_groups": math.nan}
    return {"resample": plan.unit, "n_groups": plan.n_groups}


def correlation_table(rows: Sequence[dict[str, Any]], ratings: Sequence[str], columns: Sequence[MetricColumn],
                      n_boot: int, seed: int, confidence: float = 0.95, groups: Sequence[str] | None = None,
                      resample: str = "auto"
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], Agreement],
                                 dict[str, np.ndarray], dict[str, Resampling]]:
    """Pure statistics over scored rows: per rating the items every metric scored, shared resamples
    (of the ``groups`` of those items, or of items; see :func:`gencritic.agreement.bootstrap.plan_resampling`)."""
    ok = np.array([bool(r.get("success", True)) for r in rows])
    table: list[dict[str, Any]] = []
    comps: list[dict[str, Any]] = []
    agreements: dict[tuple[str, str], Agreement] = {}
    masks: dict[str, np.ndarray] = {}
    plans: dict[str, Resampling] = {}
    metric_vals = {c.column: _values(rows, c.column) for c in columns}
    for rating in ratings:
        human = _values(rows, rating)
        mask = ok & np.isfinite(human)
        for c in columns:
            mask &= np.isfinite(metric_vals[c.column])
        masks[rating] = mask
        n = int(mask.sum())
        counts, plan = None, None
        if n >= 3 and n_boot > 0:
            kept = None if groups is None else [g for g, m in zip(groups, mask, strict=True) if m]
            counts, plan = _resampling(n, n_boot, seed, kept, resample)
            plans[rating] = plan
        for c in columns:
            if n < 3:
                a = Agreement(n=n, point={s: math.nan for s in STATS})
            else:
                a = agreement(metric_vals[c.column][mask], human[mask], counts, c.higher_is_better, confidence, seed,
                              resampling=plan)
            agreements[(rating, c.column)] = a
            table.append({"rating": rating, "metric": c.metric, "column": c.column,
                          "higher_is_better": c.higher_is_better, "n_excluded": int(len(rows) - n),
                          **_resample_cells(plan), **a.row()})
        for i, ca in enumerate(columns):
            for cb in columns[i + 1:]:
                if n < 4:
                    continue
                row = compare(ca.column, agreements[(rating, ca.column)], metric_vals[ca.column][mask],
                              cb.column, agreements[(rating, cb.column)], metric_vals[cb.column][mask], human[mask],
                              (1.0 if ca.higher_is_better else -1.0, 1.0 if cb.higher_is_better else -1.0))
                comps.append({"rating": rating, **_resample_cells(plan), **row})
    return table, comps, agreements, masks, plans


def preference_table(dataset: HumanDataset, rows: Sequence[dict[str, Any]], columns: Sequence[MetricColumn],
                     n_boot: int, seed: int, confidence: float = 0.95, resample: str = "auto"
                     ) -> tuple[list[dict[str, Any]], Resampling | None]:
    """Pairwise data: how often each metric prefers the image people preferred (ties excluded).
    Pairs of one prompt are resampled together (by default, when pairs share prompts)."""
    index = {str(r.get("item_id")): r for r in rows}
    decided = [p for p in dataset.pairs if p.preference != 0.5]
    out = []
    plan: Resampling | None = None
    for c in columns:
        agree, groups = [], []
        for p in decided:
            ra, rb = index.get(p.image_a), index.get(p.image_b)
            if ra is None or rb is None or not ra.get("success") or not rb.get("success"):
                continue
            va, vb = _values([ra], c.column)[0], _values([rb], c.column)[0]
            if not (math.isfinite(va) and math.isfinite(vb)):
                continue
            d = (va - vb) * (1.0 if c.higher_is_better else -1.0)
            model_pref = 1.0 if d > 0 else 0.0 if d < 0 else 0.5
            agree.append(1.0 - abs(model_pref - p.preference))
            groups.append(f"prompt:{p.prompt}" if p.prompt is not None else f"pair:{p.pair_id}")
        o = np.asarray(agree, dtype=np.float64)
        row: dict[str, Any] = {"rating": "preference", "metric": c.metric, "column": c.column,
                               "higher_is_better": c.higher_is_better, "n": int(o.size),
                               "n_excluded": len(dataset.pairs) - int(o.size)}
        for s in STATS:
            row[s] = row[f"{s}_lo"] = row[f"{s}_hi"] = math.nan
        row_plan = None
        if o.size:
            row["pairwise_acc"] = float(o.mean())
            if n_boot > 0:
                W, row_plan = _resampling(o.size, n_boot, seed, groups, resample)
                plan = plan or row_plan
                draws = (W @ o) / W.sum(axis=1)
                row["pairwise_acc_lo"], row["pairwise_acc_hi"] = percentile_interval(draws, (1 - confidence) / 2)
        row.update(_resample_cells(row_plan))
        out.append(row)
    return out, plan


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def _resampling_lines(prov: dict[str, Any]) -> list[str]:
    """What the bootstrap resampled, per rating (``--resample``, ``--group-by``)."""
    per_rating = prov.get("resampling") or {}
    if not per_rating:
        return []
    lines = [f"Resampled (`--resample {prov['resample']}`, groups by `{prov['group_by']}`):", ""]
    for rating, plan in per_rating.items():
        what = (f"{plan['n_groups']} `{prov['group_by']}` groups, whole" if plan["unit"] == "groups"
                else "items, one by one")
        lines.append(f"- {rating}: {what} ({plan['reason']})")
    return [*lines, ""]


def markdown_report(table: Sequence[dict[str, Any]], comps: Sequence[dict[str, Any]], prov: dict[str, Any]) -> str:
    """A readable summary: one table with CI brackets, comparisons, provenance."""
    ds = prov["dataset"]
    lines = [f"# Validation against human ratings: {Path(ds['source']).name}", "",
             f"Dataset `{ds['format']}` sha256 `{ds['sha256'][:16]}…`: {ds['items_present']} of {ds['rows']} rated "
             f"items present ({ds['items_missing']} missing). Bootstrap: {prov['bootstrap']} resamples, seed "
             f"{prov['seed']}, {int(prov['confidence'] * 100)}% percentile intervals.", "",
             *_resampling_lines(prov),
             "| rating | metric | n | PLCC | PLCC (logistic) | SRCC | KRCC | RMSE | pairwise acc |",
             "|---|---|---:|---|---|---|---|---|---|"]
    for r in table:
        cells = [f"{_fmt(r[s])} [{_fmt(r[s + '_lo'])}, {_fmt(r[s + '_hi'])}]" for s in STATS]
        lines.append(f"| {r['rating']} | {r['column']} | {r['n']} | " + " | ".join(cells) + " |")
    if comps:
        lines += ["", "## Do metrics differ? (A − B, oriented so that higher = agrees more)", "",
                  "| rating | A | B | ΔSRCC [95% CI] | p (bootstrap) | ΔPLCC | p (Williams) |", "|---|---|---|---|---|---|---|"]
        for c in comps:
            lines.append(f"| {c['rating']} | {c['metric_a']} | {c['metric_b']} | {_fmt(c['srcc_diff'])} "
                         f"[{_fmt(c['srcc_diff_lo'])}, {_fmt(c['srcc_diff_hi'])}] | {_fmt(c['srcc_p_bootstrap'])} | "
                         f"{_fmt(c['plcc_diff'])} | {_fmt(c['plcc_p_williams'])} |")
    if prov.get("warnings"):
        lines += ["", "## Warnings", "", *[f"- {w}" for w in prov["warnings"]]]
    lines += ["", "## Provenance", "", f"- models: {', '.join(prov['models']) or '-'}",
              f"- metrics: {', '.join(prov['metrics'])}",
              "- software: " + ", ".join(f"{k} {v}" for k, v in prov["versions"].items()), ""]
    return "\n".join(lines)


def resample_groups(ds: HumanDataset, group_by: str | None) -> tuple[str, dict[str, str]]:
    """(name, item id -> group) of the groups the bootstrap resamples.

    Default: the dataset's content group (the prompt; a mos-csv ``group`` column; AIGCIQA2023's
    prompt index). ``group_by``: any column of the rated items (``prompt``, ``style``,
    ``generator_index`` ...); every rated item must have a value.
    """
    if ds.format == "pairs":
        if group_by not in (None, "prompt"):
            raise InputError(f"--group-by {group_by}: preference pairs can only be grouped by prompt")
        return "prompt", {}
    if group_by is None:
        name = "group" if any("_group" in i.columns for i in ds.items) else "prompt"
        return name, dict(zip((i.item_id for i in ds.items), ds.groups, strict=True))
    def value(item: Any) -> Any:
        v = item.columns.get(group_by)
        return item.prompt if v is None and group_by == "prompt" else v

    values = {i.item_id: value(i) for i in ds.items}
    if all(v is None for v in values.values()):
        known = sorted({k for i in ds.items for k in i.columns if not k.startswith("_")} | {"prompt"})
        raise InputError(f"--group-by {group_by}: no such column; columns are {', '.join(known)}")
    empty = [k for k, v in values.items() if v is None or str(v).strip() == ""]
    if empty:
        raise InputError(f"--group-by {group_by}: {len(empty)} rated item(s) have no value (e.g. {empty[0]}); "
                         f"fill the column or group by another one")
    return group_by, {k: str(v) for k, v in values.items()}


def validate(dataset: str | Path | HumanDataset, out: str | Path | None = None,
             options: ValidateOptions | None = None, fmt: str | None = None, ratings: Sequence[str] | None = None,
             pool: Any = None) -> ValidationReport:
    """Python API behind ``gencritic validate``: returns the tables; writes them when ``out`` is set."""
    from gencritic.scoring import score
    from gencritic.scoring.outputs import software_versions

    opts = options or ValidateOptions()
    sopts = opts.scoring.checked()
    if opts.bootstrap < 0:
        raise InputError("--bootstrap must be 0 (no intervals) or more")
    if opts.resample not in RESAMPLE_CHOICES:
        raise InputError(f"--resample {opts.resample!r}: use one of {', '.join(RESAMPLE_CHOICES)}")
    if not 0 < opts.confidence < 1:
        raise InputError("confidence must be between 0 and 1")
    started = time.perf_counter()
    ds = dataset if isinstance(dataset, HumanDataset) else load_human_dataset(dataset, fmt, ratings)
    group_by, item_groups = resample_groups(ds, opts.group_by)  # fails fast on an unknown column
    columns = metric_columns(sopts.metrics, sopts.model)  # fails fast on unknown metrics
    warnings = [f"{c.column}: this head was trained on this dataset, so its numbers include its own training "
                f"items; validate it on held-out data (see its test_predictions.csv and card test_metrics)"
                for c in columns if c.trained_on and c.trained_on == ds.sha256]
    for w in warnings:
        log.warning("%s", w)
    out_dir = Path(out) if out is not None else None
    # one resumable scoring folder per metric settings (a retrained head has new weights and
    # must not resume the old head's scores, although its spec string is the same)
    run_key = describe_settings([(c.metric, c.model, c.settings) for c in columns])
    run = score(ds.items, out=None if out_dir is None else out_dir / "scoring" / run_key, options=sopts, pool=pool)
    rows = run.rows
    if ds.format == "pairs":
        table, pair_plan = preference_table(ds, rows, columns, opts.bootstrap, opts.seed, opts.confidence,
                                            opts.resample)
        comps: list[dict[str, Any]] = []
        agreements: dict[tuple[str, str], Agreement] = {}
        masks: dict[str, np.ndarray] = {}
        plans = {} if pair_plan is None else {"preference": pair_plan}
    else:
        groups = [item_groups[str(r.get("item_id"))] for r in rows]
        table, comps, agreements, masks, plans = correlation_table(rows, ds.ratings, columns, opts.bootstrap,
                                                                   opts.seed, opts.confidence, groups, opts.resample)
    failed = sum(1 for r in rows if not r.get("success"))
    prov = {"dataset": ds.describe(), "metrics": list(sopts.metrics), "models": sorted({c.model for c in columns if c.model}),
            "bootstrap": opts.bootstrap, "seed": opts.seed, "confidence": opts.confidence,
            "resample": opts.resample, "group_by": group_by,
            "resampling": {k: {"unit": p.unit, "n_groups": p.n_groups, "reason": p.reason} for k, p in plans.items()},
            "items_scored": len(rows) - failed, "items_failed": failed, "warnings": warnings,
            "versions": software_versions(), "wall_time_s": round(time.perf_counter() - started, 3)}
    score_cols = ["item_id", "image", "prompt", *ds.ratings, *[c.column for c in columns], "success", "error"]
    scores = [{k: r.get(k) for k in score_cols} for r in rows]
    report = ValidationReport(rows=table, comparisons=comps, scores=scores, provenance=prov,
                              agreements=agreements, out_dir=out_dir)
    if out_dir is not None:
        write_outputs(report, ds, columns, masks, score_cols, opts.plots)
    return report


def write_outputs(report: ValidationReport, ds: HumanDataset, columns: Sequence[MetricColumn],
                  masks: dict[str, np.ndarray], score_cols: Sequence[str], plots: bool) -> None:
    assert report.out_dir is not None
    out = report.out_dir
    write_table(report.scores, score_cols, out / "scores.csv")
    write_table(report.rows, CORRELATION_COLUMNS, out / "correlations.csv")
    write_table(report.comparisons, COMPARISON_COLUMNS, out / "comparisons.csv")
    payload = {"rows": report.rows, "comparisons": report.comparisons, "provenance": report.provenance}
    write_json(out / "correlations.json", payload)
    atomic_write_text(out / "report.md", markdown_report(report.rows, report.comparisons, report.provenance))
    if plots and report.agreements:
        from gencritic.agreement.plots import scatter_grid

        for rating, mask in masks.items():
            human = _values(report.scores, rating)[mask]
            panels = []
            for c in columns:
                a = report.agreements[(rating, c.column)]
                panels.append((c.column, _values(report.scores, c.column)[mask], human, a.logistic,
                               {"n": a.n, **a.point}))
            scatter_grid(out / f"scatter_{_safe(rating)}.png", rating, panels)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in name)

