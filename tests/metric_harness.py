"""One helper that checks a metric the way users run it, after torchmetrics' ``MetricTester``.

:func:`check_metric` scores the given cases through :func:`gencritic.scoring.score` (the
registry spec, option parsing, setup, batching and aggregation all included) and checks:

1. **reference**: each column equals an independent computation (scipy, the upstream package,
   raw model calls, a hand computation) on the same inputs, within the given tolerance;
2. **declared range**: every value lies in ``MetricInfo.range``;
3. **direction**: for each pair ``(better, worse)`` of cases the caller knows the order of, the
   metric ranks them as ``MetricInfo.higher_is_better`` says;
4. **determinism**: a second run gives the same values bit for bit, and scoring one case per
   batch gives the same values within the tolerance (a value does not depend on its neighbours).

New metric tests use it; it returns the rows of the first run for metric-specific assertions.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Case:
    """One input: an image file, with the prompt and reference image the metric may need."""

    image: Path
    prompt: str | None = None
    reference: Path | None = None


Expected = Mapping[str, Sequence[float]] | Callable[[Sequence[Case]], Mapping[str, Sequence[float]]]


def _score(spec: str, cases: Sequence[Case], batch_size: int, **options: Any) -> list[dict[str, Any]]:
    from gencritic.items import Item
    from gencritic.scoring import score

    items = [Item(f"case{i}", "image", c.image, prompt=c.prompt, reference=c.reference) for i, c in enumerate(cases)]
    run = score(items, metrics=[spec], progress=False, batch_size=batch_size, **options)
    failed = [(r["item_id"], r["error"]) for r in run.rows if not r["success"]]
    assert not failed, f"{spec}: cases failed: {failed}"
    return run.rows


def _in_range(value: float, low: float, high: float) -> bool:
    return not math.isnan(value) and low <= value <= high


def check_metric(spec: str, cases: Sequence[Case], expected: Expected, *, model: str | None = None,
                 atol: float = 1e-6, rtol: float = 0.0, better: Sequence[tuple[int, int]] = (),
                 device: str = "cpu", cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Check ``spec`` on ``cases`` against ``expected`` (column -> value per case, or a function of
    the cases giving that), its declared range and direction, and determinism; see the module."""
    from gencritic.metrics.registry import create_metric

    info = create_metric(spec, model).info
    options: dict[str, Any] = {"device": device, "cache_dir": cache_dir}
    if model is not None:
        options["model"] = model
    rows = _score(spec, cases, len(cases), **options)
    want = expected(cases) if callable(expected) else expected
    assert want, "give at least one expected column"
    for column, values in want.items():
        got = np.array([r[column] for r in rows], dtype=np.float64)
        np.testing.assert_allclose(got, np.asarray(values, dtype=np.float64), atol=atol, rtol=rtol,
                                   err_msg=f"{spec}: {column} against the reference")
    low, high = info.range
    for column in info.columns:
        outside = [(r["item_id"], r[column]) for r in rows if not _in_range(float(r[column]), low, high)]
        assert not outside, f"{spec}: {column} outside its declared range [{low}, {high}]: {outside}"
    sign = 1.0 if info.higher_is_better else -1.0
    for good, bad in better:
        a, b = float(rows[good][info.columns[0]]), float(rows[bad][info.columns[0]])
        assert sign * (a - b) > 0, (f"{spec}: case {good} should be better than case {bad} "
                                    f"({'higher' if sign > 0 else 'lower'} is better) but scores {a} vs {b}")
    again = _score(spec, cases, len(cases), **options)
    alone = _score(spec, cases, 1, **options)
    for column in info.columns:
        first = np.array([r[column] for r in rows], dtype=np.float64)
        assert np.array_equal(first, np.array([r[column] for r in again], dtype=np.float64), equal_nan=True), \
            f"{spec}: {column} differs between two identical runs"
        np.testing.assert_allclose(np.array([r[column] for r in alone], dtype=np.float64), first, atol=atol,
                                   rtol=rtol, err_msg=f"{spec}: {column} depends on the other cases of its batch")
    return rows
