"""``gencritic render`` and ``gencritic score`` on a folder of meshes, through the CLI."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image
from typer.testing import CliRunner

from gencritic.cli.main import app
from tests.test_render import coloured_sphere, textured_cube


@pytest.fixture()
def mesh_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "meshes"
    (folder / "toys").mkdir(parents=True)
    coloured_sphere().export(folder / "ball.ply")
    (folder / "ball.txt").write_text("a red and blue ball")
    textured_cube().export(folder / "toys" / "cube.glb")
    (folder / "toys" / "cube.txt").write_text("a painted cube")
    coloured_sphere(center=(50.0, 0.0, 0.0)).export(folder / "lost.ply")  # outside every frame with --normalize none
    (folder / "lost.txt").write_text("a ball far away")
    quad = trimesh.Trimesh([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], [[0, 1, 2], [0, 2, 3]])
    quad.export(folder / "card.ply")  # edge-on at yaw 90 and 270
    (folder / "card.txt").write_text("a square card")
    return folder


def test_render_command_writes_views_and_cameras(mesh_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "views"
    res = CliRunner().invoke(app, ["render", str(mesh_folder), "--out", str(out), "--resolution", "64", "--no-cache",
                                   "--rig", "toys4k8", "-q"])
    assert res.exit_code == 0, res.output
    assert "rendered 4/4 assets" in res.output
    doc = json.loads((out / "ball" / "cameras.json").read_text())
    assert doc["renderer"] and f"(renderer: {doc['renderer']})" in res.output  # GPU or CPU: the user sees which
    for name in ("ball", "toys/cube", "lost", "card"):
        assert sorted(p.name for p in (out / name).glob("*.png")) == [f"{i:03d}.png" for i in range(8)]
    doc = json.loads((out / "ball" / "cameras.json").read_text())
    view = doc["views"][2]
    assert view["yaw_deg"] == 90.0 and view["pitch_deg"] == 30.0 and view["fov_y_deg"] == 40.0
    f = 32 / math.tan(math.radians(20))
    np.testing.assert_allclose(view["K"], [[f, 0, 32], [0, f, 32], [0, 0, 1]])
    np.testing.assert_allclose(np.asarray(view["c2w_opengl"])[:3, 3],
                               [2 * math.cos(math.radians(30)), 1.0, 0.0], atol=1e-12)
    card = json.loads((out / "card" / "cameras.json").read_text())
    assert [v["error"] is not None for v in card["views"]] == [False, False, True, False, False, False, True, False]
    img = Image.open(out / "ball" / "000.png")
    assert img.mode == "RGB" and img.size == (64, 64)


def test_render_command_rejects_bad_rig(mesh_folder: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["render", str(mesh_folder), "--out", str(tmp_path / "v"), "--rig", "spiral"])
    assert res.exit_code != 0
    assert "unknown camera rig" in str(res.exception)


def test_score_meshes_end_to_end(mesh_folder: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lost_only = ["--rig", "orbit4", "--resolution", "64"]
    res = CliRunner().invoke(app, ["score", str(mesh_folder), "--out", str(out), "--model", str(tiny_clip_dir),
                                   "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "-q", *lost_only])
    assert res.exit_code == 0, res.output
    assert list((tmp_path / "cache" / "renders").rglob("*.gcr"))  # renders cached beside the embeddings
    rows = {r["item_id"]: r for r in csv.DictReader((out / "results.csv").open())}
    views = list(csv.DictReader((out / "views.csv").open()))
    # default normalisation recentres 'lost', so it is scored; card loses its edge-on views
    assert rows["card.ply"]["success"] == "true"
    assert rows["card.ply"]["num_views"] == "4" and rows["card.ply"]["num_views_scored"] == "2"
    card_views = [v for v in views if v["item_id"] == "card.ply"]
    assert {v["view"] for v in card_views if "blank view" in v["error"]} == {"001", "003"}
    for item_id, row in rows.items():
        vals = [float(v["value"]) for v in views if v["item_id"] == item_id and v["metric"] == "clip_score"]
        assert float(row["clip_score"]) == pytest.approx(float(np.mean(vals)), abs=1e-12)
    # the summary names what drew the views (the same name the render command records), also
    # after a re-run that serves every view from the caches
    from gencritic.render.gl import thread_renderer

    expected = [thread_renderer().renderer_name]
    assert json.loads((out / "summary.json").read_text())["renderers"] == expected
    res = CliRunner().invoke(app, ["score", str(mesh_folder), "--out", str(tmp_path / "again"), "--model",
                                   str(tiny_clip_dir), "--device", "cpu", "--cache-dir", str(tmp_path / "cache"), "-q",
                                   *lost_only])
    assert res.exit_code == 0 and json.loads((tmp_path / "again" / "summary.json").read_text())["renderers"] == expected


def test_asset_with_no_valid_view_is_a_failed_row(mesh_folder: Path, tiny_clip_dir: Path, tmp_path: Path) -> None:
    from gencritic.scoring import ScoreOptions, score

    run = score(mesh_folder / "lost.ply", options=ScoreOptions(
        model=str(tiny_clip_dir), device="cpu", cache_dir=None, progress=False,
        render={"resolution": 64, "normalize": "none", "cache": False}))
    row = run.rows[0]
    assert row["success"] is False
    assert "no valid rendered view" in row["error"] and "blank view" in row["error"]
    assert math.isnan(row.get("clip_score", math.nan)) or row.get("clip_score") in (None, "")
    assert all(v["metric"] == "" and "blank view" in v["error"] for v in run.view_rows)


def test_folder_of_meshes_does_not_score_their_textures(tmp_path: Path) -> None:
    from gencritic.io.manifest import collect_items

    folder = tmp_path / "assets"
    folder.mkdir()
    textured_cube().export(folder / "cube.obj")  # writes the MTL and the texture PNG beside it
    assert list(folder.glob("*.png"))
    Image.new("RGB", (8, 8), (10, 20, 30)).save(folder / "photo.png")  # an unrelated image stays an item
    items = collect_items(folder)
    assert sorted(i.item_id for i in items) == ["cube.obj", "photo.png"]


def test_a_textures_folder_beside_a_mesh_is_not_a_folder_of_views(tmp_path: Path) -> None:
    """model.obj + textures/skin.png (its map_Kd) is one asset; a folder of only images that no
    mesh names (renders/) stays a multi-view item."""
    import re

    from gencritic.io.manifest import collect_items

    folder = tmp_path / "assets"
    folder.mkdir()
    textured_cube().export(folder / "cube.obj")
    (folder / "textures").mkdir()
    mtl = folder / "material.mtl"
    name = re.search(r"map_Kd (\S+)", mtl.read_text()).group(1)
    (folder / name).rename(folder / "textures" / name)
    mtl.write_text(mtl.read_text().replace(f"map_Kd {name}", f"map_Kd textures/{name}"))
    (folder / "renders").mkdir()
    for k in range(2):
        Image.new("RGB", (8, 8), (10 * k, 20, 30)).save(folder / "renders" / f"{k:03d}.png")
    items = collect_items(folder)
    assert sorted((i.item_id, i.kind) for i in items) == [("cube.obj", "mesh"), ("renders", "views")]


def _truncated_texture_assets(folder: Path) -> None:
    """good.glb; trunc.glb whose embedded PNG is cut in half; tex.obj whose external skin.png is."""
    from tests.test_render import _atlas, join_glb, split_glb

    folder.mkdir(parents=True)
    glb = textured_cube().export(file_type="glb")
    (folder / "good.glb").write_bytes(glb)
    doc, binary = split_glb(glb)
    view = doc["bufferViews"][doc["images"][0]["bufferView"]]
    view["byteLength"] //= 2  # the image's bytes end halfway: a truncated PNG inside the GLB
    (folder / "trunc.glb").write_bytes(join_glb(doc, binary))
    _atlas()[0].save(folder / "skin.png")
    skin = (folder / "skin.png").read_bytes()
    (folder / "skin.png").write_bytes(skin[: len(skin) // 2])
    lines = textured_cube().export(file_type="obj", include_texture=False).splitlines()
    (folder / "skin.mtl").write_text("newmtl painted\nKd 1 1 1\nmap_Kd skin.png\n")
    body = "\n".join(line for line in lines if not line.startswith(("mtllib", "usemtl")))
    (folder / "tex.obj").write_text("mtllib skin.mtl\nusemtl painted\n" + body + "\n")


def test_a_truncated_texture_fails_its_asset_with_one_line(tmp_path: Path) -> None:
    """It ended the whole `render` in an OSError traceback; now the asset says which texture is
    broken and the other assets are still rendered."""
    folder = tmp_path / "assets"
    _truncated_texture_assets(folder)
    out = tmp_path / "views"
    res = CliRunner().invoke(app, ["render", str(folder), "--out", str(out), "--resolution", "32", "--no-cache"])
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), repr(res.exception)
    assert "Traceback" not in res.output
    lines = res.output.splitlines()
    glb = next(line for line in lines if line.endswith("again") and "trunc.glb: error:" in line)
    assert "texture embedded image 0" in glb and "cannot be decoded" in glb and "truncated" in glb, glb
    obj = next(line for line in lines if "tex.obj: error:" in line)
    assert "texture skin.png (material painted)" in obj and "cannot be decoded" in obj, obj
    assert "rendered 1/3 assets" in res.output
    assert len(list((out / "good").glob("*.png"))) == 8
