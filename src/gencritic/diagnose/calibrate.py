"""Calibrate a profile from people: fit check weights to pairwise choices, and the pass threshold
to accept/reject labels, then say on held-out pairs whether it ranks better than before.

Model (Bradley-Terry on features): each render i has a vector ``x_i`` of component scores
(one per profile check, in [0, 1]); a person prefers i over j with probability
``σ(β · (x_i - x_j))``. β is the L2-regularised maximum-likelihood fit, found by Newton's
method on a strictly convex loss: no randomness, one answer. Rankings are turned into the
pairs they imply. Profile weights are β clipped at 0 (a check people *dislike* being good at
gets no weight, and is reported) and rescaled to the profile's original weight total.

The pass threshold is the cut on the calibrated 0-10 overall that maximises balanced
accuracy on accept/reject labels (midpoints between sorted scores; the lowest cut wins ties).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.errors import InputError


def pairs_from_ranking(ranking: Sequence[int]) -> np.ndarray:
    """Best-first ranking of item indices -> every implied (winner, loser) pair."""
    r = list(ranking)
    return np.array([(r[i], r[j]) for i in range(len(r)) for j in range(i + 1, len(r))], dtype=int).reshape(-1, 2)


def pairs_from_ratings(ratings: Sequence[float], margin: float = 0.0) -> np.ndarray:
    """Every (better, worse) pair whose ratings differ by more than ``margin`` (ties and near-ties dropped)."""
    r = np.asarray(ratings, dtype=np.float64)
    i, j = np.triu_indices(r.size, k=1)
    diff = r[i] - r[j]
    keep = np.abs(diff) > margin
    i, j, diff = i[keep], j[keep], diff[keep]
    return np.stack([np.where(diff > 0, i, j), np.where(diff > 0, j, i)], axis=1).astype(int).reshape(-1, 2)


def _loss_grad_hess(beta: np.ndarray, d: np.ndarray, l2: float) -> tuple[float, np.ndarray, np.ndarray]:
    z = d @ beta
    loss = float(np.logaddexp(0.0, -z).sum() + 0.5 * l2 * beta @ beta)
    p = 1.0 / (1.0 + np.exp(-z))  # P(observed winner wins)
    grad = -(d * (1.0 - p)[:, None]).sum(axis=0) + l2 * beta
    hess = (d * (p * (1.0 - p))[:, None]).T @ d + l2 * np.eye(d.shape[1])
    return loss, grad, hess


def fit_pairwise_weights(features: np.ndarray, pairs: np.ndarray, l2: float = 1.0, max_iter: int = 100,
                         tol: float = 1e-10) -> np.ndarray:
    """β minimising ``Σ log(1 + exp(-β·(x_w - x_l))) + l2/2 |β|²`` (Newton with step halving)."""
    x = np.asarray(features, dtype=np.float64)
    p = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if p.size == 0:
        raise ValueError("no pairs to fit")
    if l2 <= 0:
        raise ValueError("l2 must be positive (it keeps the fit unique when choices are separable)")
    d = x[p[:, 0]] - x[p[:, 1]]
    beta = np.zeros(x.shape[1])
    loss, grad, hess = _loss_grad_hess(beta, d, l2)
    for _ in range(max_iter):
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while True:
            cand = beta - t * step
            new_loss, new_grad, new_hess = _loss_grad_hess(cand, d, l2)
            if new_loss <= loss or t < 1e-8:
                break
            t *= 0.5
        beta, done = cand, abs(loss - new_loss) < tol * max(1.0, abs(loss))
        loss, grad, hess = new_loss, new_grad, new_hess
        if done or np.abs(grad).max() < 1e-12:
            break
    return beta


def pair_accuracy(scores: np.ndarray, pairs: np.ndarray) -> float:
    """Share of pairs whose winner scores higher (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    p = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if p.size == 0:
        return float("nan")
    diff = s[p[:, 0]] - s[p[:, 1]]
    return float(((diff > 0) + 0.5 * (diff == 0)).mean())


def split_pairs(n: int, holdout: float = 0.25, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (train, test) index split of n pairs; at least one pair on each side when n >= 2."""
    order = np.random.default_rng(seed).permutation(n)
    n_test = min(max(1, round(holdout * n)), n - 1) if n >= 2 else 0
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def split_by_items(pairs: np.ndarray, n_items: int, holdout: float = 0.25, seed: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Hold out *renders*, not pairs: test pairs join two held-out items, train pairs two others,
    pairs that straddle are dropped. The stricter test: no held-out render was seen in training."""
    p = np.asarray(pairs, dtype=int).reshape(-1, 2)
    order = np.random.default_rng(seed).permutation(n_items)
    held = np.zeros(n_items, dtype=bool)
    held[order[: max(2, round(holdout * n_items))]] = True
    in_test = held[p[:, 0]] & held[p[:, 1]]
    in_train = ~held[p[:, 0]] & ~held[p[:, 1]]
    return np.flatnonzero(in_train), np.flatnonzero(in_test)


def weighted_overall(features: np.ndarray, weights: np.ndarray) -> np.ndarray:
    w = np.asarray(weights, dtype=np.float64)
    total = w.sum()
    if total <= 0:
        raise ValueError("weights sum to zero")
    return 10.0 * np.asarray(features, dtype=np.float64) @ w / total


def fit_threshold(overall: np.ndarray, acceptable: np.ndarray) -> tuple[float, float]:
    """(threshold, balanced accuracy): pass when overall >= threshold."""
    s = np.asarray(overall, dtype=np.float64)
    y = np.asarray(acceptable, dtype=bool)
    if y.all() or (~y).all():
        raise ValueError("threshold fitting needs both accepted and rejected examples")
    values = np.unique(s)
    cuts = np.concatenate([[values[0]], (values[:-1] + values[1:]) / 2.0, [values[-1] + 1e-9]])
    best = (float(cuts[0]), -1.0)
    for c in cuts:
        pred = s >= c
        bacc = 0.5 * (pred[y].mean() + (~pred[~y]).mean())
        if bacc > best[1] + 1e-12:
            best = (float(c), float(bacc))
    return best


def calibrate_features(features: np.ndarray, pairs: np.ndarray, names: Sequence[str],
                       current_weights: Sequence[float], l2: float = 1.0, holdout: float = 0.25,
                       seed: int = 0, acceptable: np.ndarray | None = None, holdout_by: str = "pairs"
                       ) -> dict[str, Any]:
    """The numeric core of calibration (no files): weights, held-out accuracies, threshold.
    ``holdout_by``: "pairs" (a share of the choices) or "items" (a share of the renders)."""
    x = np.asarray(features, dtype=np.float64)
    p = np.asarray(pairs, dtype=int).reshape(-1, 2)
    if holdout_by == "items":
        train, test = split_by_items(p, x.shape[0], holdout, seed)
    elif holdout_by == "pairs":
        train, test = split_pairs(len(p), holdout, seed)
    else:
        raise InputError(f"holdout_by must be 'pairs' or 'items', got {holdout_by!r}")
    if len(train) == 0 or len(test) == 0:
        raise InputError(f"the {holdout_by} split left {len(train)} training and {len(test)} held-out pairs; "
                         f"add more judgements or use holdout_by='pairs'")
    beta = fit_pairwise_weights(x, p[train], l2)
    current = np.asarray(current_weights, dtype=np.float64)
    clipped = np.clip(beta, 0.0, None)
    if clipped.sum() <= 0:
        raise InputError("the human choices do not favour any check being in range; check the pairs file")
    weights = clipped * (current.sum() / clipped.sum() if current.sum() > 0 else 1.0 / clipped.sum())
    test_pairs = p[test]
    result: dict[str, Any] = {
        "weights": dict(zip(names, weights.tolist(), strict=True)),
        "coefficients": dict(zip(names, beta.tolist(), strict=True)),
        "negative": [n for n, b in zip(names, beta.tolist(), strict=True) if b < 0],
        "pairs": {"train": len(train), "held_out": len(test), "holdout": holdout, "holdout_by": holdout_by,
                  "seed": seed, "l2": l2},
        "held_out_accuracy": {
            "calibrated": pair_accuracy(weighted_overall(x, weights), test_pairs),
            "equal_weights": pair_accuracy(weighted_overall(x, np.ones(x.shape[1])), test_pairs),
            "profile_weights": pair_accuracy(weighted_overall(x, current), test_pairs) if current.sum() > 0 else None,
        },
    }
    if acceptable is not None:
        thr, bacc = fit_threshold(weighted_overall(x, weights), acceptable)
        result["pass_threshold"] = thr
        result["threshold_balanced_accuracy"] = bacc
    return result


def calibrate_profile(profile: str, pairs: Sequence[tuple[str | Path, str | Path]],
                      acceptable: dict[str, bool] | None = None, l2: float = 1.0, holdout: float = 0.25,
                      seed: int = 0, model: str | None = None, prompt: str | None = None,
                      holdout_by: str = "pairs") -> dict[str, Any]:
    """Diagnose every image named in ``pairs`` (winner, loser) and calibrate the profile's weights.

    Checks that could not be measured on every image (skipped: no model, single images for
    temporal checks) are left out of the fit and keep their weights. Returns the numeric
    result plus ``yaml``: the profile rewritten with the calibrated weights (and threshold).
    """
    from gencritic.diagnose.api import diagnose
    from gencritic.diagnose.profiles import load_profile, profile_to_yaml

    prof = load_profile(profile)
    images = list(dict.fromkeys(str(Path(p)) for pair in pairs for p in pair))
    if len(pairs) < 4:
        raise InputError(f"calibration needs at least 4 human choices, got {len(pairs)}")
    index = {p: i for i, p in enumerate(images)}
    results = [diagnose(p, profile=profile, model=model, prompt=prompt) for p in images]
    names = [c.name for c in prof.checks
             if all(c.name in r["diagnostics"] or c.name in r["scores"] for r in results)]
    if not names:
        raise InputError(f"no check of profile {prof.name} could be measured on every image")
    feats = np.array([[(r["diagnostics"].get(n) or r["scores"][n])["score"] for n in names] for r in results])
    pair_idx = np.array([(index[str(Path(w))], index[str(Path(lo))]) for w, lo in pairs])
    labels = None
    if acceptable:
        missing = [p for p in images if p not in {str(Path(k)) for k in acceptable}]
        if missing:
            raise InputError(f"accept/reject label missing for {missing[0]}; label every image or none")
        norm = {str(Path(k)): v for k, v in acceptable.items()}
        labels = np.array([bool(norm[p]) for p in images])
    current = [next(c.weight for c in prof.checks if c.name == n) for n in names]
    out = calibrate_features(feats, pair_idx, names, current, l2=l2, holdout=holdout, seed=seed, acceptable=labels,
                             holdout_by=holdout_by)
    out["profile"] = prof.name
    out["images"] = len(images)
    out["yaml"] = profile_to_yaml(prof, out["weights"], out.get("pass_threshold"))
    return out


def calibrate_from_ratings(profile: str, ratings: dict[str, float], margin: float = 0.0, **kwargs: Any
                           ) -> dict[str, Any]:
    """Mean-opinion ratings (image -> score, higher better) -> implied pairs -> :func:`calibrate_profile`."""
    images = list(ratings)
    pairs = pairs_from_ratings([ratings[p] for p in images], margin)
    if len(pairs) < 4:
        raise InputError(f"only {len(pairs)} pairs differ by more than margin {margin}; lower --margin or add ratings")
    return calibrate_profile(profile, [(images[a], images[b]) for a, b in pairs], **kwargs)
