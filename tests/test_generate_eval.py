"""Meshes served by the fake CSM server flow into rendering, scoring and the leaderboard."""

from __future__ import annotations

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from gencritic.generate.matrix import load_matrix
from tests.conftest import hf_features, make_image
from tests.fake_csm import FakeClock, FakeCsm, make_runner


def _eval_ready() -> None:
    """Skip only when the 3D renderer or the clip_i2i metric is not in this build."""
    if importlib.util.find_spec("gencritic.render.api") is None:
        pytest.skip("gencritic.render.api is not importable")
    try:
        import gencritic.render.api  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"gencritic.render.api is not importable: {exc}")
    from gencritic.metrics.registry import all_metrics

    if "clip_i2i" not in all_metrics():
        pytest.skip("metric clip_i2i is not registered")


def reference_clip_i2i(model_dir: Path, mesh: Path, image: Path, render: dict[str, object]) -> float:
    """Independent calculation: render, then transformers CLIP directly, cosine to the input, mean."""
    import torch
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel

    from gencritic.render.api import render_asset_views

    views = [v.image.rgb for v in render_asset_views(mesh, dict(render, background=(255, 255, 255))) if v.image]
    model = CLIPModel.from_pretrained(model_dir).eval()
    proc = CLIPImageProcessor.from_pretrained(model_dir)
    with torch.no_grad():
        emb = hf_features(model.get_image_features(**proc(images=[*views, Image.open(image).convert("RGB")], return_tensors="pt")))
    emb = torch.nn.functional.normalize(emb.float(), dim=-1).numpy().astype(np.float64)
    return float((emb[:-1] @ emb[-1]).mean())


