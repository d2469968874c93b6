"""Seeded, vectorised bootstrap of every agreement statistic, exact on each resample.

Why it is fast: a bootstrap resample of n items is a vector of counts ``w`` (how often each
item was drawn). Every statistic we report can be written with those counts instead of a
copied array, so B resamples become one (B, n) integer matrix and a handful of array ops:

* PLCC, RMSE: weighted moments (``W @ x``).
* SRCC: the average rank of item i in a resample is (count of drawn values below x_i) +
  (count of drawn values equal to x_i + 1) / 2: a cumulative sum of ``W`` over the items
  sorted by x, per tie group. Then a weighted Pearson of those ranks. Exact, O(B·n).
* KRCC (tau-b) and pairwise accuracy: concordant − discordant pairs of a resample equal
  ``w^T S w / 2`` with ``S[i, j] = sign(x_i − x_j)·sign(y_i − y_j)``; ties in x, in y and in
  both come from per-tie-group count sums. One float32 triangular matrix product (B, n) @ (n, n)
  (BLAS ``strmm``, items sorted by x) — exact, since every entry is a small integer. For n above ``krcc_exact_max`` (default 6,000,
  i.e. a 144 MB pair matrix) the KRCC and pairwise-accuracy intervals are computed on a
  seeded random subset of that many items, which widens them slightly (conservative); the
  point estimates always use every item.
* PLCC after the logistic mapping: the mapping is fitted once on all items and the
  resamples measure the sampling spread of the mapped PLCC/RMSE (refitting 1,000 curves
  would cost minutes and is not what papers do either).

Intervals are percentile intervals. What is resampled matters as much as how: in AGIQA-3K or
AIGCIQA2023 several images share a prompt and their scores and ratings move together, so
resampling images as if independent (as the IQA literature does) gives intervals that are too
narrow (in a simulation of 100 prompts x 10 images, 95 % intervals that held the truth 66 % of
the time). When items carry groups, whole groups are drawn with replacement by default (the
cluster bootstrap: each item's count is its group's); item resampling stays available by name,
for comparison with published tables. Either way the counts matrix has the same form, so every
statistic below is unchanged. Two metrics compared on the same rating share the same ``W``, so
their differences are paired.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gencritic.agreement import correlation as corr
from gencritic.agreement.logistic import LogisticFit, fit_logistic4

STATS = ("plcc", "plcc_logistic", "srcc", "krcc", "rmse", "pairwise_acc")
KRCC_EXACT_MAX = 6000
RESAMPLE_CHOICES = ("auto", "groups", "items")
FEW_GROUPS = 10  # below this many groups, say that group-bootstrap intervals are rough


def resample_counts(n: int, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) int32 counts of each item in each resample; seeded, so reproducible."""
    if n_boot <= 0 or n == 0:
        return np.zeros((0, n), dtype=np.int32)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    idx += np.arange(n_boot)[:, None] * n
    return np.bincount(idx.ravel(), minlength=n_boot * n).reshape(n_boot, n).astype(np.int32)


