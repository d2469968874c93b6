"""Training on the ImageReward backbone (BLIP image-text fusion feature), end to end.

The checkpoint is the tiny one test_preference_imagereward.py builds key by key in
ImageReward.pt's layout (its BLIP forward is checked there against a hand-written reference),
so these tests exercise the real loading code: train through the public CLI, reload the head as
a ``learned`` metric through ``gencritic score``, cache, fine-tune, reproducibility.
"""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

try:  # tests/ may or may not be a package in this tree
    from tests.test_preference_imagereward import _build
    from tests.test_train import synthetic_rated_set
except ImportError:  # pragma: no cover
    from test_preference_imagereward import _build  # type: ignore[no-redef]
    from test_train import synthetic_rated_set  # type: ignore[no-redef]

from gencritic.agreement.train import TrainOptions, train
from gencritic.cli.main import app
from gencritic.errors import InputError
from gencritic.models.loader import ModelPool


@pytest.fixture(scope="module")
def ir_ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _build(tmp_path_factory.mktemp("ir"))[1]


@pytest.fixture(scope="module")
def rated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_rated_set(tmp_path_factory.mktemp("rated_ir"), n_prompts=10, per_prompt=6)


def _train_args(rated: Path, ckpt: Path, out: Path, cache: Path, *extra: str) -> list[str]:
    return ["train", str(rated), "--out", str(out), "--model", str(ckpt), "--tokenizer", str(ckpt.parent),
            "--head", "transformer", "--tasks", "mos_size,mos_noise", "--epochs", "12", "--patience", "4",
            "--bootstrap", "100", "--cache-dir", str(cache), *extra]


def _predictions(path: Path, task: str) -> dict[str, float]:
    with path.open() as fh:
        return {r["item_id"]: float(r[f"pred_{task}"]) for r in csv.DictReader(fh)}


def test_imagereward_checkpoint_trains_through_cli_reloads_and_scores(rated: Path, ir_ckpt: Path,
                                                                      tmp_path: Path) -> None:
    out = tmp_path / "head"
    # no --backbone: an ImageReward.pt is recognised (it used to fail as an unrecognised CLIP layout)
    res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, out, tmp_path / "cache"))
    assert res.exit_code == 0, res.output
    assert "test mos_size: SRCC" in res.output
    card = json.loads((out / "card.json").read_text())
    info = card["backbone_info"]
    assert info["kind"] == "imagereward" and card["features"] == "imagereward-fusion"
    assert info["sha256"] == hashlib.sha256(ir_ckpt.read_bytes()).hexdigest()
    assert info["dim"] == 32 and info["finetuned_blocks"] == 0
    assert card["config"]["image_dim"] == 32 and card["config"]["text_dim"] == 0
    assert "files" not in card  # frozen: nothing but the head to save
    # the head reloads as a metric and scores the test items as training predicted them
    scored = tmp_path / "scored"
    res = CliRunner().invoke(app, ["score", str(rated), "--out", str(scored), "--metrics", f"learned:{out}",
                                   "--cache-dir", str(tmp_path / "cache_score"), "--quiet"])
    assert res.exit_code == 0, res.output
    with (scored / "results.csv").open() as fh:
        rows = {r["item_id"]: r for r in csv.DictReader(fh)}
    assert len(rows) == 60 and all(r["success"] in ("True", "true", "1") for r in rows.values())
    for task in ("mos_size", "mos_noise"):
        expected = _predictions(out / "test_predictions.csv", task)
        got = [float(rows[k][f"learned_head_{task}"]) for k in expected]
        np.testing.assert_allclose(got, list(expected.values()), rtol=1e-4, atol=1e-4)


def test_same_seed_same_data_gives_bit_identical_head_files(rated: Path, ir_ckpt: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):  # separate caches: both runs compute their features
        res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, tmp_path / name, tmp_path / f"cache_{name}"))
        assert res.exit_code == 0, res.output
    assert (tmp_path / "a" / "head.safetensors").read_bytes() == (tmp_path / "b" / "head.safetensors").read_bytes()
    ca, cb = (json.loads((tmp_path / n / "card.json").read_text()) for n in ("a", "b"))
    assert ca["test_metrics"] == cb["test_metrics"] and ca["weights_sha256"] == cb["weights_sha256"]


def test_second_run_reads_cached_features_and_never_loads_the_backbone(rated: Path, ir_ckpt: Path,
                                                                       tmp_path: Path) -> None:
    opts = TrainOptions(model=str(ir_ckpt), tokenizer=str(ir_ckpt.parent), head="mlp", tasks=["mos_size"],
                        epochs=5, bootstrap=0, cache_dir=tmp_path / "cache")
    first_pool, second_pool = ModelPool("cpu"), ModelPool("cpu")
    a = train(rated, tmp_path / "a", opts, pool=first_pool)
    b = train(rated, tmp_path / "b", opts, pool=second_pool)
    (_, first), = [(k, v) for k, v in first_pool._models.items() if k[0] == "imagereward-fusion"]
    (_, second), = [(k, v) for k, v in second_pool._models.items() if k[0] == "imagereward-fusion"]
    assert first.loaded and first.pairs_encoded == 60
    assert not second.loaded and second.pairs_encoded == 0  # every feature came from the cache
    assert a.card["weights_sha256"] == b.card["weights_sha256"]


