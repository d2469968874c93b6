"""``--lighting trellis``: TRELLIS' Blender scene for ``--renderer cycles`` (every setting read back
from the scene the worker builds, against TRELLIS' dataset_toolkits/blender_script/render.py), and
the rasteriser's stand-in (world-fixed lights, Filmic-like curve). Blender tests skip without it."""

from __future__ import annotations

import math
import subprocess
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import InputError
from gencritic.render.api import render_asset
from gencritic.render.gl import TOP_SAMPLES, TRELLIS_LIGHTING, TRELLIS_POINT_LIGHT, top_light_profile
from gencritic.render.settings import RenderSettings, parse_render_options
from gencritic.render.trellis import BLENDER_FROM_GENCRITIC, describe_trellis_scene
from tests.test_render import textured_cube


def test_trellis_scene_is_trellis_render_py_setting_by_setting(tmp_path: Path, blender: str) -> None:
    path = tmp_path / "cube.glb"
    textured_cube().apply_scale(2.0).export(path)
    settings = parse_render_options({"renderer": "cycles", "lighting": "trellis", "rig": "toys4k8"})
    scene = describe_trellis_scene(path, settings)
    assert scene["engine"] == "CYCLES"
    assert scene["resolution"] == [512, 512, 100]
    assert scene["film_transparent"] is True
    assert scene["image"] == ["PNG", "RGBA", "8"]
    c = scene["cycles"]
    assert c["samples"] == 128 and c["device"] == "CPU"
    # TRELLIS assigns cycles.filter_type = 'BOX', which the renderer never reads (docs/rendering.md)
    assert c["pixel_filter_type"] == "BLACKMAN_HARRIS" and c["filter_width"] == 1.0
    assert (c["diffuse_bounces"], c["glossy_bounces"], c["transparent_max_bounces"], c["transmission_bounces"]) == (
        1, 1, 3, 3)
    assert (c["max_bounces"], c["volume_bounces"]) == (12, 0)
    assert c["use_denoising"] is True and c["denoiser"] == "OPENIMAGEDENOISE" and c["denoising_use_gpu"] is False
    assert c["use_adaptive_sampling"] is True and c["adaptive_threshold"] == pytest.approx(0.01)
    assert c["seed"] == 0 and c["use_light_tree"] is False
    assert (scene["view_transform"], scene["look"], scene["exposure"], scene["gamma"]) == ("Filmic", "None", 0.0, 1.0)
    assert scene["display_device"] == "sRGB"
    world = scene["world_background"]
    assert world["color"][:3] == pytest.approx([0.050876] * 3, abs=1e-6) and world["strength"] == 1.0
    lights = {light["name"]: light for light in scene["lights"]}
    assert set(lights) == {"Default_Light", "Top_Light", "Bottom_Light"}
    point, top, bottom = lights["Default_Light"], lights["Top_Light"], lights["Bottom_Light"]
    assert (point["type"], point["energy"], point["location"]) == ("POINT", 1000.0, [4.0, 1.0, 6.0])
    assert point["shadow_soft_size"] == pytest.approx(0.25)  # Blender 3.0's default for a new light
    assert (top["type"], top["energy"], top["location"], top["scale"]) == ("AREA", 10000.0, [0.0, 0.0, 10.0],
                                                                           [100.0, 100.0, 100.0])
    assert (bottom["type"], bottom["energy"], bottom["location"], bottom["scale"]) == ("AREA", 1000.0,
                                                                                      [0.0, 0.0, -10.0], [1.0] * 3)
    assert top["size"] == bottom["size"] == 0.25
    assert top["emits_along"] == pytest.approx([0, 0, -1]) and bottom["emits_along"] == pytest.approx([0, 0, -1])
    # full materials: Blender's glTF importer builds a Principled BSDF with the texture
    assert {"ShaderNodeBsdfPrincipled", "ShaderNodeTexImage"} <= set(scene["material_nodes"])
    # normalised as TRELLIS' normalize_scene: centred, longest side 1 (the cube had side 2)
    assert np.asarray(scene["bounds"]) == pytest.approx(np.array([[-0.5] * 3, [0.5] * 3]), abs=1e-6)
    cameras = scene["cameras"]
    assert len(cameras) == 8
    fov = math.radians(40.0)
    for k, cam in enumerate(cameras):
        assert cam["sensor_width"] == cam["sensor_height"] == 32.0 and cam["sensor_fit"] == "AUTO"
        assert cam["lens"] == pytest.approx(16 / math.tan(fov / 2))
        assert cam["angle"] == pytest.approx(fov)
        # TRELLIS' position formula, Z up; gencritic's yaw y is TRELLIS' yaw y - 90°
        yaw, pitch, r = math.radians(45.0 * k - 90.0), math.radians(30.0), 2.0
        expected = [r * math.cos(yaw) * math.cos(pitch), r * math.sin(yaw) * math.cos(pitch), r * math.sin(pitch)]
        assert cam["location"] == pytest.approx(expected, abs=1e-6)
        m = np.asarray(cam["matrix_world"])
        # what TRELLIS' TRACK_TO constraint (track -Z, up Y) gives: looking at the origin, image x
        # horizontal, image y toward +Z
        assert -m[:3, 2] == pytest.approx(-np.asarray(expected) / r, abs=1e-6)
        assert m[2, 0] == pytest.approx(0.0, abs=1e-6) and m[2, 1] > 0