def resample_group_counts(groups: Sequence[Hashable] | np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) int32 counts when whole groups are drawn with replacement (cluster bootstrap).

    Each resample draws as many groups as there are, uniformly with replacement; every item of
    a group drawn k times gets count k, so resamples keep a group's items together and their
    sizes vary with the groups drawn. Groups are numbered in sorted order of their labels, so
    the result does not depend on the order of the rows.
    """
    labels = np.asarray([str(g) for g in groups])
    if n_boot <= 0 or labels.size == 0:
        return np.zeros((0, labels.size), dtype=np.int32)
    _, gid = np.unique(labels, return_inverse=True)
    n_groups = int(gid.max()) + 1
    per_group = resample_counts(n_groups, n_boot, seed)  # draws of each group in each resample
    return np.ascontiguousarray(per_group[:, gid.ravel()])


@dataclass(frozen=True)
class Resampling:
    """What a bootstrap resamples, and why: every output that shows an interval names it."""

    unit: str  # "groups" or "items"
    n_groups: int  # distinct groups among the items (every item its own group when none)
    reason: str

    def describe(self, group_name: str = "group") -> str:
        if self.unit == "groups":
            return f"{self.n_groups} {group_name} groups resampled ({self.reason})"
        return f"items resampled ({self.reason})"


def plan_resampling(groups: Sequence[Hashable] | np.ndarray | None, n: int, resample: str = "auto") -> Resampling:
    """Choose the resampling unit. ``auto``: groups when at least two items share one, else
    items; ``groups``/``items``: as asked (groups needs at least two groups)."""
    if resample not in RESAMPLE_CHOICES:
        raise ValueError(f"resample must be one of {', '.join(RESAMPLE_CHOICES)}, got {resample!r}")
    labels = None if groups is None else np.asarray([str(g) for g in groups])
    if labels is not None and labels.size != n:
        raise ValueError(f"groups are given for {labels.size} items, data has {n}")
    n_groups = n if labels is None else int(np.unique(labels).size)
    shared = labels is not None and n_groups < n
    if resample == "items":
        why = ("as asked; items of one group are treated as independent, as in published IQA tables"
               if shared else "as asked")
        return Resampling("items", n_groups, why)
    if resample == "groups":
        if labels is None or n_groups < 2:
            raise ValueError(f"cannot resample groups: the items form {n_groups} group(s); give a column that "
                             f"groups them or resample items")
        return Resampling("groups", n_groups, "as asked" + _rough(n_groups))
    if not shared:
        return Resampling("items", n_groups, "no two items share a group")
    if n_groups < 2:
        return Resampling("items", n_groups, "all items share one group, so only items can be resampled")
    return Resampling("groups", n_groups, "items of one group move together, so whole groups are drawn"
                      + _rough(n_groups))


def _rough(n_groups: int) -> str:
    return f"; with only {n_groups} groups the intervals are rough" if n_groups < FEW_GROUPS else ""


def bootstrap_counts(n: int, n_boot: int, seed: int, groups: Sequence[Hashable] | np.ndarray | None = None,
                     resample: str = "auto") -> tuple[np.ndarray, Resampling]:
    """Counts of every item in every resample, drawn as :func:`plan_resampling` decides."""
    plan = plan_resampling(groups, n, resample)
    if plan.unit == "groups":
        assert groups is not None
        return resample_group_counts(groups, n_boot, seed), plan
    return resample_counts(n, n_boot, seed), plan


def _group_sums(W: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """(B, G): per resample, the count of draws in each group of items."""
    order = np.argsort(gid, kind="stable")
    sorted_gid = gid[order]
    starts = np.flatnonzero(np.r_[True, sorted_gid[1:] != sorted_gid[:-1]])
    return np.add.reduceat(W[:, order], starts, axis=1)


def _tied_pairs(W: np.ndarray, gid: np.ndarray) -> np.ndarray:
    """Pairs of draws with equal values, per resample (copies of one item included)."""
    if np.unique(gid).size == gid.size:  # no ties in the data: only repeated draws tie
        Wf = W.astype(np.float64, copy=False)
        return np.einsum("ij,ij->i", Wf, Wf - 1.0) / 2.0
    g = _group_sums(W, gid).astype(np.float64)
    return np.einsum("ij,ij->i", g, g - 1.0) / 2.0


def resampled_ranks(W: np.ndarray, x: np.ndarray) -> np.ndarray:
    """(B, n) average rank each item's value takes in each resample."""
    order, gid, starts = corr.tie_groups(x)
    Wsorted = W[:, order]
    Wg = Wsorted if starts.size == x.size else np.add.reduceat(Wsorted, starts, axis=1)
    Wg = Wg.astype(np.float64)
    below = np.cumsum(Wg, axis=1)
    below -= Wg
    below += (Wg + 1.0) / 2.0
    return below[:, gid]


