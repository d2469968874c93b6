"""``validate``: score a human-rated dataset with some metrics and say how well each agrees.

The shell around the statistics: load the dataset (:mod:`gencritic.datasets.human`), score
its images through :func:`gencritic.pipeline.score` (so caching, batching and resume come
for free), then compute, per rating dimension × metric, the statistics of
:mod:`gencritic.meta.bootstrap` on the items every metric scored, compare metrics pairwise,
and write::

    scores.csv          per image: ratings and metric values (failed items keep their error)
    correlations.csv    one row per rating × metric: n, plcc, plcc_logistic, srcc, krcc, rmse,
                        pairwise_acc and their _lo/_hi bootstrap bounds
    correlations.json   the same rows + metric comparisons + provenance
    comparisons.csv     per rating, each metric pair: paired-bootstrap and Williams tests
    report.md           the tables in Markdown, with provenance
    scatter_<rating>.png
    scoring/            the scoring run (resumable)

Provenance (dataset sha256, bootstrap seed, model ids, software versions) is in every
report, so a number can be traced to the data and code that made it.
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

from gencritic.datasets.human import HumanDataset, load_human_dataset
from gencritic.errors import InputError
from gencritic.jsonio import write_json
from gencritic.meta.bootstrap import (
    STATS,
    Agreement,
    agreement,
    compare,
    percentile_interval,
    resample_counts,
)
from gencritic.models.loader import DEFAULT_CLIP_MODEL
from gencritic.store import atomic_write_text, write_table

log = logging.getLogger("gencritic")

CORRELATION_COLUMNS = ["rating", "metric", "column", "higher_is_better", "n", "n_excluded",
                       *[c for s in STATS for c in (s, f"{s}_lo", f"{s}_hi")]]
COMPARISON_COLUMNS = ["rating", "metric_a", "metric_b", "n", "srcc_diff", "srcc_diff_lo", "srcc_diff_hi",
                      "srcc_p_bootstrap", "plcc_diff", "plcc_diff_lo", "plcc_diff_hi", "plcc_p_bootstrap",
                      "williams_t", "plcc_p_williams"]


@dataclass
class ValidateOptions:
    """Settings of a validation run; scoring settings are passed to :func:`gencritic.pipeline.score`."""

    metrics: Sequence[str] = ("clip",)
    model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    cache_dir: Path | None = None
    bootstrap: int = 1000
    seed: int = 0
    confidence: float = 0.95
    plots: bool = True
    progress: bool = True
    use_cache: bool = True


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


def correlation_table(rows: Sequence[dict[str, Any]], ratings: Sequence[str], columns: Sequence[MetricColumn],
                      n_boot: int, seed: int, confidence: float = 0.95
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[tuple[str, str], Agreement],
                                 dict[str, np.ndarray]]:
    """Pure statistics over scored rows: per rating the items every metric scored, shared resamples."""
    ok = np.array([bool(r.get("success", True)) for r in rows])
    table: list[dict[str, Any]] = []
    comps: list[dict[str, Any]] = []
    agreements: dict[tuple[str, str], Agreement] = {}
    masks: dict[str, np.ndarray] = {}
    metric_vals = {c.column: _values(rows, c.column) for c in columns}
    for rating in ratings:
        human = _values(rows, rating)
        mask = ok & np.isfinite(human)
        for c in columns:
            mask &= np.isfinite(metric_vals[c.column])
        masks[rating] = mask
        n = int(mask.sum())
        counts = resample_counts(n, n_boot, seed) if n >= 3 else None
        for c in columns:
            if n < 3:
                a = Agreement(n=n, point={s: math.nan for s in STATS})
            else:
                a = agreement(metric_vals[c.column][mask], human[mask], counts, c.higher_is_better, confidence, seed)
            agreements[(rating, c.column)] = a
            table.append({"rating": rating, "metric": c.metric, "column": c.column,
                          "higher_is_better": c.higher_is_better, "n_excluded": int(len(rows) - n), **a.row()})
        for i, ca in enumerate(columns):
            for cb in columns[i + 1:]:
                if n < 4:
                    continue
                row = compare(ca.column, agreements[(rating, ca.column)], metric_vals[ca.column][mask],
                              cb.column, agreements[(rating, cb.column)], metric_vals[cb.column][mask], human[mask],
                              (1.0 if ca.higher_is_better else -1.0, 1.0 if cb.higher_is_better else -1.0))
                comps.append({"rating": rating, **row})
    return table, comps, agreements, masks


def preference_table(dataset: HumanDataset, rows: Sequence[dict[str, Any]], columns: Sequence[MetricColumn],
                     n_boot: int, seed: int, confidence: float = 0.95) -> list[dict[str, Any]]:
    """Pairwise data: how often each metric prefers the image people preferred (ties excluded)."""
    index = {str(r.get("item_id")): r for r in rows}
    decided = [p for p in dataset.pairs if p.preference != 0.5]
    out = []
    for c in columns:
        agree = []
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
        o = np.asarray(agree, dtype=np.float64)
        row: dict[str, Any] = {"rating": "preference", "metric": c.metric, "column": c.column,
                               "higher_is_better": c.higher_is_better, "n": int(o.size),
                               "n_excluded": len(dataset.pairs) - int(o.size)}
        for s in STATS:
            row[s] = row[f"{s}_lo"] = row[f"{s}_hi"] = math.nan
        if o.size:
            row["pairwise_acc"] = float(o.mean())
            W = resample_counts(o.size, n_boot, seed)
            if W.shape[0]:
                draws = (W @ o) / o.size
                row["pairwise_acc_lo"], row["pairwise_acc_hi"] = percentile_interval(draws, (1 - confidence) / 2)
        out.append(row)
    return out


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.3f}"
    return str(v)


def markdown_report(table: Sequence[dict[str, Any]], comps: Sequence[dict[str, Any]], prov: dict[str, Any]) -> str:
    """A readable summary: one table with CI brackets, comparisons, provenance."""
    ds = prov["dataset"]
    lines = [f"# Validation against human ratings: {Path(ds['source']).name}", "",
             f"Dataset `{ds['format']}` sha256 `{ds['sha256'][:16]}…`: {ds['items_present']} of {ds['rows']} rated "
             f"items present ({ds['items_missing']} missing). Bootstrap: {prov['bootstrap']} resamples, seed "
             f"{prov['seed']}, {int(prov['confidence'] * 100)}% percentile intervals.", "",
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


def validate(dataset: str | Path | HumanDataset, out: str | Path | None = None,
             options: ValidateOptions | None = None, fmt: str | None = None, ratings: Sequence[str] | None = None,
             pool: Any = None) -> ValidationReport:
    """Python API behind ``gencritic validate``: returns the tables; writes them when ``out`` is set."""
    from gencritic.cache import default_cache_dir
    from gencritic.pipeline import ScoreOptions, score, software_versions

    opts = options or ValidateOptions()
    if opts.bootstrap < 0:
        raise InputError("--bootstrap must be 0 (no intervals) or more")
    if not 0 < opts.confidence < 1:
        raise InputError("confidence must be between 0 and 1")
    started = time.perf_counter()
    ds = dataset if isinstance(dataset, HumanDataset) else load_human_dataset(dataset, fmt, ratings)
    columns = metric_columns(opts.metrics, opts.model)  # fails fast on unknown metrics
    warnings = [f"{c.column}: this head was trained on this dataset, so its numbers include its own training "
                f"items; validate it on held-out data (see its test_predictions.csv and card test_metrics)"
                for c in columns if c.trained_on and c.trained_on == ds.sha256]
    for w in warnings:
        log.warning("%s", w)
    out_dir = Path(out) if out is not None else None
    cache_dir = (opts.cache_dir or default_cache_dir()) if opts.use_cache else None
    sopts = ScoreOptions(metrics=list(opts.metrics), model=opts.model, device=opts.device, dtype=opts.dtype,
                         batch_size=opts.batch_size, cache_dir=cache_dir, progress=opts.progress)
    # one resumable scoring folder per metric settings (a retrained head has new weights and
    # must not resume the old head's scores, although its spec string is the same)
    from gencritic.features import describe_settings

    run_key = describe_settings([(c.metric, c.model, c.settings) for c in columns])
    run = score(ds.items, out=None if out_dir is None else out_dir / "scoring" / run_key, options=sopts, pool=pool)
    rows = run.rows
    if ds.format == "pairs":
        table = preference_table(ds, rows, columns, opts.bootstrap, opts.seed, opts.confidence)
        comps: list[dict[str, Any]] = []
        agreements: dict[tuple[str, str], Agreement] = {}
        masks: dict[str, np.ndarray] = {}
    else:
        table, comps, agreements, masks = correlation_table(rows, ds.ratings, columns, opts.bootstrap, opts.seed,
                                                            opts.confidence)
    failed = sum(1 for r in rows if not r.get("success"))
    prov = {"dataset": ds.describe(), "metrics": list(opts.metrics), "models": sorted({c.model for c in columns if c.model}),
            "bootstrap": opts.bootstrap, "seed": opts.seed, "confidence": opts.confidence,
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
        from gencritic.meta.plots import scatter_grid

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

