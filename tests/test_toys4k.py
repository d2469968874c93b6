"""The Toys4k protocol end to end on a Toys4k-shaped fixture, with the tiny test CLIP.

Scores are checked against an independent computation: the rendered views encoded by the
transformers model directly, cosine with the caption, mean over views.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from gencritic.cli.main import app
from gencritic.datasets.meshes_captions import items_from_captions_csv
from gencritic.datasets.toys4k import (
    SEED_COLUMNS,
    SUMMARY_FIELDS,
    Toys4kOptions,
    Toys4kRow,
    choose_captions,
    find_asset,
    parse_captions,
    run_toys4k,
)
from gencritic.errors import InputError
from gencritic.render.api import render_asset
from tests.conftest import hf_features
from tests.test_render import coloured_sphere, textured_cube

RES = 64  # small views keep the test fast; the protocol's 512 is the default


def reference_clip_score(model_dir: Path, mesh: Path, caption: str, render: dict) -> float:
    """Mean over valid views of cos(image, text), straight from transformers."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    model = CLIPModel.from_pretrained(model_dir).eval()
    tok = AutoTokenizer.from_pretrained(model_dir)
    proc = CLIPImageProcessor.from_pretrained(model_dir)
    views = [v.image.rgb for v in render_asset(mesh, {**render, "cache": False}).views if v.image is not None]
    with torch.no_grad():
        img = hf_features(model.get_image_features(**proc(images=views, return_tensors="pt")))
        txt = hf_features(model.get_text_features(**tok([caption], padding=True, return_tensors="pt")))
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return float((img @ txt.T).mean())


@pytest.fixture()
def toys4k_tree(tmp_path: Path) -> tuple[Path, Path]:
    """metadata.csv + assets in the dataset's layout (an .obj tree and a .glb), with bad rows."""
    root = tmp_path / "toys4k"
    cube_dir = root / "toys4k_obj_files" / "cube" / "cube_000"
    cube_dir.mkdir(parents=True)
    textured_cube().export(cube_dir / "mesh.obj")  # OBJ + MTL + PNG
    ball_dir = root / "ball" / "ball_001"
    ball_dir.mkdir(parents=True)
    coloured_sphere().export(ball_dir / "ball_001.glb")
    broken_dir = root / "broken" / "broken_000"
    broken_dir.mkdir(parents=True)
    (broken_dir / "broken_000.glb").write_bytes(b"glTF but not really")
    rows = [
        ("a" * 64, "cube/cube_000/cube_000.blend", 5.5, ["a cube", "a colourful toy cube with six painted faces"]),
        ("b" * 64, "ball/ball_001/ball_001.blend", 4.75, ["a red and blue ball"]),
        ("c" * 64, "cat/cat_000/cat_000.blend", 6.0, ["a cat"]),  # no file
        ("d" * 64, "broken/broken_000/broken_000.blend", 5.0, ["a broken toy"]),  # corrupt file
        ("e" * 64, "ball/ball_001/ball_001.blend", 4.5, []),  # no caption
    ]
    metadata = tmp_path / "metadata.csv"
    with metadata.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sha256", "file_identifier", "aesthetic_score", "captions"])
        for sha, ident, aes, caps in rows:
            w.writerow([sha, ident, aes, json.dumps(caps)])
    return metadata, root


