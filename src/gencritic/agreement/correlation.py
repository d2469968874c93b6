"""Point estimates of agreement between a metric and human ratings, as IQA papers report them.

Pure numpy, no scipy at run time, so the same code paths serve the point estimate and the
vectorised bootstrap (:mod:`gencritic.agreement.bootstrap`). The tests hold each function to
scipy (``pearsonr``, ``spearmanr``, ``kendalltau`` with tau-b) to 1e-9, ties included.

* PLCC: Pearson's r (raw, and after the VQEG logistic mapping, see :mod:`.logistic`).
* SRCC: Spearman's rho = Pearson's r of average ranks (ties share the mean rank).
* KRCC: Kendall's tau-b, counted in O(n log² n) by a block merge sort (no n² pair matrix),
  so it stays cheap for 30k-item sets.
* Pairwise accuracy: of the pairs people rated differently, the share the metric orders the
  same way (metric ties count one half) — the statistic preference benchmarks report.
"""

from __future__ import annotations

import math

import numpy as np

FloatArray = np.ndarray


def _clean(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    x = np.asarray(x, dtype=np.float64).ravel()
    y = np.asarray(y, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"x and y differ in length ({x.size} vs {y.size})")
    return x, y


def pearson(x: FloatArray, y: FloatArray) -> float:
    """Pearson's r; NaN when either side is constant (no defined correlation, not 0)."""
    x, y = _clean(x, y)
    if x.size < 2:
        return math.nan
    xc = x - x.mean()
    yc = y - y.mean()
    den = math.sqrt(float(xc @ xc) * float(yc @ yc))
    if den == 0.0:
        return math.nan
    return float(np.clip((xc @ yc) / den, -1.0, 1.0))


def tie_groups(x: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(order, group id per item, group starts in sorted order) of equal values."""
    order = np.argsort(x, kind="mergesort")
    xs = x[order]
    new = np.empty(x.size, dtype=bool)
    if x.size:
        new[0] = True
        new[1:] = xs[1:] != xs[:-1]
    gid_sorted = np.cumsum(new) - 1
    gid = np.empty(x.size, dtype=np.int64)
    gid[order] = gid_sorted
    return order, gid, np.flatnonzero(new)


def rankdata(x: FloatArray) -> FloatArray:
    """Average ranks starting at 1 (scipy's ``rankdata(method='average')``)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    _, gid, starts = tie_groups(x)
    counts = np.diff(np.append(starts, x.size))
    group_rank = starts + (counts + 1) / 2.0
    return group_rank[gid]


def spearman(x: FloatArray, y: FloatArray) -> float:
    """Spearman's rho with average ranks for ties."""
    x, y = _clean(x, y)
    return pearson(rankdata(x), rankdata(y))


def _tied_pairs(x: FloatArray) -> int:
    _, _, starts = tie_groups(x)
    counts = np.diff(np.append(starts, x.size)).astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def _joint_tied_pairs(x: FloatArray, y: FloatArray) -> int:
    if x.size == 0:
        return 0
    _, counts = np.unique(np.stack([x, y], axis=1), axis=0, return_counts=True)
    counts = counts.astype(np.int64)
    return int((counts * (counts - 1) // 2).sum())


def count_inversions(v: np.ndarray) -> int:
    """Pairs i < j with v[i] > v[j] (strict), by a bottom-up merge sort vectorised per level."""
    n = v.size
    if n < 2:
        return 0
    # dense integer codes keep the block-offset trick exact
    _, codes = np.unique(v, return_inverse=True)
    a = codes.astype(np.int64).ravel()
    big = int(a.max()) + 1
    pos = np.arange(n)
    total = 0
    width = 1
    while width < n:
        block = pos // width           # block of each position at this level (each block sorted)
        pair = block // 2
        is_right = (block % 2) == 1
        keyed = pair * big + a         # sorting keyed values keeps pairs apart
        left_keys = keyed[~is_right]   # already sorted (blocks sorted, pairs ascending)
        right_vals = keyed[is_right]
        right_pair = pair[is_right]
        # left elements of the same pair that are strictly greater than each right element
        left_end = np.searchsorted(left_keys, (right_pair + 1) * big, side="left")
        not_greater = np.searchsorted(left_keys, right_vals, side="right")
        total += int((left_end - not_greater).sum())
        a = np.sort(keyed.reshape(-1), kind="stable")  # merge each pair of blocks
        a = a - (pos // (2 * width)) * big
        width *= 2
    return total


def kendall_counts(x: FloatArray, y: FloatArray) -> dict[str, int]:
    """Pair counts behind tau-b: total, tied in x, tied in y, tied in both, concordant - discordant."""
    x, y = _clean(x, y)
    n = x.size
    total = n * (n - 1) // 2
    order = np.lexsort((y, x))
    discordant = count_inversions(y[order])
    x_ties = _tied_pairs(x)
    y_ties = _tied_pairs(y)
    xy_ties = _joint_tied_pairs(x, y)
    untied = total - x_ties - y_ties + xy_ties
    return {"total": total, "x_ties": x_ties, "y_ties": y_ties, "xy_ties": xy_ties,
            "con_minus_dis": untied - 2 * discordant, "discordant": discordant}


def kendall_tau_b(x: FloatArray, y: FloatArray) -> float:
    """Kendall's tau-b (the variant ``scipy.stats.kendalltau`` returns by default)."""
    return tau_b_from_counts(kendall_counts(x, y))


def tau_b_from_counts(c: dict[str, int]) -> float:
    den = math.sqrt(float(c["total"] - c["x_ties"]) * float(c["total"] - c["y_ties"]))
    if den == 0.0:
        return math.nan
    return float(c["con_minus_dis"] / den)


def pairwise_accuracy(metric: FloatArray, human: FloatArray) -> float:
    """Share of differently-rated pairs the metric orders like people; metric ties count 0.5."""
    return pairwise_accuracy_from_counts(kendall_counts(metric, human))


def pairwise_accuracy_from_counts(c: dict[str, int], sign: float = 1.0) -> float:
    """As :func:`pairwise_accuracy`; ``sign`` = -1 scores a lower-is-better metric."""
    judged = c["total"] - c["y_ties"]
    if judged == 0:
        return math.nan
    untied = c["total"] - c["x_ties"] - c["y_ties"] + c["xy_ties"]
    concordant = (untied + sign * c["con_minus_dis"]) / 2
    metric_only_ties = c["x_ties"] - c["xy_ties"]
    return float((concordant + 0.5 * metric_only_ties) / judged)


def rmse(pred: FloatArray, target: FloatArray) -> float:
    pred, target = _clean(pred, target)
    return float(np.sqrt(np.mean((pred - target) ** 2))) if pred.size else math.nan
