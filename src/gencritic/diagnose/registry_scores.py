"""Any registered metric as a profile score (``scores: {niqe: {target: [null, 6]}}``).

The profile names a metric spec (``metric: lpips:net=vgg``, default: the score's name) and
optionally the output ``column``. The metric runs through its normal registry path on a
one-view batch (the still, or the key frame), with the shared model pool, so its numbers are
the ones ``gencritic score`` writes. Missing weights or inputs become reasons, never values.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gencritic.diagnose.profiles import Check
from gencritic.errors import InputError, ModelUnavailableError

if TYPE_CHECKING:
    from gencritic.metrics.base import Metric
    from gencritic.models import ModelPool


@dataclass
class ScoreOutcome:
    value: float | None
    reason: str | None
    unavailable: bool
    model: str | None
    column: str


def prepare_metrics(checks: list[Check], model: str | None) -> dict[str, tuple[Metric, str]]:
    """Instantiate every metric score before any work; unknown names/columns are InputErrors."""
    from gencritic.metrics.registry import create_metric
    from gencritic.models import DEFAULT_CLIP_MODEL

    out: dict[str, tuple[Metric, str]] = {}
    for check in checks:
        spec = str(check.options.get("metric", check.name))
        metric = create_metric(spec, model or DEFAULT_CLIP_MODEL)
        if "frames" in metric.info.inputs or "set" in metric.info.inputs:
            raise InputError(f"score {check.name!r}: metric {metric.name} judges sequences or sets; use the "
                             f"temporal diagnostics (flicker_index, ...) in a profile instead")
        column = str(check.options.get("column", metric.info.columns[0]))
        if column not in metric.info.columns:
            raise InputError(f"score {check.name!r}: metric {metric.name} has no column {column!r}; "
                             f"its columns: {', '.join(metric.info.columns)}")
        out[check.name] = (metric, column)
    return out


def run_metric(metric: Metric, column: str, rgb: np.ndarray, alpha: np.ndarray | None, path: Path,
               prompt: str | None, reference: Path | None, background: tuple[int, int, int],
               pool: ModelPool, model: str | None) -> ScoreOutcome:
    from PIL import Image

    from gencritic.cache import EmbeddingCache
    from gencritic.io.images import LoadedImage, load_image
    from gencritic.items import Item
    from gencritic.models import DEFAULT_CLIP_MODEL
    from gencritic.views import RunContext, View, ViewBatch

    inputs = metric.info.inputs
    if "text" in inputs and prompt is None:
        return ScoreOutcome(None, "needs a prompt (--prompt)", False, None, column)
    if "reference" in inputs and reference is None:
        return ScoreOutcome(None, "needs a reference image (--reference)", False, None, column)
    ctx = RunContext(pool=pool, cache=EmbeddingCache(None), default_model=model or DEFAULT_CLIP_MODEL,
                     background=background)
    try:
        metric.setup(ctx)
    except ModelUnavailableError as exc:
        return ScoreOutcome(None, str(exc), True, metric.model_id(), column)
    arr = np.ascontiguousarray(rgb, dtype=np.uint8)
    sha = hashlib.sha256(arr.tobytes() + str(arr.shape).encode() + f"|bg={background}".encode()).hexdigest()
    loaded = LoadedImage(rgb=Image.fromarray(arr, "RGB"), sha256=sha, alpha=alpha)
    item = Item(item_id="diagnose", kind="image", path=path, prompt=prompt, reference=reference)
    view = View(item, 0, sha, lambda: loaded)
    refs: dict[str, Any] = {"diagnose": load_image(reference, background) if reference is not None else None}
    result = metric.compute(ViewBatch(views=[view], ctx=ctx, references=refs))
    value = float(result.values[column][0])
    error = result.errors[0] if result.errors else None
    if error or not np.isfinite(value):
        return ScoreOutcome(None, error or f"{metric.name} gave no finite value", False, metric.model_id(), column)
    return ScoreOutcome(value, None, False, metric.model_id(), column)
