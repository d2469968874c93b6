"""From a batch of prepared items to finished records: run every metric, then each item's values.

An item's value in a column is the mean over its views that the metric scored; a view a metric
could not score is NaN there with its reason, and an item none of whose views was scored in a
column fails with those reasons. A metric that crashes on a batch fails its values for that
batch, not the run. No number is made up here: everything comes from a metric.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np

from gencritic.errors import ModelUnavailableError
from gencritic.metrics.base import Metric, MetricResult, SetMetric
from gencritic.prepare import PreparedItem
from gencritic.scoring.records import ItemRecord, ViewRecord
from gencritic.views import RunContext, ViewBatch

log = logging.getLogger("gencritic")


def view_batch(batch: Sequence[PreparedItem], ctx: RunContext) -> ViewBatch:
    """The views of a batch's items, in order, with their references."""
    views = [v for p in batch for v in p.views]
    return ViewBatch(views=views, ctx=ctx, references={p.item.item_id: p.reference for p in batch})


def _compute(metric: Metric, vb: ViewBatch) -> MetricResult:
    try:
        return metric.compute(vb)
    except ModelUnavailableError:  # weights that vanished since the run started: a run-level error
        raise
    except Exception as exc:  # a metric crash fails its values for this batch, not the run
        log.warning("metric %s failed on a batch of %d views", metric.name, len(vb), exc_info=True)
        reason = f"{metric.name} failed: {type(exc).__name__}: {exc}".replace("\n", " ")
        nan = np.full(len(vb), np.nan)
        return MetricResult(values={c: nan for c in metric.info.columns}, errors=[reason] * len(vb))


def score_batch(batch: list[PreparedItem], metrics: Sequence[Metric], ctx: RunContext, settings_id: str,
                model_label: str, token_cuts: dict[str, int]) -> list[ItemRecord]:
    """Records of a batch's items, in order (``metrics``: the per-view ones)."""
    vb = view_batch(batch, ctx)
    n_all = len(vb)
    per_view: dict[str, np.ndarray] = {}
    view_errors: list[list[str]] = [[] for _ in range(n_all)]
    if n_all:
        for metric in metrics:
            result = _compute(metric, vb)
            for col, values in result.values.items():
                per_view[col] = np.asarray(values, dtype=np.float64)
            for i, err in enumerate(result.errors):
                if err:
                    view_errors[i].append(err if err.startswith(f"{metric.name} failed") else f"{metric.name}: {err}")
    models = {c: m.model_id() for m in metrics for c in m.info.columns}  # each column's own model, or None
    records = []
    offset = 0
    for p in batch:
        item = p.item
        n = len(p.views)
        rec = ItemRecord(
            item_id=item.item_id, kind=item.kind, path=str(item.path), prompt=item.prompt, columns=item.columns,
            num_views=n + len(p.view_errors),
            prompt_tokens_cut=token_cuts.get(item.prompt or "", 0) if item.prompt else None,
            settings_id=settings_id, model=model_label, models={c: models.get(c) for c in per_view},
            renderer=p.renderer, warnings=list(p.warnings))
        if p.error is not None:
            rec.success, rec.error, rec.num_views_scored = False, p.error, 0
            records.append(rec)
            continue
        scored_views = 0
        for j, view in enumerate(p.views):
            vals = {c: float(v[offset + j]) for c, v in per_view.items()}
            rec.views.append(ViewRecord(view.name, vals, "; ".join(view_errors[offset + j]) or None))
            scored_views += any(not math.isnan(x) for x in vals.values())
        rec.views.extend(ViewRecord(name, {}, reason) for name, reason in p.view_errors.items())
        item_errors: list[str] = []
        for col, values in per_view.items():
            chunk = values[offset:offset + n]
            ok = chunk[~np.isnan(chunk)]
            rec.values[col] = float(ok.mean()) if ok.size else math.nan
            if not ok.size:
                reasons = sorted({e for j in range(n) for e in view_errors[offset + j]}) or [f"{col} not computed"]
                item_errors.extend(r for r in reasons if r not in item_errors)
        rec.num_views_scored = scored_views
        rec.success = not item_errors
        rec.error = "; ".join(item_errors) or None
        records.append(rec)
        offset += n
    return records


def set_features(batch: Sequence[PreparedItem], metric: SetMetric, ctx: RunContext) -> dict[str, np.ndarray]:
    """Item id -> the (views, D) features ``metric`` takes of that item's views, for the items
    of the batch that have views."""
    ready = [p for p in batch if p.error is None and p.views]
    if not ready:
        return {}
    features = np.asarray(metric.features(view_batch(ready, ctx)), dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    offset = 0
    for p in ready:
        out[p.item.item_id] = features[offset:offset + len(p.views)]
        offset += len(p.views)
    return out