def weighted_pearson(W: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson's r per resample; ``a``/``b`` are (n,) or (B, n). NaN where a side is constant.

    1-D inputs (metric values, ratings) go through matrix-vector products on centred data;
    2-D inputs (resampled ranks) through row-wise ``einsum`` without temporaries.
    """
    Wf = W.astype(np.float64, copy=False)
    N = Wf.sum(axis=1)

    def moments(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if u.ndim == 1 and v.ndim == 1:
            uc, vc = u - u.mean(), v - v.mean()
            return Wf @ uc / N, Wf @ vc / N, np.stack([Wf @ (uc * uc), Wf @ (vc * vc), Wf @ (uc * vc)])
        uc = u - u.mean(axis=-1, keepdims=True) if u.ndim == 2 else u - u.mean()
        vc = v - v.mean(axis=-1, keepdims=True) if v.ndim == 2 else v - v.mean()
        wu = Wf * uc
        wv = Wf * vc
        return (wu.sum(axis=1) / N, wv.sum(axis=1) / N,
                np.stack([np.einsum("ij,ij->i", wu, np.broadcast_to(uc, wu.shape)),
                          np.einsum("ij,ij->i", wv, np.broadcast_to(vc, wv.shape)),
                          np.einsum("ij,ij->i", wu, np.broadcast_to(vc, wu.shape))]))

    ma, mb, (saa, sbb, sab) = moments(a, b)
    va = saa - N * ma * ma
    vb = sbb - N * mb * mb
    cov = sab - N * ma * mb
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(va * vb)
    r = np.where((va > 1e-12 * np.abs(saa)) & (vb > 1e-12 * np.abs(sbb)), r, np.nan)
    return np.clip(r, -1.0, 1.0)


def _joint_gid(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    _, inv = np.unique(np.stack([x, y], axis=1), axis=0, return_inverse=True)
    return np.asarray(inv).ravel()


def _concordance(W: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Concordant − discordant pairs per resample, ``wᵀ S w / 2``.

    With items sorted by x, ``S`` restricted to j > i is ``U[i, j] = [x_j > x_i]·sign(y_j − y_i)``
    and ``wᵀ S w / 2 = wᵀ U w``; U is upper triangular, so BLAS ``strmm`` does half the work
    of a full product. float32 is exact here: entries and partial sums are small integers.
    """
    from scipy.linalg import blas

    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order]
    U = np.triu((np.sign(ys[None, :] - ys[:, None]) * (xs[None, :] > xs[:, None])).astype(np.float32), 1)
    Ws = np.ascontiguousarray(W[:, order], dtype=np.float32)
    # (Ws U)^T = U^T Ws^T: C-ordered arrays are the Fortran layout of their transposes, so BLAS
    # works in place on them without copies
    WUt = blas.strmm(1.0, U.T, Ws.T.copy(order="F"), side=0, lower=1, trans_a=0, diag=0, overwrite_b=1)
    return np.einsum("ij,ij->i", WUt.T.astype(np.float64), Ws.astype(np.float64))


def resampled_kendall(W: np.ndarray, x: np.ndarray, y: np.ndarray, sign: float = 1.0) -> dict[str, np.ndarray]:
    """Per resample: tau-b of (x, y) and pairwise accuracy of ``sign * x`` against y."""
    cmd = _concordance(W, x, y)
    N = W.sum(axis=1).astype(np.float64)
    total = N * (N - 1.0) / 2.0
    xt = _tied_pairs(W, corr.tie_groups(x)[1])
    yt = _tied_pairs(W, corr.tie_groups(y)[1])
    xyt = _tied_pairs(W, _joint_gid(x, y))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = cmd / np.sqrt((total - xt) * (total - yt))
        untied = total - xt - yt + xyt
        concordant = (untied + sign * cmd) / 2.0
        acc = (concordant + 0.5 * (xt - xyt)) / (total - yt)
    return {"krcc": tau, "pairwise_acc": acc}