def test_meshes_from_the_fake_server_are_scored_and_ranked(tmp_path: Path, fake: FakeCsm, tiny_clip_dir: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    _eval_ready()
    monkeypatch.setenv("GENCRITIC_CACHE_DIR", str(tmp_path / "cache"))
    from gencritic.generate.evaluate import evaluate

    images = tmp_path / "images"
    make_image(images / "apple.png", (220, 30, 30))
    (images / "apple.txt").write_text("a red apple")
    make_image(images / "leaf.png", (30, 200, 40))  # no prompt: scored on clip_i2i only
    fake.fail_sessions = {"i3d-turbo-baked"}
    configs = load_matrix(None, ["i3d-base", "i3d-turbo", "i3d-turbo-baked"])
    with make_runner(tmp_path / "jobs", fake.url, fake.api_key, FakeClock()) as runner:
        runner.plan(images, configs)
        runner.run_until_done(max_passes=5)
        rows = runner.tracker.all()
    assert sum(r.status == "complete" for r in rows) == 4
    render = {"rig": "orbit4", "resolution": 64}
    result = evaluate(rows, tmp_path / "eval", str(tiny_clip_dir), ["clip"], device="cpu", render=render,
                      cache_dir=None, progress=False)

    board = {e["config"]: e for e in result.leaderboard}
    assert set(board) == {"i3d-base", "i3d-turbo", "i3d-turbo-baked"}
    assert board["i3d-turbo-baked"]["failed_generation"] == 2 and board["i3d-turbo-baked"]["scored"] == 0
    assert board["i3d-turbo-baked"]["clip_i2i_mean"] is None  # no number made up for a failed generator
    for name in ("i3d-base", "i3d-turbo"):
        e = board[name]
        assert (e["jobs"], e["generated"], e["scored"]) == (2, 2, 2)
        assert -1.0 <= e["clip_i2i_mean"] <= 1.0
    assert [e["rank"] for e in result.leaderboard] == [1, 2, 3]
    assert result.leaderboard[-1]["config"] == "i3d-turbo-baked"

    # per-job value equals an independent computation (renderer + transformers CLIP by hand)
    scores = {(r["image"], r["config"]): r for r in result.job_rows}
    job = next(r for r in rows if r.image_name == "apple.png" and r.config == "i3d-base")
    mesh = Path(next(f["path"] for f in job.files if f["kind"] == "mesh"))
    expected = reference_clip_i2i(tiny_clip_dir, mesh, Path(job.image_copy), render)
    assert scores[("apple.png", "i3d-base")]["clip_i2i"] == pytest.approx(expected, abs=2e-3)
    # text metric only where a prompt exists
    assert scores[("apple.png", "i3d-base")]["clip_score"] is not None
    assert scores[("leaf.png", "i3d-base")]["clip_score"] is None
    assert scores[("leaf.png", "i3d-base")]["success"] is True

    with open(tmp_path / "eval" / "leaderboard.csv", newline="") as fh:
        written = list(csv.DictReader(fh))
    assert [w["config"] for w in written] == [e["config"] for e in result.leaderboard]
    md = (tmp_path / "eval" / "leaderboard.md").read_text()
    assert "| rank | config |" in md and "i3d-turbo-baked" in md

    # the command line gives the same leaderboard
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    res = CliRunner().invoke(app, ["generate", "eval", "--workdir", str(tmp_path / "jobs"), "--out",
                                   str(tmp_path / "eval-cli"), "--model", str(tiny_clip_dir), "--device", "cpu",
                                   "--rig", "orbit4", "--resolution", "64", "--quiet"])
    assert res.exit_code == 0, res.output
    assert "i3d-turbo-baked" in res.output and "clip_i2i_mean" in res.output
    with open(tmp_path / "eval-cli" / "leaderboard.csv", newline="") as fh:
        again = list(csv.DictReader(fh))
    assert [(w["config"], w["clip_i2i_mean"]) for w in again] == [(w["config"], w["clip_i2i_mean"]) for w in written]


def _kit_from_parts_only(tmp_path: Path, fake: FakeCsm) -> list:
    """A kit job whose answer has two parts and no assembled mesh: a red box placed at x=-1.5 and a
    blue, glowing sphere at x=+1.5 by their nodes' transforms."""
    from tests.fake_csm import make_part_glb

    fake.kit_parts_only, fake.parts_per_kit = True, 2
    fake.mesh_for = lambda s, i, kind: make_part_glb(*(("box", (-1.5, 0.0, 0.0), (220, 40, 40)) if i == 0
                                                      else ("sphere", (1.5, 0.0, 0.0), (40, 60, 220), True)))
    images = tmp_path / "images"
    make_image(images / "pair.png", (120, 60, 140))
    with make_runner(tmp_path / "jobs", fake.url, fake.api_key, FakeClock()) as runner:
        runner.plan(images, load_matrix(None, ["kit-pro-turbo-baked"]))
        runner.run_until_done(max_passes=5)
        rows = runner.tracker.all()
    assert [r.status for r in rows] == ["complete"]
    assert sorted(f["kind"] for f in rows[0].files) == ["part", "part"]  # no assembled mesh came back
    return rows


def test_a_kit_of_parts_is_scored_as_the_whole_object(tmp_path: Path, fake: FakeCsm, tiny_clip_dir: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts only (the kit answer): every part is drawn, each where its transform puts it, the parts
    normalised together; the row says how many parts; per-part scores only when asked."""
    _eval_ready()
    import trimesh

    monkeypatch.setenv("GENCRITIC_CACHE_DIR", str(tmp_path / "cache"))
    from gencritic.generate.evaluate import evaluate
    from gencritic.render.api import render_asset

    rows = _kit_from_parts_only(tmp_path, fake)
    render = {"rig": "orbit4", "resolution": 64, "pitch": 0.0}
    result = evaluate(rows, tmp_path / "eval", str(tiny_clip_dir), [], device="cpu", render=render, cache_dir=None,
                      progress=False)
    (row,) = result.job_rows
    assert row["success"] is True and row.get("num_parts") == 2
    assert not (tmp_path / "eval" / "part_scores.csv").exists()  # per-part scores only when asked

    # what was scored shows both parts: in the front view (looking down -Z) the silhouette has the box
    # on the left, the sphere on the right and empty background between them
    front = render_asset(Path(row["mesh"]), {**render, "cache": False}).premultiplied[0].astype(int)
    drawn = front[..., 3] > 0
    columns = drawn.any(axis=0)
    assert columns[8:24].any() and columns[40:56].any(), "both parts are in the picture"
    assert not columns[28:36].any(), "each part stays where its transform puts it (a gap between them)"
    left, right = front[:, :32][drawn[:, :32]], front[:, 32:][drawn[:, 32:]]
    assert (left[:, 0] > left[:, 2]).all() and (right[:, 2] > right[:, 0]).all()  # the red box left, blue sphere right

    # the number equals an independent computation on the parts assembled by hand into one GLB
    parts = sorted(rows[0].files, key=lambda f: f["index"])
    assembled = trimesh.Scene()
    for f in parts:
        assembled.add_geometry(trimesh.load(f["path"], force="scene", process=False).to_geometry())
    whole = tmp_path / "assembled.glb"
    assembled.export(whole)
    expected = reference_clip_i2i(tiny_clip_dir, whole, Path(rows[0].image_copy), render)
    assert row["clip_i2i"] == pytest.approx(expected, abs=2e-3)
    part0 = reference_clip_i2i(tiny_clip_dir, Path(parts[0]["path"]), Path(rows[0].image_copy), render)
    assert abs(row["clip_i2i"] - part0) > 2e-3  # not the first part's number
    with open(tmp_path / "eval" / "scores.csv", newline="") as fh:
        (written,) = list(csv.DictReader(fh))
    assert written["num_parts"] == "2" and written["mesh"].endswith(".kit.json")
    # the glow of the sphere is not drawn: the row and the leaderboard say so
    assert written["warnings"].startswith("emissive: part-01.glb: material glow glows")
    assert result.leaderboard[0]["scored_with_warnings"] == 1

    # asked for: each part scored on its own as well, in its own file; the whole-object row is unchanged
    again = evaluate(rows, tmp_path / "eval", str(tiny_clip_dir), [], device="cpu", render=render, cache_dir=None,
                     progress=False, per_part=True)
    assert again.job_rows[0]["clip_i2i"] == row["clip_i2i"]
    with open(tmp_path / "eval" / "part_scores.csv", newline="") as fh:
        by_part = {int(r["part"]): r for r in csv.DictReader(fh)}
    assert sorted(by_part) == [0, 1] and all(r["success"] == "true" for r in by_part.values())
    assert float(by_part[0]["clip_i2i"]) == pytest.approx(part0, abs=2e-3)
    assert by_part[0]["warnings"] == "" and by_part[1]["warnings"].startswith("emissive: part-01.glb")

    # the command line: the same whole-object row, per-part scores only with --per-part
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    base = ["generate", "eval", "--workdir", str(tmp_path / "jobs"), "--model", str(tiny_clip_dir), "--device",
            "cpu", "--rig", "orbit4", "--resolution", "64", "--text-metrics", "", "--quiet"]
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "cli")])
    assert res.exit_code == 0, res.output
    assert not (tmp_path / "cli" / "part_scores.csv").exists()
    res = CliRunner().invoke(app, [*base, "--out", str(tmp_path / "cli-parts"), "--per-part"])
    assert res.exit_code == 0, res.output
    with open(tmp_path / "cli-parts" / "part_scores.csv", newline="") as fh:
        assert [r["part"] for r in csv.DictReader(fh)] == ["0", "1"]
