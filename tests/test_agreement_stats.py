"""Agreement statistics against scipy, the logistic fit against known curves, and the
bootstrap against explicit resampling and nominal coverage."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats as st
from hypothesis import given, settings
from hypothesis import strategies as hs

from gencritic.agreement import correlation as corr
from gencritic.agreement.bootstrap import (
    agreement,
    compare,
    paired_bootstrap_p,
    resample_counts,
    resampled_kendall,
    resampled_ranks,
    weighted_pearson,
    williams_test,
)
from gencritic.agreement.logistic import fit_logistic4, logistic4


def _brute_pairwise_accuracy(m: np.ndarray, h: np.ndarray) -> float:
    num = den = 0.0
    for i in range(m.size):
        for j in range(i + 1, m.size):
            if h[i] == h[j]:
                continue
            den += 1
            s = np.sign(m[i] - m[j]) * np.sign(h[i] - h[j])
            num += 1.0 if s > 0 else 0.5 if s == 0 else 0.0
    return num / den


@pytest.mark.parametrize("n", [3, 10, 57, 400, 3001])
@pytest.mark.parametrize("tied", [False, True])
def test_correlations_match_scipy(n: int, tied: bool) -> None:
    rng = np.random.default_rng(n + tied)
    if tied:  # heavy ties on both sides, as with 5-point MOS and quantised metrics
        x = rng.integers(0, 6, n).astype(float)
        y = x + rng.integers(0, 3, n)
    else:
        x = rng.normal(size=n)
        y = 0.5 * x + rng.normal(size=n)
    assert corr.pearson(x, y) == pytest.approx(st.pearsonr(x, y).statistic, abs=1e-9)
    assert corr.spearman(x, y) == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-9)
    assert corr.kendall_tau_b(x, y) == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-9)
    np.testing.assert_allclose(corr.rankdata(x), st.rankdata(x), atol=1e-12)


@settings(max_examples=60, deadline=None)
@given(hs.lists(hs.tuples(hs.integers(-3, 3), hs.integers(-2, 2)), min_size=3, max_size=40))
def test_kendall_and_pairwise_accuracy_property(pairs: list[tuple[int, int]]) -> None:
    x = np.array([p[0] for p in pairs], dtype=float)
    y = np.array([p[1] for p in pairs], dtype=float)
    expected = st.kendalltau(x, y).statistic
    got = corr.kendall_tau_b(x, y)
    assert (math.isnan(got) and math.isnan(expected)) or got == pytest.approx(expected, abs=1e-9)
    if len(set(y.tolist())) > 1:
        assert corr.pairwise_accuracy(x, y) == pytest.approx(_brute_pairwise_accuracy(x, y), abs=1e-12)


def test_inversions_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 5, 33, 100):
        v = rng.integers(0, 7, n)
        brute = sum(int(v[i] > v[j]) for i in range(n) for j in range(i + 1, n))
        assert corr.count_inversions(v) == brute


def test_constant_input_is_nan_not_zero() -> None:
    x = np.ones(10)
    y = np.arange(10.0)
    assert math.isnan(corr.pearson(x, y))
    assert math.isnan(corr.spearman(x, y))
    assert math.isnan(corr.kendall_tau_b(x, y))


def test_logistic_recovers_known_parameters() -> None:
    rng = np.random.default_rng(0)
    true = (4.5, 1.2, 0.3, 0.6)
    x = rng.uniform(-3, 3, 800)
    y = logistic4(x, *true) + rng.normal(0, 0.03, x.size)
    fit = fit_logistic4(x, y)
    assert fit.ok
    np.testing.assert_allclose(fit.params, true, atol=0.05)
    # a falling relationship (lower-is-better metric) is fitted with the plateaus swapped
    fit_down = fit_logistic4(-x, y)
    assert fit_down.ok
    assert np.corrcoef(fit_down(-x), y)[0, 1] > 0.99


def test_logistic_fit_refuses_constant_input() -> None:
    fit = fit_logistic4(np.ones(20), np.arange(20.0))
    assert not fit.ok and "constant" in fit.reason
    assert np.isnan(fit(np.ones(3))).all()


def test_weighted_bootstrap_equals_explicit_resampling() -> None:
    """Every resampled statistic equals scipy on the explicitly copied resample."""
    rng = np.random.default_rng(1)
    n = 80
    x = rng.integers(0, 9, n).astype(float)
    y = x + rng.integers(0, 4, n)
    W = resample_counts(n, 12, seed=5)
    assert (W.sum(1) == n).all()
    tau = resampled_kendall(W, x, y)
    rho = weighted_pearson(W, resampled_ranks(W, x), resampled_ranks(W, y))
    r = weighted_pearson(W, x, y)
    for b in range(W.shape[0]):
        idx = np.repeat(np.arange(n), W[b])
        assert tau["krcc"][b] == pytest.approx(st.kendalltau(x[idx], y[idx]).statistic, abs=1e-9)
        assert tau["pairwise_acc"][b] == pytest.approx(corr.pairwise_accuracy(x[idx], y[idx]), abs=1e-9)
        assert rho[b] == pytest.approx(st.spearmanr(x[idx], y[idx]).statistic, abs=1e-9)
        assert r[b] == pytest.approx(st.pearsonr(x[idx], y[idx]).statistic, abs=1e-9)


def test_bootstrap_is_seeded() -> None:
    assert np.array_equal(resample_counts(50, 20, 3), resample_counts(50, 20, 3))
    assert not np.array_equal(resample_counts(50, 20, 3), resample_counts(50, 20, 4))


def test_bootstrap_intervals_cover_truth_at_nominal_rate() -> None:
    """Bivariate normal with rho = 0.6: population PLCC, SRCC and KRCC are known in closed form."""
    rho = 0.6
    truth = {"plcc": rho, "srcc": 6 / math.pi * math.asin(rho / 2), "krcc": 2 / math.pi * math.asin(rho)}
    rng = np.random.default_rng(2024)
    sims, n = 200, 120
    hits = dict.fromkeys(truth, 0)
    cov = [[1, rho], [rho, 1]]
    for s in range(sims):
        xy = rng.multivariate_normal([0, 0], cov, size=n)
        x, y = xy[:, 0], xy[:, 1]
        W = resample_counts(n, 300, seed=s)
        draws = {"plcc": weighted_pearson(W, x, y),
                 "srcc": weighted_pearson(W, resampled_ranks(W, x), resampled_ranks(W, y)),
                 "krcc": resampled_kendall(W, x, y)["krcc"]}
        for k, t in truth.items():
            lo, hi = np.quantile(draws[k], [0.025, 0.975])
            hits[k] += lo <= t <= hi
    for k in truth:
        rate = hits[k] / sims
        assert 0.88 <= rate <= 0.99, f"{k}: 95% interval covered the truth in {rate:.0%} of simulations"


def test_large_n_krcc_interval_is_subsampled_but_sane() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=700)
    y = x + rng.normal(size=700)
    a = agreement(x, y, resample_counts(700, 100, 0), krcc_exact_max=300)
    assert a.lo["krcc"] < a.point["krcc"] < a.hi["krcc"]


def test_williams_test_and_paired_bootstrap() -> None:
    # the worked example of R psych::r.test (n = 103, r12 = .4, r13 = .5, r23 = .1): t = -0.89, p = 0.37
    t, p = williams_test(0.4, 0.5, 0.1, 103)
    assert round(t, 2) == -0.89 and round(p, 2) == 0.37
    t, p = williams_test(0.5, 0.5, 0.7, 100)
    assert t == 0.0 and p == pytest.approx(1.0)
    t, p = williams_test(0.8, 0.4, 0.5, 200)
    assert t > 0 and p < 1e-6
    _, p_small = williams_test(0.8, 0.4, 0.5, 20)
    assert p_small > p  # fewer items, less certainty
    lo, hi, p = paired_bootstrap_p(np.full(100, 0.3), np.full(100, 0.3))
    assert lo == hi == 0.0 and p == 1.0


def test_compare_detects_a_better_metric() -> None:
    rng = np.random.default_rng(7)
    n = 400
    human = rng.normal(size=n)
    good = human + 0.3 * rng.normal(size=n)
    bad = human + 2.0 * rng.normal(size=n)
    W = resample_counts(n, 500, 0)
    row = compare("good", agreement(good, human, W), good, "bad", agreement(bad, human, W), bad, human)
    assert row["srcc_diff"] > 0.3
    assert row["srcc_p_bootstrap"] < 0.01 and row["plcc_p_williams"] < 0.01
    # a lower-is-better metric that is the negated good one compares as equal to it
    neg = compare("good", agreement(good, human, W), good, "neg", agreement(-good, human, W, higher_is_better=False),
                  -good, human, signs=(1.0, -1.0))
    assert neg["srcc_diff"] == pytest.approx(0.0, abs=1e-12)


def test_lower_is_better_metric_pairwise_accuracy_is_oriented() -> None:
    from gencritic.agreement.bootstrap import point_agreement

    rng = np.random.default_rng(11)
    y = rng.integers(1, 6, 200).astype(float)
    x = y + rng.normal(0, 1, 200)
    W = resample_counts(200, 50, 0)
    up = agreement(x, y, W)
    down = agreement(-x, y, W, higher_is_better=False)
    assert down.point["pairwise_acc"] == pytest.approx(up.point["pairwise_acc"], abs=1e-12)
    assert down.point["srcc"] == pytest.approx(-up.point["srcc"], abs=1e-12)
    np.testing.assert_allclose(down.draws["pairwise_acc"], up.draws["pairwise_acc"], atol=1e-12)
    assert point_agreement(x, y).point["pairwise_acc"] > 0.7
