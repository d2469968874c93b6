"""Framing: what the protocol's normalisation shows of a box, and the ``margin`` alternative."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import InputError
from gencritic.render.api import render_asset
from gencritic.render.settings import RenderSettings, parse_render_options

RES = 128


@pytest.fixture(scope="module")
def cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("framing") / "cube.glb"
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([200, 60, 40, 255], (len(box.vertices), 1)).astype(np.uint8)
    path.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene([box])))
    return path


def _alpha(path: Path, **options: object) -> np.ndarray:
    render = render_asset(path, {"cache": False, "resolution": RES, **options})
    return render.premultiplied[..., 3] > 0


def test_the_protocol_framing_lets_a_cube_touch_the_edge_in_every_toys4k8_view(cube: Path) -> None:
    """docs/rendering.md, *Framing*: the corners of a unit cube reach past the frame at every yaw."""
    for view in _alpha(cube):
        assert view[0].any() or view[-1].any() or view[:, 0].any() or view[:, -1].any()


def test_margin_keeps_every_view_inside_the_shrunk_frame(cube: Path) -> None:
    band = int(np.ceil(0.1 * RES / 2))  # margin 0.1 of the half-frame
    views = _alpha(cube, margin=0.1)
    for view in views:
        assert not view[:band].any() and not view[-band:].any()
        assert not view[:, :band].any() and not view[:, -band:].any()
    # and it is the largest such scale: some view reaches the shrunk frame to within two pixels
    reach = [max(np.nonzero(v.any(axis=1))[0].max(), RES - 1 - np.nonzero(v.any(axis=1))[0].min(),
                 np.nonzero(v.any(axis=0))[0].max(), RES - 1 - np.nonzero(v.any(axis=0))[0].min()) for v in views]
    assert max(reach) >= RES - 1 - band - 2


def test_margin_is_validated_and_leaves_default_cache_keys_alone() -> None:
    assert parse_render_options({}).key() == RenderSettings().key()
    assert "margin" not in RenderSettings().pixel_settings()
    assert parse_render_options({"margin": 0.05}).key() != RenderSettings().key()
    with pytest.raises(InputError, match=r"margin=0.7.*0..0.5"):
        parse_render_options({"margin": 0.7})
