"""How much of a texture the UV layout uses, and how much of it is used twice.

Texel-centre sampling on a grid over the unit UV square: a texel is covered when its centre
lies inside a UV triangle (shared UV edges count once, see :mod:`.raster`). Coverage = covered
texels / all texels; overlap = texels covered by two or more triangles / covered texels.
Mirrored or stacked UV islands (deliberate in game assets to save texture space) show as
overlap; so do layout errors. UVs outside [0, 1] (tiling) are not wrapped: what lies outside
the square is not counted, and the share of such UV corners is reported separately.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gencritic.geometry.raster import covered_cells

UV_GRID = 1024  # texels per side of the unit square (at most the texture's own size)


@dataclass(frozen=True)
class UvUse:
    coverage: float
    overlap: float
    outside: float  # share of UV corners outside [0, 1]^2


def uv_use(uvs: np.ndarray, faces: np.ndarray, resolution: int = UV_GRID) -> UvUse:
    """Coverage and overlap of one UV layout (``uvs`` (N, 2), ``faces`` (F, 3))."""
    uv = np.asarray(uvs, dtype=np.float64)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    counts = np.zeros(resolution * resolution, dtype=np.int64)
    step = 1.0 / resolution
    for c in covered_cells(uv[f], np.zeros(2), step, (resolution, resolution)):
        counts += np.bincount(c.j * resolution + c.k, minlength=counts.size)
    covered = int(np.count_nonzero(counts))
    twice = int(np.count_nonzero(counts >= 2))
    corners = uv[f.reshape(-1)]
    outside = float(np.mean(np.any((corners < 0) | (corners > 1), axis=1))) if len(corners) else 0.0
    return UvUse(covered / counts.size, twice / covered if covered else 0.0, outside)