@dataclass
class Agreement:
    """Agreement of one metric with one rating: point values, CI bounds, bootstrap draws."""

    n: int
    point: dict[str, float]
    lo: dict[str, float] = field(default_factory=dict)
    hi: dict[str, float] = field(default_factory=dict)
    draws: dict[str, np.ndarray] = field(default_factory=dict)
    logistic: LogisticFit = field(default_factory=LogisticFit)
    resampling: Resampling | None = None  # None: no intervals

    def row(self) -> dict[str, float]:
        out: dict[str, float] = {"n": self.n}
        for s in STATS:
            out[s] = self.point.get(s, math.nan)
            out[f"{s}_lo"] = self.lo.get(s, math.nan)
            out[f"{s}_hi"] = self.hi.get(s, math.nan)
        return out


def point_agreement(metric: np.ndarray, human: np.ndarray, higher_is_better: bool = True) -> Agreement:
    """Every statistic on all items (no resampling)."""
    x = np.asarray(metric, dtype=np.float64)
    y = np.asarray(human, dtype=np.float64)
    fit = fit_logistic4(x, y)
    mapped = fit(x)
    counts = corr.kendall_counts(x, y)
    point = {
        "plcc": corr.pearson(x, y),
        "plcc_logistic": corr.pearson(mapped, y) if fit.ok else math.nan,
        "srcc": corr.spearman(x, y),
        "krcc": corr.tau_b_from_counts(counts),
        "rmse": corr.rmse(mapped, y) if fit.ok else math.nan,
        "pairwise_acc": corr.pairwise_accuracy_from_counts(counts, 1.0 if higher_is_better else -1.0),
    }
    return Agreement(n=int(x.size), point=point, logistic=fit)


def agreement(metric: np.ndarray, human: np.ndarray, counts: np.ndarray | None = None,
              higher_is_better: bool = True, confidence: float = 0.95, seed: int = 0,
              krcc_exact_max: int = KRCC_EXACT_MAX, *, groups: Sequence[Hashable] | np.ndarray | None = None,
              n_boot: int = 0, resample: str = "auto", resampling: Resampling | None = None) -> Agreement:
    """Point estimates plus percentile bootstrap intervals.

    The resamples are ``counts`` when given (callers comparing metrics share one matrix;
    ``resampling`` says how it was drawn, items if omitted), else ``n_boot`` resamples drawn
    here with ``seed``: of whole ``groups`` by default when items share them, of items when
    ``resample="items"`` (see :func:`plan_resampling`).
    """
    result = point_agreement(metric, human, higher_is_better)
    x = np.asarray(metric, dtype=np.float64)
    y = np.asarray(human, dtype=np.float64)
    if counts is None and n_boot > 0:
        counts, resampling = bootstrap_counts(x.size, n_boot, seed, groups, resample)
    if counts is None or counts.shape[0] == 0:
        return result
    plan = resampling or Resampling("items", x.size, "as given")
    result.resampling = plan
    W = counts.astype(np.float64)  # converted once; every resampled statistic reads it
    if W.shape[1] != x.size:
        raise ValueError(f"bootstrap counts are for {W.shape[1]} items, data has {x.size}")
    draws: dict[str, np.ndarray] = {}
    draws["plcc"] = weighted_pearson(W, x, y)
    draws["srcc"] = weighted_pearson(W, resampled_ranks(W, x), resampled_ranks(W, y))
    if result.logistic.ok:
        mapped = result.logistic(x)
        draws["plcc_logistic"] = weighted_pearson(W, mapped, y)
        draws["rmse"] = np.sqrt((W @ (mapped - y) ** 2) / W.sum(axis=1))
    sign = 1.0 if higher_is_better else -1.0
    if x.size <= krcc_exact_max:
        draws.update(resampled_kendall(W, x, y, sign))
    else:
        keep = np.sort(np.random.default_rng(seed + 7919).choice(x.size, krcc_exact_max, replace=False))
        # the kept items' counts in the same group resamples keep groups whole; for items, a
        # fresh item bootstrap of the subset
        sub = counts[:, keep] if plan.unit == "groups" else resample_counts(krcc_exact_max, W.shape[0], seed + 7919)
        draws.update(resampled_kendall(sub, x[keep], y[keep], sign))
    result.draws = draws
    alpha = (1.0 - confidence) / 2.0
    for name, values in draws.items():
        lo, hi = percentile_interval(values, alpha)
        result.lo[name], result.hi[name] = lo, hi
    return result