def test_trellis_cycles_views_repeat_exactly_and_match_the_rasteriser_silhouette(tmp_path: Path,
                                                                                 blender: str) -> None:
    path = tmp_path / "cube.glb"
    textured_cube().export(path)
    options = {"lighting": "trellis", "rig": "orbit4", "resolution": 32, "cache": False}
    first = render_asset(path, {**options, "renderer": "cycles", "spp": 8})
    assert "TRELLIS" in first.meta["renderer"]
    again = render_asset(path, {**options, "renderer": "cycles", "spp": 8})
    assert np.array_equal(first.premultiplied, again.premultiplied)
    raster = render_asset(path, options).premultiplied
    covered_c, covered_r = first.premultiplied[..., 3] > 127, raster[..., 3] > 127
    assert (covered_c & covered_r).sum() / (covered_c | covered_r).sum() > 0.9


def test_filmic_exists_and_the_rasterisers_curve_follows_it(tmp_path: Path, blender: str) -> None:
    from benchmarks.fit_trellis_gl import RAMP_SCRIPT

    from gencritic.blender import blender_command

    script = tmp_path / "ramp.py"
    script.write_text(RAMP_SCRIPT)
    subprocess.run([*blender_command(script), str(tmp_path)], check=True, capture_output=True)
    from PIL import Image

    with Image.open(tmp_path / "ramp.png") as im:
        ramp = np.asarray(im).astype(np.float64)
    filmic = ramp[0, :, 0] / (65535.0 if ramp.max() > 255 else 255.0)
    x = np.load(tmp_path / "x.npy").astype(np.float64)
    ours = 1.0 / (1.0 + np.exp(-np.polyval(TRELLIS_LIGHTING.tone, np.log2(x))))
    assert filmic[np.argmin(abs(x - 0.18))] == pytest.approx(0.5, abs=0.01)  # Filmic's middle grey
    assert np.abs(ours - filmic)[x < 8].max() < 0.015


def test_lighting_trellis_is_a_setting_whose_default_samples_are_trellis() -> None:
    assert parse_render_options({"lighting": "trellis"}).lighting == "trellis"
    with pytest.raises(InputError, match="trellis"):
        parse_render_options({"lighting": "trelis"})
    assert RenderSettings(lighting="trellis", renderer="gl").spp == 128
    assert RenderSettings(lighting="trellis", spp=16).spp == 16  # asked for: kept
    assert RenderSettings().spp == 16 and RenderSettings(lighting="flat").spp == 16
    default, gl_trellis = RenderSettings(), RenderSettings(lighting="trellis")
    assert default.key() != gl_trellis.key()
    assert gl_trellis.pixel_settings()["lighting"].startswith("trellis-gl")