def test_finetuning_last_blocks_trains_them_saves_them_and_scores_with_them(rated: Path, ir_ckpt: Path,
                                                                           tmp_path: Path) -> None:
    from gencritic.io.manifest import items_from_manifest
    from gencritic.scoring import ScoreOptions, score

    base = {k.removeprefix("blip.text_encoder."): v for k, v in torch.load(ir_ckpt).items()
            if k.startswith("blip.text_encoder.")}
    out = tmp_path / "ft"
    res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, out, tmp_path / "cache", "--finetune-blocks", "1",
                                              "--backbone-lr", "1e-3", "--backbone", "imagereward"))
    assert res.exit_code == 0, res.output
    card = json.loads((out / "card.json").read_text())
    assert card["backbone_info"]["finetuned_blocks"] == 1 and card["training"]["backbone_lr"] == 1e-3
    layers = load_file(str(out / "backbone.safetensors"))
    assert layers and all(k.startswith("encoder.layer.1.") for k in layers)  # the last of 2 blocks only
    assert card["files"]["backbone.safetensors"] == hashlib.sha256((out / "backbone.safetensors").read_bytes()).hexdigest()
    assert any(not torch.equal(v, base[k]) for k, v in layers.items())  # the block really trained
    expected = _predictions(out / "test_predictions.csv", "mos_size")
    items = [i for i in items_from_manifest(rated) if i.item_id in expected]
    run = score(items, options=ScoreOptions(metrics=[f"learned:{out}"], model="unused", device="cpu",
                                            cache_dir=tmp_path / "cache2", progress=False))
    got = {r["item_id"]: r["learned_ft_mos_size"] for r in run.rows}
    np.testing.assert_allclose([got[k] for k in expected], list(expected.values()), rtol=1e-4, atol=1e-4)
    # same seed, same data: the fine-tuned layers are bit-identical too
    res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, tmp_path / "ft2", tmp_path / "cache", "--finetune-blocks",
                                              "1", "--backbone-lr", "1e-3"))
    assert res.exit_code == 0, res.output
    for f in ("head.safetensors", "backbone.safetensors"):
        assert (out / f).read_bytes() == (tmp_path / "ft2" / f).read_bytes()


def test_imagereward_options_are_checked(rated: Path, ir_ckpt: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--finetune-blocks fine-tunes the ImageReward backbone"):
        train(rated, None, TrainOptions(model=str(tiny_clip_dir), finetune_blocks=1, cache_dir=tmp_path))
    with pytest.raises(InputError, match=r"med_config\.json"):
        train(rated, None, TrainOptions(model=str(ir_ckpt), med_config=str(tmp_path / "none.json"),
                                        cache_dir=tmp_path))
    res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, tmp_path / "x", tmp_path, "--finetune-blocks", "5"))
    assert isinstance(res.exception, InputError) and "fusion encoder has 2 blocks" in str(res.exception)
    res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, tmp_path / "x", tmp_path, "--task-weights", "1,x"))
    assert isinstance(res.exception, InputError) and "'x' is not a number" in str(res.exception)
    res = CliRunner().invoke(app, _train_args(rated, ir_ckpt, tmp_path / "x", tmp_path, "--task-weights", "1"))
    assert isinstance(res.exception, InputError) and "1 weight(s) for 2 task(s)" in str(res.exception)


def test_clip_loader_names_an_imagereward_checkpoint(rated: Path, ir_ckpt: Path, tmp_path: Path) -> None:
    from gencritic.errors import ModelUnavailableError

    with pytest.raises(ModelUnavailableError, match=r"an ImageReward checkpoint, not a CLIP model.*--backbone imagereward"):
        train(rated, None, TrainOptions(model=str(ir_ckpt), backbone="clip", cache_dir=tmp_path))


def test_one_unreadable_image_costs_one_item(rated: Path, ir_ckpt: Path, tmp_path: Path) -> None:
    rows = list(csv.DictReader(rated.open()))
    (tmp_path / "broken.png").write_bytes(b"not a png")
    rows[0] = {**rows[0], "image": str(tmp_path / "broken.png")}
    for r in rows[1:]:
        r["image"] = str(rated.parent / r["image"])
    path = tmp_path / "ratings.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    result = train(path, None, TrainOptions(model=str(ir_ckpt), tokenizer=str(ir_ckpt.parent), head="linear",
                                            tasks=["mos_size"], epochs=3, bootstrap=0, cache_dir=tmp_path / "c"))
    assert result.card["data"]["items_used"] == 59 and result.card["data"]["items_dropped"] == 1
