"""Training heads on a synthetic human-rated set whose rating is a known function of what is
visible (the area of a coloured square), with prompts shared across images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file
from typer.testing import CliRunner

from gencritic.agreement.train import TrainOptions, train
from gencritic.errors import InputError, ModelUnavailableError
from gencritic.jsonio import loads_strict

PALETTE = [(230, 40, 40), (40, 200, 60), (40, 60, 230), (230, 210, 40), (150, 40, 170), (240, 140, 30),
           (30, 200, 200), (200, 200, 200), (120, 80, 40), (250, 120, 180), (90, 90, 90), (20, 120, 60)]


def synthetic_rated_set(folder: Path, n_prompts: int = 12, per_prompt: int = 8, seed: int = 0) -> Path:
    """Images of a square whose side is random; ``mos_size`` = 5 × covered area (what people
    would see), ``mos_noise`` is unrelated noise. Every prompt has ``per_prompt`` images."""
    rng = np.random.default_rng(seed)
    rows = []
    folder.mkdir(parents=True, exist_ok=True)
    for p in range(n_prompts):
        colour = np.array(PALETTE[p % len(PALETTE)])
        for k in range(per_prompt):
            side = round(float(rng.uniform(0.1, 0.95)) * 32)
            arr = np.zeros((32, 32, 3), np.uint8)
            o = (32 - side) // 2
            arr[o:o + side, o:o + side] = colour
            arr = np.clip(arr.astype(int) + rng.integers(-8, 8, arr.shape), 0, 255).astype(np.uint8)
            Image.fromarray(arr).save(folder / f"p{p}_{k}.png")
            rows.append({"image": f"p{p}_{k}.png", "prompt": f"a square number {p}",
                         "mos_size": 5 * side * side / 1024, "mos_noise": float(rng.normal())})
    path = folder / "ratings.csv"
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


@pytest.fixture(scope="module")
def rated_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_rated_set(tmp_path_factory.mktemp("rated"))


def _opts(tiny_clip_dir: Path, cache: Path, **kw: object) -> TrainOptions:
    base: dict[str, object] = {"model": str(tiny_clip_dir), "cache_dir": cache, "tasks": ["mos_size"],
                               "epochs": 120, "patience": 25, "bootstrap": 200}
    base.update(kw)
    return TrainOptions(**base)  # type: ignore[arg-type]


def test_mlp_head_learns_isolated_and_beats_untrained(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "head"
    result = train(rated_set, out, _opts(tiny_clip_dir, tmp_path / "cache", head="mlp"))
    card = loads_strict((out / "card.json").read_text())  # strict JSON: no NaN/Infinity tokens
    # content isolation: every image of a test prompt is in the test file, no other prompt is
    with (out / "test_predictions.csv").open() as fh:
        test_rows = list(csv.DictReader(fh))
    test_prompts = {r["prompt"] for r in test_rows}
    assert test_prompts == set(card["split"]["test_groups"])
    assert len(test_rows) == 8 * len(test_prompts) == card["split"]["test"]
    assert not test_prompts & set(card["split"]["val_groups"])
    # it learned something real, on prompts it never saw
    trained = card["test_metrics"]["mos_size"]["srcc"]
    untrained = card["untrained_test_metrics"]["mos_size"]["srcc"]
    assert trained > 0.6 and trained > untrained + 0.2, (trained, untrained)
    assert card["test_metrics"]["mos_size"]["srcc_lo"] < trained < card["test_metrics"]["mos_size"]["srcc_hi"]
    # the card says where it came from
    assert card["backbone"] == str(tiny_clip_dir.resolve()) and card["tasks"] == ["mos_size"]
    assert len(card["data"]["sha256"]) == 64 and card["split"]["seed"] == 0
    assert "torch" in card["versions"]
    assert (out / "loss.png").stat().st_size > 5000
    assert card["best_epoch"] < card["epochs_run"] <= 120
    assert result.card["weights_sha256"] == card["weights_sha256"]


def test_training_is_deterministic(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    opts = _opts(tiny_clip_dir, tmp_path / "cache", head="transformer", tasks=["mos_size", "mos_noise"], epochs=15,
                 bootstrap=0)
    train(rated_set, tmp_path / "a", opts)
    train(rated_set, tmp_path / "b", opts)
    wa, wb = load_file(str(tmp_path / "a" / "head.safetensors")), load_file(str(tmp_path / "b" / "head.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    train(rated_set, tmp_path / "c", _opts(tiny_clip_dir, tmp_path / "cache", head="transformer",
                                           tasks=["mos_size", "mos_noise"], epochs=15, bootstrap=0, seed=1))
    wc = load_file(str(tmp_path / "c" / "head.safetensors"))
    assert not all(torch.equal(wa[k], wc[k]) for k in wa)
    assert not torch.are_deterministic_algorithms_enabled()  # global torch state restored


def test_learned_metric_reproduces_training_predictions(rated_set: Path, tiny_clip_dir: Path,
                                                        tmp_path: Path) -> None:
    from gencritic.io.manifest import items_from_manifest
    from gencritic.scoring import ScoreOptions, score

    out = tmp_path / "head"
    train(rated_set, out, _opts(tiny_clip_dir, tmp_path / "cache", head="transformer", with_metrics=["clip"],
                                name="aq", epochs=30))
    with (out / "test_predictions.csv").open() as fh:
        expected = {r["item_id"]: float(r["pred_mos_size"]) for r in csv.DictReader(fh)}
    items = [i for i in items_from_manifest(rated_set) if i.item_id in expected]
    run = score(items, options=ScoreOptions(metrics=[f"learned:{out}"], model="unused-by-learned",
                                            cache_dir=tmp_path / "cache2", progress=False))
    got = {r["item_id"]: r["aq_mos_size"] for r in run.rows}
    assert all(r["success"] for r in run.rows)
    assert got.keys() == expected.keys()
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-4, atol=1e-4)


def test_kfold_reports_every_fold(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    result = train(rated_set, None, _opts(tiny_clip_dir, tmp_path / "cache", head="linear", folds=3, epochs=10,
                                          bootstrap=0))
    assert [f["fold"] for f in result.card["cross_validation"]] == [0, 1, 2]
    assert sum(f["sizes"]["test"] for f in result.folds) == 96
    assert np.isfinite(result.card["cv_mean_srcc"]["mos_size"])


def test_train_cli(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.cli.main import app

    out = tmp_path / "cli_head"
    res = CliRunner().invoke(app, ["train", str(rated_set), "--out", str(out), "--model", str(tiny_clip_dir),
                                   "--tasks", "mos_size", "--head", "linear", "--epochs", "5",
                                   "--cache-dir", str(tmp_path / "cache")])
    assert res.exit_code == 0, res.output
    assert "test mos_size: SRCC" in res.output and f"learned:{out}" in res.output
    assert json.loads((out / "card.json").read_text())["name"] == "learned_cli_head"


def test_train_errors(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.metrics.registry import create_metric

    with pytest.raises(InputError, match="unknown task"):
        train(rated_set, None, _opts(tiny_clip_dir, tmp_path, tasks=["mos_beauty"]))
    with pytest.raises(InputError, match="unknown --head"):
        train(rated_set, None, _opts(tiny_clip_dir, tmp_path, head="forest"))
    rows = list(csv.DictReader(rated_set.open()))[:12]
    for r in rows:
        r["prompt"] = ""
    no_prompts = tmp_path / "no_prompts.csv"
    with no_prompts.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "image": str(rated_set.parent / r["image"])} for r in rows)
    with pytest.raises(InputError, match=r"no item can be used for training.*--no-text"):
        train(no_prompts, None, _opts(tiny_clip_dir, tmp_path))
    with pytest.raises(InputError, match="needs a head folder"):
        create_metric("learned")
    with pytest.raises(ModelUnavailableError, match="no trained head"):
        create_metric(f"learned:{tmp_path / 'nothing'}")
