"""Kits: parts of one object, each placed by its own transforms, drawn and normalised as one asset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import ItemError
from gencritic.items import kind_for_path
from gencritic.mesh import asset_files, asset_sha256, load_asset
from gencritic.mesh.kit import read_kit, write_kit
from gencritic.render.api import render_asset
from tests.fake_csm import make_part_glb

OPTS = {"rig": "six", "resolution": 48, "cache": False, "lighting": "flat"}


def _parts(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    specs = [("box", (-1.5, 0.0, 0.0), (220, 40, 40)), ("sphere", (1.5, 0.5, 0.0), (40, 60, 220))]
    paths = []
    for i, spec in enumerate(specs):
        path = folder / f"part-{i:02d}.glb"
        path.write_bytes(make_part_glb(*spec))
        paths.append(path)
    return paths


def test_kit_draws_every_part_where_its_transform_puts_it_normalised_together(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "job")
    kit = write_kit(tmp_path / "job" / "parts.kit.json", parts)
    assert json.loads(kit.read_text()) == {"gencritic_kit": 1, "parts": ["part-00.glb", "part-01.glb"]}
    data = load_asset(kit)
    assert len(data.primitives) == 2
    lo, hi = data.bounds()  # box centred at x=-1.5 (side 1), sphere (radius 0.5) at (1.5, 0.5, 0)
    np.testing.assert_allclose([lo[0], hi[0], hi[1]], [-2.0, 2.0, 1.0], atol=1e-6)
    # the same pixels as the parts assembled by hand into one file: one asset, one normalisation
    assembled = trimesh.Scene()
    for part in parts:
        assembled.add_geometry(trimesh.load(part, force="scene", process=False).to_geometry())
    whole = tmp_path / "whole.glb"
    assembled.export(whole)
    np.testing.assert_array_equal(render_asset(kit, OPTS).premultiplied, render_asset(whole, OPTS).premultiplied)
    assert not np.array_equal(render_asset(kit, OPTS).premultiplied, render_asset(parts[0], OPTS).premultiplied)


def test_kit_hash_follows_its_parts_contents_not_paths(tmp_path: Path) -> None:
    parts = _parts(tmp_path / "a")
    kit = write_kit(tmp_path / "a" / "k.kit.json", parts)
    assert set(asset_files(kit)) == {kit, *parts}
    moved = tmp_path / "elsewhere"
    shutil.copytree(tmp_path / "a", moved)
    assert asset_sha256(moved / "k.kit.json") == asset_sha256(kit)  # relative part names travel with the folder
    assert asset_sha256(kit) not in (asset_sha256(parts[0]), asset_sha256(parts[1]))
    parts[1].write_bytes(make_part_glb("sphere", (2.5, 0.5, 0.0), (40, 60, 220)))  # a part moved: another asset
    assert asset_sha256(moved / "k.kit.json") != asset_sha256(kit)
    outside = write_kit(tmp_path / "other" / "k.kit.json", parts)  # parts elsewhere: absolute paths
    assert read_kit(outside) == [p.resolve() for p in parts]
    assert kind_for_path(outside) == "mesh"


@pytest.mark.parametrize(("content", "message"), [
    ('{"parts": ["a.glb"]}', "is not a gencritic kit"),
    ('{"gencritic_kit": 1, "parts": []}', "lists no parts"),
    ('{"gencritic_kit": 1, "parts": ["a.glb", "a.glb"]}', "lists a part twice"),
    ('{"gencritic_kit": 1, "parts": ["inner.kit.json"]}', "kits do not nest"),
    ('{"gencritic_kit": 1, "parts": ["notes.txt"]}', "part notes.txt is not a mesh file"),
    ('{"gencritic_kit": 1, "parts": ["gone.glb"]}', r"kit k\.kit\.json, part gone\.glb: mesh file not found"),
    ("not json", r"cannot read kit k\.kit\.json"),
])
def test_bad_kits_fail_their_row_with_the_reason(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / "a.glb").write_bytes(make_part_glb("box", (0.0, 0.0, 0.0), (200, 200, 200)))
    kit = tmp_path / "k.kit.json"
    kit.write_text(content)
    with pytest.raises(ItemError, match=message):
        render_asset(kit, OPTS)


def test_a_kit_is_scored_from_a_manifest_and_rendered_by_the_command(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from gencritic.scoring import ScoreOptions, score

    kit = write_kit(tmp_path / "job" / "parts.kit.json", _parts(tmp_path / "job"))
    manifest = tmp_path / "m.csv"
    manifest.write_text(f"image,prompt\n{kit},a box and a ball\n")
    run = score(manifest, options=ScoreOptions(model=str(tiny_clip_dir), device="cpu", cache_dir=None, progress=False,
                                               render={"rig": "orbit4", "resolution": 32, "cache": False}))
    (row,) = run.rows
    assert row["success"] is True and row["num_views_scored"] == 4
    res = CliRunner().invoke(app, ["render", str(kit), "--out", str(tmp_path / "views"), "--rig", "orbit4",
                                   "--resolution", "32", "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "views" / "parts.kit" / "cameras.json").read_text())
    assert doc["warnings"] == [] and len(doc["views"]) == 4
