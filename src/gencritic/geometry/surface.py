"""An asset as the renderer sees it, reduced to triangles in the normalised frame.

Why through the renderer's loader: a glTF scene graph, an OBJ split at UV seams, a .blend
converted by Blender — geometry numbers must describe exactly the object that the views show.
So the file is read by :func:`gencritic.mesh.parallel.load_asset_in_worker` (the loader that
rendering uses, in its worker processes) and moved by
:func:`gencritic.mesh.normalize.normalization_transform` computed over the same positions as
rendering (``trellis`` by default: bounding-box centre at the origin, longest side 1).

This is the only module of :mod:`gencritic.geometry` that imports the mesh loader, so that a
reorganisation of the loader touches one import here.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gencritic.errors import ItemError
from gencritic.mesh import MeshData, asset_sha256, normalization_transform


@dataclass(frozen=True)
class Surface:
    """Triangles of one asset in the normalised frame (float64), with where they came from."""

    vertices: np.ndarray  # (V, 3) float64, normalised frame
    faces: np.ndarray  # (F, 3) int64 indices into vertices; primitives concatenated in scene order
    sha256: str  # content key of the asset (its files), see gencritic.mesh.sidefiles.asset_sha256
    frame: str  # "trellis/up=y": the normalisation that made ``vertices``
    model_matrix: np.ndarray = field(repr=False)  # 4x4, file coordinates -> normalised frame
    source: str = ""
    points_ignored: int = 0  # vertices of point primitives (not a surface; left out)

    @property
    def num_faces(self) -> int:
        return int(self.faces.shape[0])

    def triangles(self) -> np.ndarray:
        """(F, 3, 3) corner positions."""
        return self.vertices[self.faces]


def surface_from_mesh(mesh: MeshData, sha256: str = "", normalize: str = "trellis", up: str = "y") -> Surface:
    """The triangle primitives of ``mesh`` concatenated and normalised like its render.

    The normalisation is computed over every primitive's positions (points included), exactly
    as :func:`gencritic.render.api` does, so both frames agree even for mixed assets."""
    triangles = [p for p in mesh.primitives if p.mode == "triangles" and p.indices is not None and p.num_faces]
    if not triangles:
        raise ItemError(f"{Path(mesh.source).name or 'asset'} has no triangles (a point cloud?): geometry "
                        f"metrics need a surface to sample")
    model = normalization_transform(mesh.all_positions(), normalize, up)
    offsets = np.cumsum([0] + [p.count for p in triangles])[:-1]
    positions = np.concatenate([p.positions for p in triangles]).astype(np.float64)
    faces = np.concatenate([p.indices.reshape(-1, 3).astype(np.int64) + off  # type: ignore[union-attr]
                            for p, off in zip(triangles, offsets, strict=True)])
    vertices = positions @ model[:3, :3].T + model[:3, 3]
    ignored = sum(p.count for p in mesh.primitives if p.mode == "points")
    return Surface(np.ascontiguousarray(vertices), np.ascontiguousarray(faces), sha256, f"{normalize}/up={up}",
                   model, mesh.source, ignored)


def load_mesh(path: Path) -> MeshData:
    """The asset as rendering loads it (worker processes, same checks and errors), except that
    missing textures and material libraries are accepted (``allow_untextured``): they change
    colours, never the shape, so they do not fail a geometry row."""
    from gencritic.mesh.parallel import load_asset_in_worker

    return load_asset_in_worker(Path(path), allow_untextured=True)


def missing_colour_files(path: Path) -> list[str]:
    """Texture images and material libraries the asset names that are not beside it."""
    from gencritic.mesh.sidefiles import missing_side_files

    try:
        return list(missing_side_files(Path(path)).colour)
    except (OSError, ValueError):
        return []


def load_surface(path: Path, normalize: str = "trellis", up: str = "y") -> Surface:
    """Load ``path`` (any format rendering reads) into its normalised surface.

    Kept per content (the last :data:`SURFACES_KEPT` assets): a reference compared with several
    generated assets, under one name or two, is read once. Raises
    :class:`~gencritic.errors.ItemError` for what fails a row (missing, corrupt, no triangles)."""
    path = Path(path)
    key = (asset_sha256(path), normalize, up)
    with _lock:
        hit = _kept.get(key)
        if hit is not None:
            _kept.move_to_end(key)
            return hit
    surface = surface_from_mesh(load_mesh(path), key[0], normalize, up)
    with _lock:
        _kept[key] = surface
        while len(_kept) > SURFACES_KEPT:
            _kept.popitem(last=False)
    return surface


SURFACES_KEPT = 16  # a 1M-face surface is ~50 MB; a reference seldom serves more pairs than this apart
_kept: OrderedDict[tuple[str, str, str], Surface] = OrderedDict()
_lock = threading.Lock()
