"""The optional Cycles renderer: same cameras and conventions as the rasteriser, reproducible,
and one clear line when Blender is missing. Cycles tests run when Blender is installed
(`bash scripts/setup.sh --with-blender`, as CI does) and skip otherwise."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import InputError, ItemError
from gencritic.mesh import MeshData, Primitive
from gencritic.render.api import render_asset
from gencritic.render.cameras import make_rig
from gencritic.render.compose import premultiply
from gencritic.render.pathtrace import render_views_cycles
from gencritic.render.settings import RENDERER_VERSION, parse_render_options
from tests.test_render import FACE_COLOURS, coloured_sphere, focal, textured_cube

ROOT = Path(__file__).resolve().parents[1]


CYCLES_FLAT = {"renderer": "cycles", "spp": 4, "lighting": "flat", "cache": False}


def test_cube_faces_show_their_texture_colours_through_cycles(tmp_path: Path, blender: str) -> None:
    path = tmp_path / "cube.glb"
    textured_cube().export(path)
    res = 64
    render = render_asset(path, {**CYCLES_FLAT, "rig": "six", "normalize": "none", "resolution": res})
    assert render.meta["renderer"].startswith("Cycles")
    f = focal(res)
    half = f * 0.5 / 1.5
    lo, hi = math.ceil(res / 2 - half) + 2, math.floor(res / 2 + half) - 2
    expected = {0: (0, 0, 1), 1: (1, 0, 0), 2: (0, 0, -1), 3: (-1, 0, 0), 4: (0, 1, 0), 5: (0, -1, 0)}
    for index, normal in expected.items():
        rgb = np.asarray(render.views[index].image.rgb).astype(int)
        inside = rgb[lo:hi, lo:hi]
        # a convex diffuse surface under a uniform white environment of radiance 1 reflects its
        # albedo exactly: every path escapes, so there is no sampling noise, only sRGB rounding.
        # Exception: on the diagonal two triangles share, about one sample in four comes back
        # dark (Cycles' ray offsets at a shared edge): at most ~1 pixel per row of the face.
        off = np.abs(inside - FACE_COLOURS[normal]).max(axis=-1) > 2
        assert off.mean() < 0.03, (index, normal, off.mean())
        assert off.sum(axis=1).max() <= 2, (index, normal)
        alpha = render.views[index].image.alpha
        assert alpha[:, :lo - 4].max() == 0 and alpha[:, hi + 4:].max() == 0  # transparent film outside


def test_cycles_silhouette_matches_the_rasteriser_and_repeats_exactly(tmp_path: Path, blender: str) -> None:
    path = tmp_path / "sphere.ply"
    coloured_sphere().export(path)
    options = {"spp": 4, "resolution": 48, "cache": False}
    cycles = render_asset(path, {**options, "renderer": "cycles"}).premultiplied
    raster = render_asset(path, options).premultiplied
    covered_c, covered_r = cycles[..., 3] > 127, raster[..., 3] > 0
    iou = (covered_c & covered_r).sum() / (covered_c | covered_r).sum()
    assert iou > 0.95
    assert np.array_equal(render_asset(path, {**options, "renderer": "cycles"}).premultiplied, cycles)
    top = cycles[:, :20][covered_c[:, :20]]  # the sphere's upper half is red, lit: red dominates
    assert (top[:, 0].astype(int) > top[:, 2].astype(int) + 40).mean() > 0.9


def test_without_blender_cycles_is_one_line_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gencritic

    monkeypatch.setenv("GENCRITIC_BLENDER", str(tmp_path / "no-such-python"))
    with pytest.raises(InputError, match=r"GENCRITIC_BLENDER=.*pip install bpy"):
        parse_render_options({"renderer": "cycles"})
    trimesh.creation.box().export(tmp_path / "box.ply")
    with pytest.raises(InputError, match="--renderer cycles"):
        gencritic.score(tmp_path / "box.ply", prompt="a box", model="not-loaded", cache_dir=None, progress=False,
                        render={"renderer": "cycles"})
    with pytest.raises(InputError, match="renderer='raytrace'"):
        parse_render_options({"renderer": "raytrace"})
    with pytest.raises(InputError, match="spp=0"):
        parse_render_options({"spp": 0})


def test_rasterised_cache_keys_are_unchanged_by_the_cycles_options() -> None:
    settings = parse_render_options({})
    pixel = settings.pixel_settings()
    assert pixel["renderer"] == RENDERER_VERSION and "spp" not in pixel
    assert parse_render_options({"spp": 64}).key() == settings.key()  # spp means nothing to the rasteriser


def test_point_clouds_are_refused_by_cycles() -> None:
    cloud = MeshData([Primitive("points", np.zeros((4, 3), np.float32), np.ones((4, 4), np.float32))])
    with pytest.raises(ItemError, match="surfaces only"):
        render_views_cycles(cloud, np.eye(4), make_rig("toys4k8"), 32, 4, 0, True)


def test_premultiply_by_hand() -> None:
    straight = np.array([[[255, 128, 0, 255], [255, 128, 0, 128], [10, 20, 30, 0]]], np.uint8)
    expected = np.array([[[255, 128, 0, 255], [128, 64, 0, 128], [0, 0, 0, 0]]], np.uint8)
    assert np.array_equal(premultiply(straight), expected)
