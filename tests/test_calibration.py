"""Calibration: the Newton fit against scipy's optimiser on the same loss, recovery of known
weights from simulated Bradley-Terry choices, held-out accuracy, thresholds, profile round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import optimize, stats

from gencritic.diagnose import calibrate as cal


def simulate(seed: int = 0, n_items: int = 150, n_pairs: int = 1200, sharpness: float = 4.0
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    true_w = np.array([3.0, 0.2, 1.5, 0.6, 2.2, 1.0])
    x = rng.random((n_items, true_w.size))
    i, j = rng.integers(0, n_items, (2, n_pairs))
    keep = i != j
    i, j = i[keep], j[keep]
    p_i = 1 / (1 + np.exp(-sharpness * (x[i] - x[j]) @ true_w))
    i_wins = rng.random(i.size) < p_i
    pairs = np.where(i_wins[:, None], np.stack([i, j], 1), np.stack([j, i], 1))
    return x, pairs, true_w


def test_newton_fit_matches_scipy_minimiser() -> None:
    x, pairs, _ = simulate(1, n_pairs=300)
    d = x[pairs[:, 0]] - x[pairs[:, 1]]
    l2 = 0.5

    def loss(b: np.ndarray) -> float:
        return float(np.logaddexp(0, -d @ b).sum() + 0.5 * l2 * b @ b)

    ref = optimize.minimize(loss, np.zeros(x.shape[1]), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(cal.fit_pairwise_weights(x, pairs, l2=l2), ref, atol=1e-4)


def test_recovers_known_weights_and_beats_equal_weights() -> None:
    x, pairs, true_w = simulate(0)
    names = [f"c{k}" for k in range(true_w.size)]
    out = cal.calibrate_features(x, pairs, names, current_weights=np.ones(true_w.size), l2=1.0, holdout=0.25, seed=0)
    fitted = np.array([out["weights"][n] for n in names])
    rho = stats.spearmanr(fitted, true_w).statistic
    assert rho > 0.9
    acc = out["held_out_accuracy"]
    assert acc["calibrated"] > acc["equal_weights"] + 0.02
    assert out["pairs"]["held_out"] == round(0.25 * len(pairs))
    # deterministic
    again = cal.calibrate_features(x, pairs, names, current_weights=np.ones(true_w.size))
    assert again == out


def test_pairs_from_ranking_and_accuracy() -> None:
    pairs = cal.pairs_from_ranking([2, 0, 1])
    assert pairs.tolist() == [[2, 0], [2, 1], [0, 1]]
    assert cal.pair_accuracy(np.array([1.0, 0.0, 2.0]), pairs) == pytest.approx(1.0)
    assert cal.pair_accuracy(np.array([1.0, 1.0, 0.0]), pairs) == pytest.approx((0 + 0 + 0.5) / 3)


def test_threshold_by_hand() -> None:
    overall = np.array([2.0, 4.0, 6.0, 8.0])
    accepted = np.array([False, False, True, True])
    thr, bacc = cal.fit_threshold(overall, accepted)
    assert thr == pytest.approx(5.0) and bacc == pytest.approx(1.0)
    with pytest.raises(ValueError):
        cal.fit_threshold(overall, np.ones(4, bool))


def _shot(level: float, size: int = 48) -> np.ndarray:
    img = np.ones((size, size, 3))
    q = size // 4
    img[q:3 * q, q:3 * q] = [0.4, 0.5, 0.65]
    return (np.clip(img * level, 0, 1) * 255).round().astype(np.uint8)


def test_calibrate_profile_end_to_end_and_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from gencritic.diagnose.profiles import parse_profile

    levels = np.linspace(0.3, 1.0, 10)
    paths = []
    for k, lv in enumerate(levels):
        p = tmp_path / f"img{k}.png"
        Image.fromarray(_shot(lv)).save(p)
        paths.append(p)
    # a person who always prefers the brighter shot
    order = list(range(len(paths)))[::-1]
    pairs = [(str(paths[a]), str(paths[b])) for a, b in cal.pairs_from_ranking(order)]
    labels = {str(p): bool(lv >= 0.6) for p, lv in zip(paths, levels, strict=True)}
    out = cal.calibrate_profile("product-shot", pairs, labels)
    w = out["weights"]
    assert max(w, key=w.get) == "brightness"
    assert out["held_out_accuracy"]["calibrated"] >= out["held_out_accuracy"]["equal_weights"]
    assert out["threshold_balanced_accuracy"] == pytest.approx(1.0)
    data = yaml.safe_load(out["yaml"])
    assert data["diagnostics"]["brightness"]["weight"] == pytest.approx(w["brightness"], abs=1e-4)
    parse_profile(data, tmp_path / "calibrated.yaml")  # still a valid profile
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("winner,loser\n" + "".join(f"{Path(a).name},{Path(b).name}\n" for a, b in pairs))
    res = CliRunner().invoke(app, ["calibrate", str(csv_path), "--profile", "product-shot",
                                   "--out", str(tmp_path / "cal.yaml")])
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout)
    assert cli["weights"] == pytest.approx(out["weights"])
    assert (tmp_path / "cal.yaml").exists()


def test_pairs_from_ratings_by_hand_and_ratings_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    pairs = cal.pairs_from_ratings([3.0, 1.0, 2.9, 5.0], margin=0.5)
    assert sorted(map(tuple, pairs.tolist())) == sorted([(0, 1), (2, 1), (3, 0), (3, 1), (3, 2)])
    levels = np.linspace(0.3, 1.0, 8)
    lines = ["image,rating"]
    for k, lv in enumerate(levels):
        Image.fromarray(_shot(lv)).save(tmp_path / f"i{k}.png")
        lines.append(f"i{k}.png,{lv * 5:.3f}")
    (tmp_path / "mos.csv").write_text("\n".join(lines) + "\n")
    res = CliRunner().invoke(app, ["calibrate", str(tmp_path / "mos.csv"), "--profile", "product-shot",
                                   "--margin", "0.1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert max(out["weights"], key=out["weights"].get) == "brightness"
    assert out["pairs"]["train"] + out["pairs"]["held_out"] == len(cal.pairs_from_ratings(levels * 5, 0.1))


def test_item_holdout_keeps_renders_apart() -> None:
    x, pairs, _ = simulate(5)
    train, test = cal.split_by_items(pairs, x.shape[0], holdout=0.3, seed=1)
    train_items = set(pairs[train].ravel().tolist())
    test_items = set(pairs[test].ravel().tolist())
    assert train_items.isdisjoint(test_items) and len(test) > 0
    out = cal.calibrate_features(x, pairs, [str(k) for k in range(6)], np.ones(6), holdout=0.3, seed=1,
                                 holdout_by="items")
    assert out["pairs"]["held_out"] == len(test)
    assert out["held_out_accuracy"]["calibrated"] > out["held_out_accuracy"]["equal_weights"]
