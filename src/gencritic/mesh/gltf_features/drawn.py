"""The loader's side of this package: material flags onto trimesh's primitives, lines as primitives.

Kept apart from the document rewriting so the loader imports only what it applies after trimesh.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gencritic.mesh.gltf_features.materials import material_flags
from gencritic.mesh.gltf_features.modes import LineSet

if TYPE_CHECKING:
    from gencritic.mesh.data import Primitive


def apply_material_flags(prim: Primitive, metadata: Any, doc: dict[str, Any]) -> None:
    """Set the primitive's alpha mode, cut-off and unlit flag from its tagged glTF material."""
    flags = material_flags(metadata, doc)
    if flags is None:
        return
    mode, cutoff, unlit, double_sided, wrap = flags
    prim.alpha_mode = mode  # type: ignore[assignment]
    prim.alpha_cutoff = cutoff
    prim.unlit = unlit
    prim.texture_wrap = wrap
    if mode == "BLEND" and double_sided:
        prim.orientation = 0  # both sides of a see-through surface show, even when it is closed


def line_primitives(lines: Sequence[LineSet]) -> list[Primitive]:
    """One ``lines`` primitive per line set (segments as index pairs)."""
    from gencritic.mesh.data import Primitive

    out = []
    for line in lines:
        if len(line.segments) == 0:
            continue
        used, segments = np.unique(line.segments.reshape(-1), return_inverse=True)  # unused vertices are not drawn
        out.append(Primitive("lines", line.positions[used].astype(np.float32),
                             np.ascontiguousarray(line.colors[used], np.float32),
                             np.ascontiguousarray(segments.reshape(-1), dtype=np.uint32), unlit=line.unlit,
                             facing_light=True))
    return out
