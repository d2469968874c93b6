"""The multi-task metric transformer, extended: per-task loss weights, early stopping on the
content-isolated validation part, grouped test intervals, richer cards, AIGCIQA2023's three
dimensions learned jointly, transfer from a trained head (--init) and cross-dataset testing."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from gencritic.agreement.bootstrap import agreement
from gencritic.agreement.splits import group_split
from gencritic.agreement.train import (
    FeatureSet,
    TrainOptions,
    evaluate,
    fit_head,
    head_config,
    predict,
    train,
)
from gencritic.cli.main import app
from gencritic.errors import InputError
from tests.conftest import make_image
from tests.test_train import synthetic_rated_set


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_rated_set(tmp_path_factory.mktemp("mt_rated"), n_prompts=12, per_prompt=6)


def _synthetic_features(n_groups: int = 80, per: int = 6, dim: int = 24, seed: int = 0
                        ) -> tuple[FeatureSet, np.ndarray, list[str]]:
    """Three outputs, each a function of its own block of features (0-3, 8-11, 16-19)."""
    rng = np.random.default_rng(seed)
    n = n_groups * per
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = np.stack([x[:, 0:4].sum(1), x[:, 8:12] @ np.array([1.0, -1.0, 0.5, 2.0]), np.tanh(x[:, 16:20].sum(1))], 1)
    y = y + rng.normal(0, 0.1, y.shape)
    feats = FeatureSet(image=x, text=None, scores=np.zeros((n, 0), np.float32), score_columns=[],
                       ok=np.ones(n, bool), errors=[None] * n, backbone="synthetic", backbone_namespace="synthetic")
    return feats, y, [f"g{i // per}" for i in range(n)]


def _fit(feats: FeatureSet, y: np.ndarray, groups: list[str], **kw: object) -> tuple[object, object, np.ndarray]:
    opts = TrainOptions(**{"head": "transformer", "epochs": 150, "patience": 20, "lr": 2e-3, **kw})  # type: ignore[arg-type]
    split = group_split(groups, 0.2, 0.1, 0)
    mean, std = y[split.train].mean(0), y[split.train].std(0)
    fit = fit_head(head_config(opts, feats, y.shape[1]), feats, (y - mean) / std, split, opts, np.zeros(0), np.ones(0))
    pred = predict(fit.head, feats, split.test, np.zeros(0), np.ones(0), mean, std)
    return fit, split, pred


def test_multitask_transformer_learns_each_output_from_its_own_features() -> None:
    feats, y, groups = _synthetic_features()
    fit, split, pred = _fit(feats, y, groups)
    truth = y[split.test]  # type: ignore[attr-defined]
    for j in range(3):
        srcc = st.spearmanr(pred[:, j], truth[:, j]).statistic
        assert srcc >= 0.8, (j, srcc)
    # the outputs are distinct: each tracks its own target, not another's
    assert abs(st.spearmanr(pred[:, 0], truth[:, 1]).statistic) < 0.4
    assert fit.best_epoch < len(fit.train_loss)  # type: ignore[attr-defined]


def test_zero_loss_weight_leaves_that_tasks_output_untrained() -> None:
    feats, y, groups = _synthetic_features(n_groups=30)
    fit, _, _ = _fit(feats, y, groups, epochs=5, weight_decay=0.0, task_weights=[1.0, 0.0, 1.0])
    trained, untrained = fit.head.net.out, fit.baseline.net.out  # type: ignore[attr-defined]
    assert all(torch.equal(a, b) for a, b in zip(trained[1].parameters(), untrained[1].parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(trained[0].parameters(), untrained[0].parameters(), strict=True))
    with pytest.raises(InputError, match="2 weight"):
        _fit(feats, y, groups, epochs=1, task_weights=[1.0, 1.0])


def test_card_records_data_backbone_weights_early_stop_and_grouped_intervals(rated: Path, tiny_clip_dir: Path,
                                                                              tmp_path: Path) -> None:
    out = tmp_path / "head"
    res = CliRunner().invoke(app, ["train", str(rated), "--out", str(out), "--model", str(tiny_clip_dir), "--head",
                                   "transformer", "--tasks", "mos_size,mos_noise", "--task-weights", "2,0.5",
                                   "--epochs", "300", "--patience", "3", "--bootstrap", "300",
                                   "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "card.json").read_text())
    assert card["data"]["name"] == "mos-csv:ratings.csv" and len(card["data"]["sha256"]) == 64
    assert card["backbone_info"]["kind"] == "clip" and len(card["backbone_info"]["sha256"]) == 64
    assert card["loss_weights"] == {"mos_size": 2.0, "mos_noise": 0.5}
    assert card["early_stopped"] and card["early_stop_epoch"] == card["best_epoch"] + 3
    assert card["epochs_run"] == card["best_epoch"] + 4 < 300
    assert card["split"]["seed"] == 0 and card["tasks"] == ["mos_size", "mos_noise"]
    # test intervals: whole prompts resampled, as validate does
    with (out / "test_predictions.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    m = card["test_metrics"]["mos_size"]
    n_prompts = len({r["prompt"] for r in rows})
    assert m["resample"] == "groups" and m["n_groups"] == n_prompts
    pred = np.array([float(r["pred_mos_size"]) for r in rows])
    truth = np.array([float(r["mos_size"]) for r in rows])
    ref = agreement(pred, truth, groups=[r["prompt"] for r in rows], n_boot=300, seed=0)
    assert ref.resampling is not None and ref.resampling.unit == "groups"
    assert m["srcc"] == pytest.approx(ref.point["srcc"], abs=1e-6)
    assert (m["srcc_lo"], m["srcc_hi"]) == pytest.approx((ref.lo["srcc"], ref.hi["srcc"]), abs=1e-6)


def test_evaluate_falls_back_to_items_only_when_asked_or_ungrouped() -> None:
    rng = np.random.default_rng(1)
    pred, truth = rng.normal(size=(40, 1)), rng.normal(size=(40, 1))
    groups = [f"p{i // 4}" for i in range(40)]
    assert evaluate(pred, truth, ["t"], 100, 0, groups)["t"]["resample"] == "groups"
    assert evaluate(pred, truth, ["t"], 100, 0, groups, "items")["t"]["resample"] == "items"
    assert evaluate(pred, truth, ["t"], 100, 0, [f"p{i}" for i in range(40)])["t"]["resample"] == "items"


def _aigciqa(root: Path, present: list[int]) -> Path:
    """AIGCIQA2023's layout; present images' three MOS are functions of what they show."""
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    mos = rng.uniform(20, 80, (3, 2400))
    for i in present:
        side, bright = 8 + (i * 7) % 36, 60 + (i * 13) % 180
        make_image(root / "Image" / "allimg" / f"{i}.png", (bright, 255 - bright, (i * 29) % 255), size=48)
        mos[:, i] = [side, bright / 3, rng.uniform(20, 80)]
    (root / "DATA" / "MOS").mkdir(parents=True)
    for k in range(3):
        savemat(root / "DATA" / "MOS" / f"mosz{k + 1}.mat", {"MOSz": mos[k][:, None]})
    with (root / "DATA" / "AIGCIQA2023_Prompts.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "prompt"])
        w.writerows([i, f"prompt number {i}"] for i in range(100))
    return root


def test_aigciqa2023_three_dimensions_learned_jointly(tiny_clip_dir: Path, tmp_path: Path) -> None:
    root = _aigciqa(tmp_path / "AIGCIQA2023", [g * 4 + k for g in range(0, 100, 4) for k in range(4)])
    out = tmp_path / "head"
    res = CliRunner().invoke(app, ["train", str(root), "--out", str(out), "--model", str(tiny_clip_dir), "--head",
                                   "transformer", "--epochs", "40", "--bootstrap", "50",
                                   "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    card = json.loads((out / "card.json").read_text())
    dims = ["mos_quality", "mos_authenticity", "mos_correspondence"]
    assert card["tasks"] == dims and card["config"]["n_tasks"] == 3 and card["data"]["format"] == "aigciqa2023"
    assert all(card["test_metrics"][d]["n"] == card["split"]["test"] > 0 for d in dims)
    assert all(np.isfinite(card["test_metrics"][d]["srcc"]) for d in dims)
    assert load_file(str(out / "head.safetensors"))["net.queries"].shape[0] == 3  # one query token per dimension


def test_init_starts_from_a_trained_head_and_checks_it_fits(rated: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    base = TrainOptions(model=str(tiny_clip_dir), head="transformer", tasks=["mos_size", "mos_noise"], epochs=8,
                        bootstrap=0, cache_dir=tmp_path / "cache")
    first = train(rated, tmp_path / "a", base)
    other = synthetic_rated_set(tmp_path / "other", n_prompts=8, per_prompt=5, seed=3)
    # learning rate 0: nothing moves, so the transferred head is exactly the one it started from
    frozen = train(other, tmp_path / "b", TrainOptions(**{**base.__dict__, "lr": 0.0, "init": tmp_path / "a"}))
    wa, wb = load_file(str(tmp_path / "a" / "head.safetensors")), load_file(str(tmp_path / "b" / "head.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert frozen.card["init"]["weights_sha256"] == first.card["weights_sha256"]
    fresh = train(other, None, TrainOptions(**{**base.__dict__, "lr": 0.0}))
    assert not all(torch.equal(wa[k], v) for k, v in fresh.head.state_dict().items() if k in wa)
    with pytest.raises(InputError, match=r"learned 2 task\(s\).*this run has 1"):
        train(other, None, TrainOptions(**{**base.__dict__, "tasks": ["mos_size"], "init": tmp_path / "a"}))
    with pytest.raises(InputError, match="a transformer head; this run trains a mlp head"):
        train(other, None, TrainOptions(**{**base.__dict__, "head": "mlp", "init": tmp_path / "a"}))


def test_cross_dataset_test_in_one_command(rated: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    other = synthetic_rated_set(tmp_path / "other", n_prompts=6, per_prompt=5, seed=7)
    rows = list(csv.DictReader(other.open()))
    renamed = other.with_name("renamed.csv")
    with renamed.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["image", "prompt", "size_rating", "mos_noise"])
        w.writeheader()
        w.writerows({"image": r["image"], "prompt": r["prompt"], "size_rating": r["mos_size"],
                     "mos_noise": r["mos_noise"]} for r in rows)
    out = tmp_path / "head"
    res = CliRunner().invoke(app, ["train", str(rated), "--out", str(out), "--model", str(tiny_clip_dir), "--head",
                                   "mlp", "--tasks", "mos_size,mos_noise", "--epochs", "30", "--bootstrap", "200",
                                   "--test-dataset", str(renamed), "--test-map", "mos_size=size_rating",
                                   "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "cross-dataset mos-csv:renamed.csv mos_size vs size_rating: SRCC" in res.output
    cross = json.loads((out / "card.json").read_text())["cross_dataset_test"]
    assert cross["task_map"] == {"mos_size": "size_rating", "mos_noise": "mos_noise"} and cross["items_tested"] == 30
    with (out / "cross_test_predictions.csv").open() as fh:
        pred_rows = list(csv.DictReader(fh))
    assert len(pred_rows) == 30
    x = [float(r["pred_mos_size"]) for r in pred_rows]
    y = [float(r["size_rating"]) for r in pred_rows]
    m = cross["test_metrics"]["mos_size"]
    assert m["srcc"] == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-9)
    assert m["resample"] == "groups" and m["n_groups"] == 6
    res = CliRunner().invoke(app, ["train", str(rated), "--out", str(tmp_path / "h2"), "--model", str(tiny_clip_dir),
                                   "--tasks", "mos_size", "--epochs", "2", "--test-dataset", str(renamed),
                                   "--test-map", "mos_size=nothing", "--cache-dir", str(tmp_path / "cache")])
    assert isinstance(res.exception, InputError) and "mos_size=nothing" in str(res.exception)
