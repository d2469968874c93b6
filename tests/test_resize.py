"""The margin-skipping resize against Pillow's own resize, which it must equal bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gencritic.io.resize import MARGIN_KEY, bicubic_resize, mark_uniform_margin
from gencritic.render.compose import composite_view
from tests.conftest import shared_data

BICUBIC = Image.Resampling.BICUBIC
SIZES = [((512, 512), (224, 224)), ((512, 512), (336, 336)), ((300, 217), (224, 162)), ((1024, 1024), (224, 224)),
         ((100, 90), (224, 201)), ((513, 511), (224, 223))]


def pillow(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.resize(size, resample=BICUBIC, reducing_gap=None))


@pytest.mark.parametrize(("size", "out"), SIZES)
def test_a_line_of_one_value_stays_that_value(size: tuple[int, int], out: tuple[int, int]) -> None:
    """The property the margin skip rests on, for every 8-bit value, along each axis alone."""
    values = np.arange(256, dtype=np.uint8)
    rows = np.repeat(values[:, None], size[0], axis=1)  # row v holds v: resample the width only
    assert np.array_equal(pillow(Image.fromarray(rows), (out[0], 256)), np.repeat(values[:, None], out[0], axis=1))
    cols = np.repeat(values[None, :], size[1], axis=0)  # column v holds v: resample the height only
    assert np.array_equal(pillow(Image.fromarray(cols), (256, out[1])), np.repeat(values[None, :], out[1], axis=0))


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(SIZES),
       st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)))
def test_marked_image_resizes_exactly_like_pillow(seed: int, sizes: tuple[tuple[int, int], tuple[int, int]],
                                                  colour: tuple[int, int, int]) -> None:
    (width, height), out = sizes
    rng = np.random.default_rng(seed)
    x0, x1 = sorted(rng.choice(width + 1, 2, replace=False))
    y0, y1 = sorted(rng.choice(height + 1, 2, replace=False))
    pixels = np.empty((height, width, 3), np.uint8)
    pixels[:] = colour
    pixels[y0:y1, x0:x1] = rng.integers(0, 256, (y1 - y0, x1 - x0, 3))
    image = Image.fromarray(pixels, "RGB")
    mark_uniform_margin(image, (x0, y0, x1, y1), colour)
    assert np.array_equal(bicubic_resize(image, out), pillow(image, out))


def test_unmarked_or_converted_images_take_pillows_path() -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGB")
    assert np.array_equal(bicubic_resize(image, (32, 32)), pillow(image, (32, 32)))
    # a wrong mark on a non-RGB image is never trusted (convert() copies info)
    mark_uniform_margin(image, (0, 0, 1, 1), (0, 0, 0))
    grey = image.convert("L")
    assert MARGIN_KEY in grey.info
    assert np.array_equal(bicubic_resize(grey, (32, 32)), pillow(grey, (32, 32)))


def test_real_renders_resize_exactly_like_pillow() -> None:
    """Every view of every real mesh: the marked box is right and the resize is Pillow's."""
    from gencritic.render.api import render_asset

    folder = shared_data("meshes-small")
    checked = 0
    for path in sorted(folder.iterdir())[:10]:
        if path.suffix.lower() not in (".glb", ".obj", ".ply", ".stl"):
            continue
        render = render_asset(path, {"cache": False, "allow_untextured": True})  # capsule.obj lacks its .mtl
        for premultiplied in render.premultiplied:
            image, _, _ = composite_view(premultiplied, (255, 255, 255))
            if image is None:
                continue
            (x0, y0, x1, y1), colour = image.info[MARGIN_KEY]
            pixels = np.asarray(image).copy()
            pixels[y0:y1, x0:x1] = colour
            assert (pixels == colour).all()  # outside the box: all background
            assert np.array_equal(bicubic_resize(image, (224, 224)), pillow(image, (224, 224)))
            checked += 1
    assert checked >= 16
