"""Where an asset sits in front of the cameras: up-axis conversion and normalisation.

The render world is **Y-up, right-handed, front facing +Z** (glTF's convention). A Z-up asset
(Blender, most CAD/OBJ exports from Z-up tools) is rotated by ``up="z"``: (x, y, z) ->
(x, z, -y), so its +Z becomes +Y and its -Y front (Blender's "front" view looks along +Y)
faces +Z, which is exactly what Blender's glTF exporter does.

Normalisations (what fits in a 40° frame at radius 2, whose half-height there is
2·tan(20°) = 0.728):

* ``trellis`` (default, as TRELLIS renders Toys4k): bounding-box centre at the origin, longest
  side 1. The box fits in [-0.5, 0.5]³; its farthest corner is 0.866 from the centre, so
  elongated diagonal assets can touch the frame edge at some yaws, as in the paper's renders.
* ``sphere``: bounding-box centre at the origin, scaled so every vertex lies within
  ``sphere_radius`` (default 0.5) of it. Radius r subtends asin(r/2): 0.5 -> 14.5°, always in
  frame; 0.684 is the largest radius that never leaves a 40° frame at distance 2. (A radius-1
  "unit sphere" subtends ±30° and overflows the frame.)
* ``none``: the asset's own coordinates and scale; use with a rig whose radius suits them.
"""

from __future__ import annotations

import numpy as np

NORMALIZATIONS = ("trellis", "sphere", "none")
UP_AXES = ("y", "z")

_Z_UP_TO_Y_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def up_rotation(up: str) -> np.ndarray:
    """3x3 rotation from the asset's frame to the Y-up render world."""
    if up == "y":
        return np.eye(3)
    if up == "z":
        return _Z_UP_TO_Y_UP.copy()
    raise ValueError(f"up axis {up!r}: use y or z")


def normalization_transform(positions: np.ndarray, mode: str = "trellis", up: str = "y",
                            sphere_radius: float = 0.5) -> np.ndarray:
    """4x4 matrix taking file coordinates to the normalised Y-up render world.

    Pure: depends only on the vertex positions (all primitives together) and the settings.
    """
    if mode not in NORMALIZATIONS:
        raise ValueError(f"normalisation {mode!r}: use one of {', '.join(NORMALIZATIONS)}")
    rot = up_rotation(up)
    pts = np.asarray(positions, dtype=np.float64).reshape(-1, 3) @ rot.T
    matrix = np.eye(4)
    matrix[:3, :3] = rot
    if mode == "none":
        return matrix
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre = (lo + hi) / 2.0
    if mode == "trellis":
        extent = float((hi - lo).max())
        scale = 1.0 / extent
    else:
        radius = float(np.sqrt(((pts - centre) ** 2).sum(axis=1).max()))
        scale = sphere_radius / radius
    out = np.eye(4)
    out[:3, :3] = rot * scale
    out[:3, 3] = -centre * scale
    return out
