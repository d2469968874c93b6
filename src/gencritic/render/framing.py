"""``margin``: scale the normalised asset so that it stays inside every view, with room to spare.

Why an option and not the default: the protocol's normalisation (longest bounding-box side 1,
TRELLIS') is what published numbers use, and at radius 2 with a 40° FoV a box-like asset's corners
reach past the frame: measured on a unit cube, every one of the 8 ``toys4k8`` views touches the
edge (docs/rendering.md, *Framing*). ``margin`` m keeps every vertex at least m of the half-frame
from the edge in every view of the rig: after the normalisation, the asset is scaled about the
origin by the largest s for which, for each camera and each vertex q (camera coordinates before
scaling, camera at distance d looking down -z, focal ``f = 1/tan(fov/2)``),
``f·s·|q_x| <= (1 - m)(d - s·q_z)`` and the same for y, i.e. ``s = min (1-m)·d / (f·|q| + (1-m)·q_z)``
over the constraints whose denominator is positive.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gencritic.render.cameras import Camera


def fit_scale(points: np.ndarray, cameras: Sequence[Camera], margin: float) -> float:
    """The largest scale about the origin that keeps ``points`` (world) inside every camera's
    frame shrunk by ``margin``."""
    k = 1.0 - float(margin)
    best = np.inf
    pts = np.asarray(points, dtype=np.float64)
    for cam in cameras:
        view = cam.view_matrix()
        q = pts @ view[:3, :3].T  # camera axes, before the eye's offset
        d = -float(view[2, 3])  # the origin's depth in front of the camera
        f = 1.0 / np.tan(np.radians(cam.fov_y_deg) / 2.0)
        for axis in (0, 1):
            denominator = f * np.abs(q[:, axis]) + k * q[:, 2]
            positive = denominator > 1e-12
            if positive.any():
                best = min(best, float((k * d / denominator[positive]).min()))
    return float(best) if np.isfinite(best) else 1.0


def with_margin(model: np.ndarray, positions: np.ndarray, cameras: Sequence[Camera], margin: float) -> np.ndarray:
    """``model`` followed by the scale :func:`fit_scale` gives the normalised positions."""
    world = np.asarray(positions, dtype=np.float64) @ model[:3, :3].T + model[:3, 3]
    scale = np.eye(4)
    scale[:3, :3] *= fit_scale(world, cameras, margin)
    return scale @ model
