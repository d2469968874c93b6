"""``validate`` end to end with the tiny CLIP: output files and their columns, numbers that equal
the statistics recomputed from scores.csv, determinism, real rated data when present."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.stats as st
from typer.testing import CliRunner

from gencritic.agreement.validate import ValidateOptions, validate
from gencritic.errors import InputError
from gencritic.jsonio import loads_strict
from gencritic.scoring import ScoreOptions
from tests.conftest import make_image, shared_data
from tests.test_train import synthetic_rated_set

CONTRACT = ["n", "plcc", "plcc_logistic", "srcc", "krcc", "rmse", "pairwise_acc"]


@pytest.fixture(scope="module")
def rated_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthetic_rated_set(tmp_path_factory.mktemp("vrated"), n_prompts=6, per_prompt=5)


def _read(path: Path) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(fh))


def _opts(tiny_clip_dir: Path, cache: Path, **kw: object) -> ValidateOptions:
    base: dict[str, object] = {"metrics": ["clip", "clipscore_hessel"], "model": str(tiny_clip_dir),
                               "cache_dir": cache, "progress": False, "bootstrap": 300}
    base.update(kw)
    return _split_options(base)


def test_validate_writes_the_contracted_tables(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "val"
    report = validate(rated_set, out, _opts(tiny_clip_dir, tmp_path / "cache"))
    for name in ("scores.csv", "correlations.csv", "correlations.json", "comparisons.csv", "report.md",
                 "scatter_mos_size.png", "scatter_mos_noise.png"):
        assert (out / name).exists(), name
    rows = _read(out / "correlations.csv")
    assert [(r["rating"], r["column"]) for r in rows] == [
        ("mos_size", "clip_score"), ("mos_size", "clipscore_hessel"),
        ("mos_noise", "clip_score"), ("mos_noise", "clipscore_hessel")]
    for col in CONTRACT[1:]:
        assert {col, f"{col}_lo", f"{col}_hi"} <= set(rows[0])
    assert all(r["n"] == "30" for r in rows)
    # the table's numbers are the statistics of scores.csv's columns
    scores = _read(out / "scores.csv")
    assert len(scores) == 30 and {"item_id", "prompt", "mos_size", "mos_noise", "clip_score"} <= set(scores[0])
    x = np.array([float(s["clip_score"]) for s in scores])
    y = np.array([float(s["mos_size"]) for s in scores])
    first = rows[0]
    assert float(first["srcc"]) == pytest.approx(st.spearmanr(x, y).statistic, abs=1e-9)
    assert float(first["krcc"]) == pytest.approx(st.kendalltau(x, y).statistic, abs=1e-9)
    assert float(first["plcc"]) == pytest.approx(st.pearsonr(x, y).statistic, abs=1e-9)
    assert float(first["srcc_lo"]) <= float(first["srcc"]) <= float(first["srcc_hi"])
    # provenance
    doc = loads_strict((out / "correlations.json").read_text())  # strict JSON: no NaN/Infinity tokens
    prov = doc["provenance"]
    assert len(prov["dataset"]["sha256"]) == 64 and prov["seed"] == 0 and prov["bootstrap"] == 300
    assert prov["models"] == [str(tiny_clip_dir)] and "numpy" in prov["versions"]
    assert len(doc["rows"]) == 4 and doc["comparisons"][0]["metric_a"] == "clip_score"
    md = (out / "report.md").read_text()
    assert "| mos_size | clip_score | 30 |" in md and prov["dataset"]["sha256"][:16] in md
    assert report.comparisons[0]["rating"] == "mos_size"


def test_validate_is_deterministic_and_seeded(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    a = validate(rated_set, None, _opts(tiny_clip_dir, tmp_path / "c", metrics=["clip"], seed=3))
    b = validate(rated_set, None, _opts(tiny_clip_dir, tmp_path / "c", metrics=["clip"], seed=3))
    c = validate(rated_set, None, _opts(tiny_clip_dir, tmp_path / "c", metrics=["clip"], seed=4))
    assert a.rows == b.rows
    assert a.rows[0]["srcc"] == c.rows[0]["srcc"] and a.rows[0]["srcc_lo"] != c.rows[0]["srcc_lo"]


def test_validate_cli(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.cli.main import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["validate", str(rated_set), "--metrics", "clip", "--out", str(out),
                                   "--ratings", "mos_size", "--bootstrap", "100", "--seed", "1", "--model",
                                   str(tiny_clip_dir), "--cache-dir", str(tmp_path / "cache"), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "30 of 30 rated items present" in res.output and "SRCC" in res.output
    assert [r["rating"] for r in _read(out / "correlations.csv")] == ["mos_size"]


def test_validate_unknown_metric_fails_before_work(rated_set: Path, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown metric 'clipp'"):
        validate(rated_set, tmp_path / "x", ValidateOptions(scoring=ScoreOptions(metrics=["clipp"], progress=False)))
    assert not (tmp_path / "x").exists()


def test_validate_pairs(tiny_clip_dir: Path, tmp_path: Path) -> None:
    for k in range(4):
        make_image(tmp_path / f"{k}.png", (60 * k, 200 - 40 * k, 30))
    with (tmp_path / "pairs.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_a", "image_b", "prompt", "choice"])
        w.writerows([["0.png", "1.png", "a cat", "a"], ["2.png", "3.png", "a cat", "b"],
                     ["1.png", "2.png", "a dog", "tie"], ["3.png", "0.png", "a dog", "a"]])
    report = validate(tmp_path / "pairs.csv", tmp_path / "out", _opts(tiny_clip_dir, tmp_path / "c", metrics=["clip"]))
    (row,) = report.rows
    assert row["rating"] == "preference" and row["n"] == 3  # the tie is not a decided pair
    scores = {r["item_id"]: r["clip_score"] for r in report.scores}
    expected = np.mean([scores["0.png|a cat"] > scores["1.png|a cat"], scores["3.png|a cat"] > scores["2.png|a cat"],
                        scores["3.png|a dog"] > scores["0.png|a dog"]])
    assert row["pairwise_acc"] == pytest.approx(expected)
    assert math.isnan(row["srcc"])


@pytest.mark.shared_data
def test_validate_agiqa3k_on_present_images(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.datasets.human import read_agiqa3k_rows

    src = shared_data("agiqa-3k") / "data.csv"
    root = tmp_path / "AGIQA-3K"
    root.mkdir()
    (root / "data.csv").symlink_to(src)
    names = [r["name"] for r in read_agiqa3k_rows(src)[::300]]  # 10 images, other rows' images absent
    for k, name in enumerate(names):
        make_image(root / name, (25 * k, 120, 255 - 25 * k))
    report = validate(root, tmp_path / "out", _opts(tiny_clip_dir, tmp_path / "c", metrics=["clip"], bootstrap=100))
    assert report.provenance["dataset"]["rows"] == 2982
    assert report.provenance["dataset"]["items_missing"] == 2972
    assert [r["rating"] for r in report.rows] == ["mos_quality", "mos_align"]
    assert all(r["n"] == 10 for r in report.rows)
    assert "10 of 2982 rated items present (2972 missing)" in (tmp_path / "out" / "report.md").read_text()


@pytest.mark.shared_data
def test_validate_avt_ai_images(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """Real AI images with real human ratings (numbers meaningless with random weights)."""
    root = shared_data("avt-ai-images")
    prompts = {r["ID"]: r["prompts"] for r in _read(root / "images" / "prompts.csv")}
    ratings = _read(root / "evaluation" / "all_ratings.csv")
    manifest = tmp_path / "avt.csv"
    with manifest.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "prompt", "appeal_mean", "realism_mean", "prompt_matching_mean"])
        for r in ratings:
            w.writerow([str(root / "images" / f"{r['image_key']}.png"), prompts[r["image_key"].split("/")[1]],
                        r["appeal_mean"], r["realism_mean"], r["prompt_matching_mean"]])
    present = sum((root / "images" / f"{r['image_key']}.png").exists() for r in ratings)
    report = validate(manifest, tmp_path / "out", _opts(tiny_clip_dir, tmp_path / "c", metrics=["clip"], bootstrap=200),
                      ratings=["appeal_mean", "realism_mean", "prompt_matching_mean"])
    assert report.provenance["dataset"]["rows"] == len(ratings) == 146
    assert report.provenance["dataset"]["items_present"] == present
    assert [r["rating"] for r in report.rows] == ["appeal_mean", "realism_mean", "prompt_matching_mean"]
    assert all(r["n"] == present for r in report.rows)
    assert all(-1 <= r["srcc"] <= 1 and r["srcc_lo"] <= r["srcc_hi"] for r in report.rows)
    assert (tmp_path / "out" / "scatter_prompt_matching_mean.png").exists()


def test_validating_a_head_on_its_training_data_warns(rated_set: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.agreement.train import TrainOptions, train

    head = tmp_path / "head"
    train(rated_set, head, TrainOptions(head="linear", model=str(tiny_clip_dir), cache_dir=tmp_path / "c", epochs=3,
                                        bootstrap=0))
    report = validate(rated_set, tmp_path / "out", _opts(tiny_clip_dir, tmp_path / "c", metrics=[f"learned:{head}"],
                                                         bootstrap=50, plots=False))
    assert [r["column"] for r in report.rows] == ["learned_head_mos_size", "learned_head_mos_noise"] * 2
    assert len(report.provenance["warnings"]) == 2 and "trained on this dataset" in report.provenance["warnings"][0]
    assert "## Warnings" in (tmp_path / "out" / "report.md").read_text()


def _split_options(given: dict[str, object]) -> ValidateOptions:
    """Scoring options go into the embedded ScoreOptions, the rest are validation's own."""
    scoring = set(ScoreOptions.__dataclass_fields__)
    return ValidateOptions(scoring=ScoreOptions(**{k: v for k, v in given.items() if k in scoring}),  # type: ignore[arg-type]
                           **{k: v for k, v in given.items() if k not in scoring})  # type: ignore[arg-type]
