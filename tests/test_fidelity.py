"""Degraded renders never look like clean ones: a missing material library fails the row unless
untextured drawing is asked for, and every degradation accepted is named in the row
(``warnings`` in results.csv and views.csv) and counted in summary.json."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import InputError, ItemError
from gencritic.mesh import load_asset
from gencritic.render.api import render_asset
from gencritic.render.settings import RenderSettings, parse_render_options

SMALL = {"rig": "orbit4", "resolution": 32, "cache": False}


def _obj(folder: Path, name: str = "chair.obj", header: str = "mtllib model.mtl\nusemtl wood\n") -> Path:
    """A box OBJ written by hand; ``header`` says which material library and material it uses."""
    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box()
    lines = [f"v {x} {y} {z}" for x, y, z in box.vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]
    path = folder / name
    path.write_text(header + "\n".join(lines) + "\n")
    return path


# --- a missing material library ------------------------------------------------------------------


def test_obj_whose_faces_use_a_missing_material_library_fails_with_both_fixes(tmp_path: Path) -> None:
    path = _obj(tmp_path)  # names model.mtl, which is not beside it, and its faces use material wood
    fixes = r"model\.mtl.*not found beside it.*copy it there.*allow_untextured=true \(--allow-untextured\)"
    with pytest.raises(ItemError, match=fixes):
        load_asset(path)
    with pytest.raises(ItemError, match=fixes):  # the row's path: the renderer fails it before any cache
        render_asset(path, SMALL)


def test_allowed_untextured_asset_is_drawn_plain_and_says_so(tmp_path: Path) -> None:
    path = _obj(tmp_path)
    assert load_asset(path, allow_untextured=True).num_faces == 12
    render = render_asset(path, {**SMALL, "allow_untextured": True, "lighting": "flat"})
    assert render.warnings == [
        "untextured: chair.obj drawn without material library model.mtl (mtllib, its faces use material wood), "
        "not found beside it, in a plain colour (allow_untextured)"]
    drawn = render.premultiplied[0][render.premultiplied[0][..., 3] == 255][:, :3].astype(int)
    assert drawn.size and (drawn.max(axis=1) == drawn.min(axis=1)).all()  # the default colour: neutral, no wood
    # a missing texture is accepted the same way, and named
    from tests.test_mesh import _textured_obj

    textured = _textured_obj(tmp_path / "tex", "skin.png")
    (textured.parent / "skin.png").unlink()
    with pytest.raises(ItemError, match=r"needs texture skin\.png.*allow_untextured=true"):
        render_asset(textured, SMALL)
    data = load_asset(textured, allow_untextured=True)
    assert all(p.texture is None for p in data.primitives)
    (warned,) = render_asset(textured, {**SMALL, "allow_untextured": True}).warnings
    assert warned.startswith("untextured: cube.obj drawn without texture skin.png (map_Kd in ")


def test_a_library_that_changes_nothing_is_not_required(tmp_path: Path) -> None:
    """Exporters write mtllib for geometry-only files: without usemtl the asset looks the same with or
    without it (nothing to fail, nothing to warn); nor when the materials used are in a present library."""
    plain = _obj(tmp_path / "a", header="mtllib model.mtl\n")
    assert render_asset(plain, SMALL).warnings == []
    covered = _obj(tmp_path / "b", header="mtllib gone.mtl\nmtllib here.mtl\nusemtl wood\n")
    (covered.parent / "here.mtl").write_text("newmtl wood\nKd 0.6 0.4 0.2\n")
    assert render_asset(covered, SMALL).warnings == []
    uncovered = _obj(tmp_path / "c", header="mtllib gone.mtl\nmtllib here.mtl\nusemtl wood\nusemtl metal\n")
    (uncovered.parent / "here.mtl").write_text("newmtl wood\nKd 0.6 0.4 0.2\n")
    with pytest.raises(ItemError, match=r"material library gone\.mtl \(mtllib; its faces use material metal\)"):
        render_asset(uncovered, SMALL)


def test_a_cached_untextured_render_is_never_served_to_a_run_that_did_not_allow_it(tmp_path: Path) -> None:
    path = _obj(tmp_path / "m")
    cached = {**SMALL, "cache": True, "cache_dir": tmp_path / "renders"}
    first = render_asset(path, {**cached, "allow_untextured": True})
    again = render_asset(path, {**cached, "allow_untextured": True})
    assert again.from_cache and again.warnings == first.warnings and first.warnings  # said on a hit too
    with pytest.raises(ItemError, match="allow_untextured"):
        render_asset(path, cached)


def test_allow_untextured_option_parses_and_changes_no_pixel_key() -> None:
    assert parse_render_options({"allow_untextured": "yes"}).allow_untextured is True
    assert parse_render_options({"allow_untextured": "false"}).allow_untextured is False
    with pytest.raises(InputError, match=r"allow_untextured='maybe' is not valid"):
        parse_render_options({"allow_untextured": "maybe"})
    assert RenderSettings(allow_untextured=True).key() == RenderSettings().key()  # same pixels, same cache entries


# --- material features the renderer does not draw -------------------------------------------------


def _glb(tmp_path: Path, name: str, edit=None, **material: object) -> Path:
    from tests.test_render import join_glb, split_glb

    box = trimesh.creation.box()
    box.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
        name="paint", baseColorFactor=[200, 60, 40, 255], **material))
    doc, binary = split_glb(trimesh.Scene([box]).export(file_type="glb"))
    if edit is not None:
        edit(doc)
    path = tmp_path / name
    path.write_bytes(join_glb(doc, binary))
    return path


def test_emissive_and_unsupported_gltf_material_features_are_named(tmp_path: Path) -> None:
    from gencritic.row_warnings import kind_of

    assert render_asset(_glb(tmp_path, "plain.glb"), SMALL).warnings == []
    glowing = _glb(tmp_path, "lamp.glb", emissiveFactor=[1.0, 0.5, 0.0])
    (glow,) = render_asset(glowing, SMALL).warnings
    assert kind_of(glow) == "emissive" and glow.startswith("emissive: lamp.glb: material paint glows (emissiveFactor")

    def clearcoat(doc: dict) -> None:
        doc["materials"][0]["extensions"] = {"KHR_materials_clearcoat": {"clearcoatFactor": 1.0}}
        doc["extensionsUsed"] = ["KHR_materials_clearcoat"]

    assert render_asset(_glb(tmp_path, "car.glb", clearcoat), SMALL).warnings == [
        "material: car.glb: material paint uses KHR_materials_clearcoat (a clear coat), which is not drawn"]

    def unused_glow(doc: dict) -> None:  # a material no primitive draws with changes nothing
        doc["materials"].append({"name": "spare", "emissiveFactor": [1, 1, 1]})

    assert render_asset(_glb(tmp_path, "spare.glb", unused_glow), SMALL).warnings == []


def test_obj_emissive_material_is_named(tmp_path: Path) -> None:
    path = _obj(tmp_path, "lamp.obj", header="mtllib lamp.mtl\nusemtl bulb\n")
    (tmp_path / "lamp.mtl").write_text("newmtl bulb\nKd 1 1 0.8\nKe 0 0 0\nnewmtl spare\nKe 1 1 1\n")
    assert render_asset(path, SMALL).warnings == []  # black Ke; the glowing material is not used
    (tmp_path / "lamp.mtl").write_text("newmtl bulb\nKd 1 1 0.8\nKe 2 2 1.5\n")
    assert render_asset(path, SMALL).warnings == [
        "emissive: lamp.obj: material bulb (lamp.mtl) glows (Ke 2 2 1.5), which is not drawn: its diffuse colour is "
        "drawn under the rig's light"]


def test_warning_cells_round_trip_and_summaries_count_by_kind() -> None:
    from gencritic.row_warnings import join_cell, split_cell, summarise, warning

    made = [warning("untextured", "a.obj drawn without x; y"), warning("emissive", "b.glb:\n glows")]
    assert made == ["untextured: a.obj drawn without x, y", "emissive: b.glb: glows"]
    assert split_cell(join_cell(made)) == made and split_cell("") == [] and join_cell(None) == ""
    with pytest.raises(ValueError):
        warning("Not A Kind", "x")
    records = [made, [made[1]], None]  # each item's warnings, as records carry them
    assert summarise(records) == {"count": 3, "items": 2, "by_kind": {"emissive": 2, "untextured": 1}}


# --- through a scoring run: rows, views, summary, resume ------------------------------------------


def test_degradations_reach_results_views_and_summary_and_survive_resume(tmp_path: Path, tiny_clip_dir: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app
    from tests.test_render import coloured_sphere

    assets = tmp_path / "assets"
    _obj(assets)  # chair.obj: faces use material wood from model.mtl, which is not there
    coloured_sphere().export(assets / "ball.ply")
    _glb(assets, "lamp.glb", emissiveFactor=[1.0, 1.0, 1.0])
    common = ["--model", str(tiny_clip_dir), "--device", "cpu", "--no-cache", "-q", "--rig", "orbit4",
              "--resolution", "32", "--prompt", "a thing"]

    strict = tmp_path / "strict"
    res = CliRunner().invoke(app, ["score", str(assets), "--out", str(strict), *common])
    assert res.exit_code == 0, res.output
    rows = {r["item_id"]: r for r in csv.DictReader((strict / "results.csv").open())}
    assert rows["chair.obj"]["success"] == "false"
    assert "model.mtl" in rows["chair.obj"]["error"] and "--allow-untextured" in rows["chair.obj"]["error"]
    assert rows["lamp.glb"]["success"] == "true" and rows["lamp.glb"].get("warnings", "").startswith("emissive: lamp.glb")
    assert rows["ball.ply"]["warnings"] == ""

    allowed = tmp_path / "allowed"
    res = CliRunner().invoke(app, ["score", str(assets), "--out", str(allowed), "--allow-untextured", *common])
    assert res.exit_code == 0, res.output
    assert "2 item(s) were drawn degraded; see the 'warnings' column" in res.output
    rows = {r["item_id"]: r for r in csv.DictReader((allowed / "results.csv").open())}
    assert rows["chair.obj"]["success"] == "true"
    from gencritic.row_warnings import split_cell

    assert split_cell(rows["chair.obj"]["warnings"]) == [
        "untextured: chair.obj drawn without material library model.mtl (mtllib, its faces use material wood), "
        "not found beside it, in a plain colour (allow_untextured)"]
    views = list(csv.DictReader((allowed / "views.csv").open()))
    assert {v["warnings"] for v in views if v["item_id"] == "chair.obj"} == {rows["chair.obj"]["warnings"]}
    assert {v["warnings"] for v in views if v["item_id"] == "ball.ply"} == {""}
    summary = json.loads((allowed / "summary.json").read_text())
    assert summary["warnings"] == {"count": 2, "items": 2, "by_kind": {"emissive": 1, "untextured": 1}}

    # a resumed run scores nothing again and says the same (the warnings are in the journal)
    before = {name: (allowed / name).read_text() for name in ("results.csv", "views.csv")}
    res = CliRunner().invoke(app, ["score", str(assets), "--out", str(allowed), "--allow-untextured", *common])
    assert res.exit_code == 0, res.output
    again = json.loads((allowed / "summary.json").read_text())
    assert again["resumed_items"] == 3 and again["warnings"] == summary["warnings"]
    assert {name: (allowed / name).read_text() for name in before} == before
    # and another setting for untextured drawing is another run, not a resume
    res = CliRunner().invoke(app, ["score", str(assets), "--out", str(allowed), *common])
    assert res.exit_code != 0 and "other settings" in str(res.exception)


def test_kit_parts_carry_their_warnings(tmp_path: Path) -> None:
    from gencritic.mesh.kit import write_kit

    plain, lamp = _glb(tmp_path, "plain.glb"), _glb(tmp_path, "lamp.glb", emissiveFactor=[1.0, 0.5, 0.0])
    kit = write_kit(tmp_path / "pair.kit.json", [plain, lamp])
    (glow,) = render_asset(kit, SMALL).warnings
    assert glow.startswith("emissive: lamp.glb: material paint glows")
    _obj(tmp_path, "chair.obj")
    with pytest.raises(ItemError, match=r"kit bad\.kit\.json, part chair\.obj: .*model\.mtl"):
        render_asset(write_kit(tmp_path / "bad.kit.json", [plain, tmp_path / "chair.obj"]), SMALL)
    assert np.asarray(render_asset(kit, SMALL).premultiplied).any()
