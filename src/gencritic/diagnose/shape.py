"""Silhouette descriptors of a binary mask (pure numpy/scipy).

* ``bbox``: normalised (x0, y0, x1, y1) of the mask's bounding box;
* ``aspect``: bbox height / width (> 1 is a vertical plume, < 1 a flat spread);
* ``solidity``: area / convex hull area (1 for convex blobs, low for wispy or split shapes).
  The hull is taken over pixel *corners*, so a filled axis-aligned rectangle has solidity 1;
* ``mushroom_index``: widest row in the top 40 % of the bbox / median row width in the bottom
  half. A column of smoke is ~1; a mushroom cloud (wide cap on a thin stem) is well above 1.5;
* ``centring``: distance of the mask centroid from the image centre / half the image diagonal.
"""

from __future__ import annotations

import numpy as np


def bbox(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """Pixel bbox (x0, y0, x1, y1) with exclusive ends, or None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def solidity(mask: np.ndarray) -> float:
    """Mask area over the area of the convex hull of its pixel squares."""
    mask = np.asarray(mask, dtype=bool)
    area = int(mask.sum())
    if area == 0:
        return float("nan")
    # boundary pixels suffice for the hull: a pixel whose 4 neighbours are all set is interior
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    ys, xs = np.nonzero(mask & ~interior)
    corners = np.concatenate([np.stack([xs + dx, ys + dy], axis=1) for dx in (0, 1) for dy in (0, 1)]).astype(float)
    from scipy.spatial import ConvexHull, QhullError  # here: listing profiles imports this module

    try:
        hull_area = float(ConvexHull(corners).volume)  # in 2-D, "volume" is the area
    except QhullError:  # degenerate (a single line of pixels): its hull is the pixels themselves
        return 1.0
    return float(min(1.0, area / hull_area))


def row_widths(mask: np.ndarray) -> np.ndarray:
    """Horizontal extent (first to last set pixel) of every row of the mask's bbox."""
    box = bbox(mask)
    if box is None:
        return np.zeros(0)
    x0, y0, x1, y1 = box
    sub = mask[y0:y1, x0:x1]
    any_row = sub.any(axis=1)
    first = np.argmax(sub, axis=1)
    last = sub.shape[1] - 1 - np.argmax(sub[:, ::-1], axis=1)
    return np.where(any_row, last - first + 1, 0).astype(float)


def mushroom_index(mask: np.ndarray) -> float:
    """Cap width (max over the top 40 % of rows) / stem width (median of the bottom 50 %)."""
    widths = row_widths(mask)
    if widths.size < 3:
        return float("nan")
    n = widths.size
    cap = widths[: max(1, round(0.4 * n))].max()
    stem = float(np.median(widths[n // 2:]))
    return float(cap / stem) if stem > 0 else float("nan")


def describe(mask: np.ndarray) -> dict[str, float | list[float] | None]:
    """All descriptors at once (NaN/None for an empty mask)."""
    mask = np.asarray(mask, dtype=bool)
    h, w = mask.shape
    box = bbox(mask)
    if box is None:
        return {"coverage": 0.0, "bbox": None, "aspect": float("nan"), "solidity": float("nan"),
                "mushroom_index": float("nan"), "centring": float("nan")}
    x0, y0, x1, y1 = box
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean() + 0.5, xs.mean() + 0.5
    centring = float(np.hypot(cx - w / 2, cy - h / 2) / (0.5 * np.hypot(w, h)))
    return {
        "coverage": float(mask.mean()),
        "bbox": [x0 / w, y0 / h, x1 / w, y1 / h],
        "aspect": float((y1 - y0) / (x1 - x0)),
        "solidity": solidity(mask),
        "mushroom_index": mushroom_index(mask),
        "centring": centring,
    }