def test_trellis_cycles_key_names_its_scene(blender: str) -> None:
    settings = RenderSettings(lighting="trellis", renderer="cycles")
    assert settings.pixel_settings()["lighting"].startswith("trellis-cycles")
    assert settings.key() != RenderSettings(lighting="trellis").key()


def test_blender_frame_is_what_blenders_gltf_importer_does() -> None:
    # glTF (x, y, z) -> Blender (x, -z, y): up +Y becomes +Z, the front (+Z) faces Blender's -Y
    assert BLENDER_FROM_GENCRITIC[:3, :3] @ np.array([0, 1, 0]) == pytest.approx([0, 0, 1])
    assert BLENDER_FROM_GENCRITIC[:3, :3] @ np.array([0, 0, 1]) == pytest.approx([0, -1, 0])
    assert BLENDER_FROM_GENCRITIC[:3, :3] @ TRELLIS_POINT_LIGHT == pytest.approx([4, 1, 6])


def test_top_light_profile_is_a_cosine_while_the_whole_light_is_above_the_horizon() -> None:
    profile = np.asarray(top_light_profile())
    c = np.linspace(-1, 1, TOP_SAMPLES)
    # the 25 m square at height 10 spans atan(12.5·√2 / 10) = 60.5° from the zenith at its corners:
    # a surface tilted less than 29.5° sees all of it, and then E = |vector irradiance| · cos
    whole = c >= math.cos(math.radians(90 - 60.5)) + 1e-9
    assert profile[whole] == pytest.approx(c[whole], abs=1e-9)
    assert profile[-1] == 1.0 and profile[0] == 0.0
    # below the horizon as soon as the tilt passes 90° + 60.5° (corners): nothing
    assert profile[c < -math.cos(math.radians(90 - 60.5))].max() == 0.0
    assert np.all(np.diff(profile) >= -1e-12)


def test_rasterised_trellis_lights_stay_in_the_world(tmp_path: Path) -> None:
    sphere = trimesh.creation.icosphere(subdivisions=4, radius=0.5)
    sphere.visual.vertex_colors = np.tile([200, 200, 200, 255], (len(sphere.vertices), 1)).astype(np.uint8)
    path = tmp_path / "sphere.ply"
    sphere.export(path)
    options = {"rig": "orbit24", "pitch": 0.0, "resolution": 64, "cache": False}
    default = render_asset(path, options).premultiplied[..., :3].astype(float).sum(axis=(1, 2, 3))
    assert default.max() / default.min() < 1.01  # camera-fixed lights: every view alike
    views = render_asset(path, {**options, "lighting": "trellis"}).premultiplied.astype(float)
    brightness = views[..., :3].sum(axis=(1, 2, 3))
    assert brightness.max() / brightness.min() > 1.05
    # the point light sits at azimuth atan2(4, -1) = 104° (gencritic's yaw): the view from there is
    # the brightest, the one from the opposite side (284°) the darkest
    assert int(np.argmax(brightness)) == round(104.04 / 15) and int(np.argmin(brightness)) in (18, 19)
    # the overhead light: the sphere's upper half is brighter than its lower half in every view
    upper, lower = views[:, :30, :, :3].sum(axis=(1, 2, 3)), views[:, 34:, :, :3].sum(axis=(1, 2, 3))
    assert np.all(upper > 1.1 * lower)


def test_render_command_takes_lighting_trellis_and_defaults_cycles_to_128_spp(tmp_path: Path, blender: str) -> None:
    import json

    from typer.testing import CliRunner

    from gencritic.cli.main import app

    path = tmp_path / "cube.glb"
    textured_cube().export(path)
    out = tmp_path / "views"
    res = CliRunner().invoke(app, ["render", str(path), "--out", str(out), "--renderer", "cycles", "--lighting",
                                   "trellis", "--rig", "orbit1", "--resolution", "16", "--no-cache", "-q"])
    assert res.exit_code == 0, res.output
    cameras = json.loads((out / "cube" / "cameras.json").read_text())
    assert cameras["settings"]["spp"] == 128 and cameras["settings"]["lighting"].startswith("trellis-cycles")
    assert "TRELLIS" in cameras["renderer"]


