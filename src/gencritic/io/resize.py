"""Pillow's bicubic resize, bit for bit, without resampling margins of one colour.

Why: a rendered view is mostly background (the object fills about a third of a 512² view in
the Toys4k rig), and resizing it for CLIP is the largest piece of per-view CPU work after the
render itself. Pillow resamples every pixel, although a line of one colour can only come out
as that colour.

Why the output is identical to ``image.resize(size, BICUBIC, reducing_gap=None)``:

* Pillow resamples in two separable passes, horizontal then vertical, with an 8-bit
  intermediate; a one-axis resize runs exactly one of them. So the two passes can be run
  as two calls, on any subset of rows (first pass) or columns (second pass): each output line
  depends only on its own input line and on the image size along the resampled axis, which
  is unchanged.
* A line of one value ``v`` comes out as ``v``: Pillow's fixed-point coefficients of an output
  pixel sum to ``2**22 + e`` with ``|e| <= ksize / 2`` (each is rounded on its own), so the
  result ``(v·(2**22 + e) + 2**21) >> 22`` is ``v`` while ``|v·e| < 2**21``, i.e. for any
  filter shorter than 16,000 taps. Tested for every value and against Pillow on real renders.

The margin is known where the image is made (:func:`gencritic.render.compose.composite_view`
knows the object's pixels from coverage), not searched for here: finding it would cost about
what it saves. It travels in the image's ``info`` under :data:`MARGIN_KEY`.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

MARGIN_KEY = "gencritic.uniform_margin"
"""``image.info[MARGIN_KEY] = ((x0, y0, x1, y1), (r, g, b))``: every pixel outside the box is that colour."""

_WORTH_IT = 0.85  # below this share of the image's area the two-call path is faster (measured on renders)


def mark_uniform_margin(image: Image.Image, box: tuple[int, int, int, int], colour: tuple[int, int, int]) -> None:
    """Record that every pixel of ``image`` outside ``box`` is ``colour`` (the caller guarantees it)."""
    image.info[MARGIN_KEY] = (tuple(int(v) for v in box), tuple(int(c) for c in colour))


def bicubic_resize(image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """``np.asarray(image.resize(size, BICUBIC, reducing_gap=None))``, faster for marked images."""
    margin = image.info.get(MARGIN_KEY) if image.mode == "RGB" else None
    if margin is not None:
        box, colour = margin
        x0, y0, x1, y1 = box
        width, height = image.size
        if 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and (x1 - x0) * (y1 - y0) < _WORTH_IT * width * height:
            return np.asarray(_resize_inside_margin(image, size, box, colour))
    return np.asarray(image.resize(size, resample=Image.Resampling.BICUBIC, reducing_gap=None))


def _columns_reached(x0: int, x1: int, width: int, out_width: int) -> tuple[int, int]:
    """Output columns whose bicubic support may reach input columns [x0, x1), with slack.

    Pillow's output column ``i`` reads inputs ``center ± support`` (rounded), where ``center =
    (i + 0.5) · scale`` and ``support = 2 · max(scale, 1)``. Wider than needed is harmless (the
    extra columns are resampled like any other); narrower would not be, hence the slack.
    """
    scale = width / out_width
    support = 2.0 * max(scale, 1.0)
    first = math.floor((x0 - support - 2.0) / scale - 0.5) - 1
    last = math.ceil((x1 + support + 2.0) / scale - 0.5) + 1
    return max(0, first), min(out_width, last + 1)


def _resize_inside_margin(image: Image.Image, size: tuple[int, int], box: tuple[int, int, int, int],
                          colour: tuple[int, int, int]) -> Image.Image:
    width, height = image.size
    out_w, out_h = size
    x0, y0, x1, y1 = box
    c0, c1 = _columns_reached(x0, x1, width, out_w)
    bicubic = Image.Resampling.BICUBIC
    # first pass (horizontal), on the rows that hold the object only; other rows stay the margin colour
    band = image.crop((0, y0, width, y1)).resize((out_w, y1 - y0), resample=bicubic, reducing_gap=None)
    between = Image.new("RGB", (c1 - c0, height), colour)
    between.paste(band.crop((c0, 0, c1, y1 - y0)), (0, y0))
    # second pass (vertical), on the columns the object can reach only; other columns stay the margin colour
    out = Image.new("RGB", size, colour)
    out.paste(between.resize((c1 - c0, out_h), resample=bicubic, reducing_gap=None), (c0, 0))
    return out