def test_toys4k_end_to_end_columns_summary_and_scores(toys4k_tree: tuple[Path, Path], tiny_clip_dir: Path,
                                                       tmp_path: Path) -> None:
    metadata, root = toys4k_tree
    out = tmp_path / "out"
    result = run_toys4k(metadata, root, out, Toys4kOptions(
        model=str(tiny_clip_dir), device="cpu", resolution=RES, cache_dir=tmp_path / "cache", progress=False))
    with result.results_csv.open() as fh:
        reader = csv.DictReader(fh)
        assert reader.fieldnames == SEED_COLUMNS
        rows = list(reader)
    summary = json.loads(result.summary_json.read_text())
    assert list(summary) == SUMMARY_FIELDS
    by_sha = {r["sha256"][0]: r for r in rows}
    assert [r["success"] for r in rows] == ["true", "true", "false", "false", "false"], [r["error"] for r in rows]
    assert by_sha["a"]["caption_used"] == "a colourful toy cube with six painted faces"  # longest
    assert by_sha["a"]["num_views_rendered"] == "8" and by_sha["a"]["aesthetic_score"] == "5.5"
    assert "not found" in by_sha["c"]["error"]
    assert "broken_000.glb" in by_sha["d"]["error"]
    assert "no caption" in by_sha["e"]["error"]
    assert by_sha["c"]["clip_score"] == ""  # never a made-up number

    cube = root / "toys4k_obj_files" / "cube" / "cube_000" / "mesh.obj"
    ball = root / "ball" / "ball_001" / "ball_001.glb"
    render = {"resolution": RES}
    ref_a = reference_clip_score(tiny_clip_dir, cube, by_sha["a"]["caption_used"], render)
    ref_b = reference_clip_score(tiny_clip_dir, ball, "a red and blue ball", render)
    assert float(by_sha["a"]["clip_score"]) == pytest.approx(ref_a, abs=2e-5)
    assert float(by_sha["b"]["clip_score"]) == pytest.approx(ref_b, abs=2e-5)
    assert summary["total_assets"] == 5 and summary["successful_evaluations"] == 2
    assert summary["success_rate"] == pytest.approx(0.4)
    assert summary["mean_clip_score"] == pytest.approx((ref_a + ref_b) / 2, abs=2e-5)
    assert summary["mean_clip_score_scaled"] == pytest.approx(100 * summary["mean_clip_score"])
    # per-view scores are kept in long format
    with (out / "scoring" / "views.csv").open() as fh:
        views = [r for r in csv.DictReader(fh) if r["metric"] == "clip_score" and r["item_id"].startswith("a")]
    assert len(views) == 8
    assert np.mean([float(r["value"]) for r in views]) == pytest.approx(float(by_sha["a"]["clip_score"]), abs=1e-9)


def test_caption_mean_rule_averages_per_caption_scores(toys4k_tree: tuple[Path, Path], tiny_clip_dir: Path,
                                                       tmp_path: Path) -> None:
    metadata, root = toys4k_tree
    result = run_toys4k(metadata, root, None, Toys4kOptions(
        caption="mean", max_assets=1, model=str(tiny_clip_dir), device="cpu", resolution=RES, cache_dir=None,
        progress=False))
    cube = root / "toys4k_obj_files" / "cube" / "cube_000" / "mesh.obj"
    refs = [reference_clip_score(tiny_clip_dir, cube, c, {"resolution": RES})
            for c in ("a cube", "a colourful toy cube with six painted faces")]
    assert result.summary["total_assets"] == 1
    assert result.rows[0]["clip_score"] == pytest.approx(float(np.mean(refs)), abs=2e-5)
    assert json.loads(result.rows[0]["caption_used"]) == ["a cube", "a colourful toy cube with six painted faces"]


def test_toys4k_cli_max_assets(toys4k_tree: tuple[Path, Path], tiny_clip_dir: Path, tmp_path: Path) -> None:
    metadata, root = toys4k_tree
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["toys4k", str(metadata), "--root", str(root), "--out", str(out),
                                   "--max-assets", "2", "--model", str(tiny_clip_dir), "--device", "cpu",
                                   "--resolution", str(RES), "--no-cache", "--caption", "first", "-q"])
    assert res.exit_code == 0, res.output
    assert "2/2 assets scored" in res.output
    rows = list(csv.DictReader((out / "toys4k_results.csv").open()))
    assert [r["caption_used"] for r in rows] == ["a cube", "a red and blue ball"]


def test_caption_rules_and_parsing() -> None:
    caps = parse_captions('["short", "the longest caption here", "mid length"]')
    assert choose_captions(caps, "longest") == ["the longest caption here"]
    assert choose_captions(caps, "first") == ["short"]
    assert choose_captions(caps, "mean") == list(caps)
    assert choose_captions(parse_captions("['aa', 'bb']"), "longest") == ["aa"]  # tie -> earlier
    assert parse_captions("just one caption") == ("just one caption",)
    assert parse_captions(float("nan")) == () and parse_captions("[]") == ()
    with pytest.raises(InputError, match="caption"):
        choose_captions(caps, "random")


