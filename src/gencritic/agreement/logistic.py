"""The 4-parameter logistic mapping of VQEG (2000/2003) applied before PLCC and RMSE.

A metric and a MOS live on different scales and are rarely linearly related, so the IQA
convention is to fit a monotonic logistic from metric to MOS and report PLCC and RMSE of
the mapped values. gencritic uses the VQEG form

    f(x) = (b1 - b2) / (1 + exp(-(x - b3) / |b4|)) + b2

fitted by least squares (``scipy.optimize.curve_fit``) from a deterministic start, so the
same data always gives the same parameters. The width ``b4`` is bounded below by 1% of the
metric's range so that weakly related data cannot collapse the curve into a step. A fit that does not converge is reported as
such (``LogisticFit.ok = False`` with the reason); nothing quietly substitutes a line.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    """VQEG 4-parameter logistic; |b4| keeps the curve monotone in the sign set by b1 - b2."""
    z = -(np.asarray(x, dtype=np.float64) - b3) / max(abs(b4), 1e-12)
    return (b1 - b2) / (1.0 + np.exp(np.clip(z, -700.0, 700.0))) + b2


@dataclass(frozen=True)
class LogisticFit:
    """Fitted parameters (b1..b4) or why there are none."""

    params: tuple[float, float, float, float] = (math.nan, math.nan, math.nan, math.nan)
    ok: bool = False
    reason: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if not self.ok:
            return np.full(np.shape(x), np.nan)
        return logistic4(x, *self.params)


def fit_logistic4(x: np.ndarray, y: np.ndarray, maxfev: int = 20000) -> LogisticFit:
    """Least-squares fit of :func:`logistic4` mapping metric values ``x`` to MOS ``y``.

    The start follows common IQA practice: plateaus at the MOS extremes (swapped when the
    metric falls as MOS rises), centre at the metric mean, slope from the metric spread.
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.size < 5:
        return LogisticFit(reason=f"needs at least 5 items, got {x.size}")
    sx = float(np.std(x))
    if sx == 0.0 or float(np.std(y)) == 0.0:
        return LogisticFit(reason="metric or rating is constant")
    increasing = float(np.corrcoef(x, y)[0, 1]) >= 0
    hi, lo = float(np.max(y)), float(np.min(y))
    p0 = [hi, lo, float(np.mean(x)), sx] if increasing else [lo, hi, float(np.mean(x)), sx]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            # b4 (the transition width) is kept above 1% of the metric's range: on weakly related
            # data the unconstrained fit collapses to a step, turning "PLCC after mapping" into a
            # median split that flatters the metric.
            min_width = 0.01 * float(np.ptp(x))
            p0[3] = max(p0[3], 2 * min_width)
            bounds = ([-np.inf, -np.inf, -np.inf, min_width], [np.inf, np.inf, np.inf, np.inf])
            params, _ = curve_fit(logistic4, x, y, p0=p0, bounds=bounds, max_nfev=maxfev)
    except (RuntimeError, ValueError) as exc:
        return LogisticFit(reason=f"logistic fit did not converge: {exc}")
    if not np.all(np.isfinite(params)):
        return LogisticFit(reason="logistic fit gave non-finite parameters")
    b1, b2, b3, b4 = (float(p) for p in params)
    return LogisticFit(params=(b1, b2, b3, abs(b4)), ok=True)