def percentile_interval(values: np.ndarray, alpha: float) -> tuple[float, float]:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    lo, hi = np.quantile(finite, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------
# Do two metrics differ?


def williams_test(r12: float, r13: float, r23: float, n: int) -> tuple[float, float]:
    """Williams' t for two dependent correlations sharing variable 1 (the human rating).

    r12 = corr(human, metric A), r13 = corr(human, metric B), r23 = corr(A, B); returns
    (t, two-sided p) with n - 3 degrees of freedom (Williams 1959; used for MT metrics by
    Graham & Baldwin 2014).
    """
    from scipy.stats import t as t_dist

    if n <= 3 or not all(math.isfinite(v) for v in (r12, r13, r23)):
        return math.nan, math.nan
    k = 1 - r12 ** 2 - r13 ** 2 - r23 ** 2 + 2 * r12 * r13 * r23
    den = 2 * k * (n - 1) / (n - 3) + ((r12 + r13) ** 2 / 4) * (1 - r23) ** 3
    if den <= 0:
        return math.nan, math.nan
    t = (r12 - r13) * math.sqrt((n - 1) * (1 + r23)) / math.sqrt(den)
    return float(t), float(2 * t_dist.sf(abs(t), n - 3))


def paired_bootstrap_p(draws_a: np.ndarray, draws_b: np.ndarray) -> tuple[float, float, float]:
    """Mean difference a − b over paired resamples, its 95% interval bounds... as (lo, hi, p).

    p is the two-sided bootstrap p-value: twice the smaller share of resamples on either
    side of zero (floored at 1/B so it never claims p = 0).
    """
    d = draws_a - draws_b
    d = d[np.isfinite(d)]
    if d.size == 0:
        return math.nan, math.nan, math.nan
    lo, hi = np.quantile(d, [0.025, 0.975])
    p = 2.0 * min(float((d <= 0).mean()), float((d >= 0).mean()))
    return float(lo), float(hi), float(min(1.0, max(p, 1.0 / d.size)))


def compare(name_a: str, a: Agreement, metric_a: np.ndarray, name_b: str, b: Agreement,
            metric_b: np.ndarray, human: np.ndarray, signs: Sequence[float] = (1.0, 1.0)) -> dict[str, object]:
    """Does metric A agree with people better than metric B on the same items?

    Correlations are compared after orienting each metric so that "better" is up (a
    lower-is-better metric's correlations are negated), so the differences mean "A tracks
    people more closely than B".
    """
    sa, sb = signs
    row: dict[str, object] = {"metric_a": name_a, "metric_b": name_b, "n": a.n}
    for stat in ("srcc", "plcc"):
        diff = sa * a.point[stat] - sb * b.point[stat]
        row[f"{stat}_diff"] = diff
        if stat in a.draws and stat in b.draws:
            lo, hi, p = paired_bootstrap_p(sa * a.draws[stat], sb * b.draws[stat])
        else:
            lo, hi, p = math.nan, math.nan, math.nan
        row[f"{stat}_diff_lo"], row[f"{stat}_diff_hi"], row[f"{stat}_p_bootstrap"] = lo, hi, p
    r23 = corr.pearson(sa * np.asarray(metric_a), sb * np.asarray(metric_b))
    t, p = williams_test(sa * a.point["plcc"], sb * b.point["plcc"], r23, a.n)
    row["williams_t"], row["plcc_p_williams"] = t, p
    return row