def test_find_asset_search_order(tmp_path: Path) -> None:
    row = Toys4kRow("f" * 64, "toys4k_blend_files/car/car_003/car_003.blend", None, ("a car",))
    assert find_asset(tmp_path, row) is None
    sha_file = tmp_path / f"{'f' * 64}.glb"
    sha_file.write_bytes(b"x")
    assert find_asset(tmp_path, row) == sha_file
    folder = tmp_path / "car" / "car_003"
    folder.mkdir(parents=True)
    (folder / "mesh.obj").write_text("v 0 0 0\n")
    assert find_asset(tmp_path, row) == folder / "mesh.obj"
    (folder / "car_003.glb").write_bytes(b"x")
    assert find_asset(tmp_path, row) == folder / "car_003.glb"


def test_bad_run_options_stop_before_work(toys4k_tree: tuple[Path, Path], tmp_path: Path) -> None:
    metadata, root = toys4k_tree
    with pytest.raises(InputError, match="--root"):
        run_toys4k(metadata, tmp_path / "nowhere", None)
    with pytest.raises(InputError, match="rig"):
        run_toys4k(metadata, root, None, Toys4kOptions(rig="spiral"))
    bad = tmp_path / "bad.csv"
    bad.write_text("name,text\nx,y\n")
    with pytest.raises(InputError, match="file_identifier"):
        run_toys4k(bad, root, None)


def test_generic_meshes_captions_adapter(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from gencritic.scoring import ScoreOptions, score

    folder = tmp_path / "assets"
    folder.mkdir()
    coloured_sphere().export(folder / "ball.ply")
    shutil.copy(folder / "ball.ply", folder / "ball2.ply")
    (tmp_path / "captions.csv").write_text('mesh,caption,split\nball,a ball,test\nball2.ply,"[""x"", ""a longer one""]",val\n'
                                           'ghost,a ghost,test\n')
    items = items_from_captions_csv(folder, tmp_path / "captions.csv")
    assert [i.prompt for i in items] == ["a ball", "a longer one", "a ghost"]
    run = score(items, options=ScoreOptions(model=str(tiny_clip_dir), device="cpu", cache_dir=None, progress=False,
                                            render={"resolution": RES, "cache": False}))
    assert [r["success"] for r in run.rows] == [True, True, False]
    assert run.rows[0]["split"] == "test" and "not found" in run.rows[2]["error"]
    ref = reference_clip_score(tiny_clip_dir, folder / "ball.ply", "a ball", {"resolution": RES})
    assert run.rows[0]["clip_score"] == pytest.approx(ref, abs=2e-5)


def test_toys4k_says_which_assets_were_drawn_degraded(tiny_clip_dir: Path, tmp_path: Path) -> None:
    """The seed's files keep the seed's columns; the run points at the pipeline's warnings column."""
    from tests.test_fidelity import _glb

    folder = tmp_path / "toys4k" / "lamp" / "lamp_000"
    folder.mkdir(parents=True)
    _glb(folder, "lamp_000.glb", emissiveFactor=[1.0, 1.0, 1.0])
    metadata = tmp_path / "metadata.csv"
    metadata.write_text('sha256,file_identifier,aesthetic_score,captions\n'
                        f'{"f" * 64},lamp/lamp_000/lamp_000.blend,5.0,"[""a glowing lamp""]"\n')
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["toys4k", str(metadata), "--root", str(tmp_path / "toys4k"), "--out", str(out),
                                   "--model", str(tiny_clip_dir), "--device", "cpu", "--resolution", str(RES),
                                   "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    assert "1 item(s) were drawn degraded" in res.output
    (row,) = list(csv.DictReader((out / "scoring" / "results.csv").open()))
    assert row["warnings"].startswith("emissive: lamp_000.glb: material paint glows")