def test_score_command_takes_lighting_trellis(tmp_path: Path, tiny_clip_dir: Path) -> None:
    import csv

    from typer.testing import CliRunner

    from gencritic.cli.main import app

    path = tmp_path / "cube.glb"
    textured_cube().export(path)
    runs = {}
    for lighting in ("default", "trellis"):
        out = tmp_path / lighting
        res = CliRunner().invoke(app, ["score", str(path), "--prompt", "a cube", "--out", str(out), "--model",
                                       str(tiny_clip_dir), "--device", "cpu", "--no-cache", "-q", "--rig", "orbit4",
                                       "--resolution", "64", "--lighting", lighting])
        assert res.exit_code == 0, res.output
        runs[lighting] = [r for r in csv.DictReader((out / "views.csv").open()) if r["metric"] == "clip_score"]
    # other pixels, other per-view scores: the option reached the renderer
    assert [v["value"] for v in runs["default"]] != [v["value"] for v in runs["trellis"]]


def test_gap_measures_by_hand() -> None:
    from benchmarks.bench_trellis_gap import view_gap

    view = np.zeros((32, 32, 4), np.uint8)
    view[8:24, 8:24] = (120, 60, 30, 255)
    same = view_gap(view, view)
    assert same["ssim"] == pytest.approx(1.0) and same["iou"] == 1.0 and same["dE"] == 0.0 and same["dRGB"] == 0.0
    shifted = np.zeros_like(view)
    shifted[8:24, 12:28] = (120, 60, 30, 255)  # 16x16 squares overlapping on 16x12
    assert view_gap(view, shifted)["iou"] == pytest.approx(12 * 16 / (16 * 20))
    darker = view.copy()
    darker[8:24, 8:24, :3] -= 10
    assert view_gap(view, darker)["dRGB"] == pytest.approx(10.0)


def test_gap_benchmark_prints_the_clip_difference_with_weights(tmp_path: Path, blender: str,
                                                              tiny_clip_dir: Path) -> None:
    from benchmarks.bench_trellis_gap import clip_gap

    path = tmp_path / "cube.glb"
    textured_cube().export(path)
    rows = clip_gap([path], str(tiny_clip_dir), 16, False, None, {path: "a cube"})
    (name, cycles, raster), = rows
    assert name == "cube.glb" and np.isfinite(cycles) and np.isfinite(raster) and cycles != raster


def test_kits_and_blend_files_are_placed_as_gencritic_places_them(tmp_path: Path, blender: str,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.mesh.kit import write_kit
    from tests.test_blend import make_blend

    monkeypatch.setenv("GENCRITIC_CACHE_DIR", str(tmp_path / "cache"))
    trimesh.creation.box(extents=(1.0, 1.0, 1.0)).export(tmp_path / "a.glb")
    trimesh.creation.box(extents=(1.0, 3.0, 1.0), transform=trimesh.transformations.translation_matrix(
        (4.0, 0.0, 0.0))).export(tmp_path / "b.obj")
    kit = write_kit(tmp_path / "two.kit.json", [tmp_path / "a.glb", tmp_path / "b.obj"])
    settings = parse_render_options({"renderer": "cycles", "lighting": "trellis", "rig": "orbit1"})
    scene = describe_trellis_scene(kit, settings)
    # the kit spans x -0.5..4.5 (5), y -1.5..1.5, z -0.5..0.5: longest side 1, centred, in Blender's frame
    expected = np.array([[-0.5, -0.1, -0.3], [0.5, 0.1, 0.3]])
    assert np.asarray(scene["bounds"]) == pytest.approx(expected, abs=1e-6)
    blend = make_blend(tmp_path, "scene", "toy.blend")
    scene = describe_trellis_scene(blend, settings)
    lo, hi = np.asarray(scene["bounds"])
    assert (hi - lo).max() == pytest.approx(1.0, abs=1e-6) and (hi + lo) == pytest.approx(np.zeros(3), abs=1e-6)
    assert {light["name"] for light in scene["lights"]} == {"Default_Light", "Top_Light", "Bottom_Light"}
