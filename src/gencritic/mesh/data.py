"""What a loaded asset is: flat, renderer-ready primitives, whatever file they came from.

Why one flat record: every visual kind an asset may carry (per-vertex colours, per-face
colours, UV textures, PBR base-colour factors) becomes the same per-vertex arrays (position,
normal, colour, uv), an index buffer and at most one texture per primitive. The renderer then
has one code path and no format-specific branches. Indexed (not triangle soups) because the
CPU rasteriser shades each vertex once per view: a soup triples that work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np


@dataclass
class Primitive:
    """One draw call: indexed triangles, line segments or a point set, with per-vertex attributes."""

    mode: Literal["triangles", "points", "lines"]
    positions: np.ndarray  # float32 (N, 3), world frame of the file
    colors: np.ndarray  # float32 (N, 4) in [0, 1], sRGB-encoded: vertex colour x material factor
    indices: np.ndarray | None = None  # uint32 (3F,) triangles, (2S,) line segments
    normals: np.ndarray | None = None  # float32 (N, 3) unit; None = shade flat (face normals)
    uvs: np.ndarray | None = None  # float32 (N, 2), image space (v=0 at the image's top row)
    texture: np.ndarray | None = None  # uint8 (H, W, 4), row 0 = image top
    # +1: closed surface(s) wound counter-clockwise seen from outside, -1: clockwise, 0: open,
    # inconsistent or mixed. Lets the renderer skip back faces, which a camera outside can never see.
    orientation: int = 0
    # glTF material (mesh/gltf_features/materials.py): OPAQUE ignores alpha, MASK cuts fragments whose
    # alpha is below alpha_cutoff, BLEND blends them; unlit shows the albedo without the rig's light
    alpha_mode: Literal["OPAQUE", "MASK", "BLEND"] = "OPAQUE"
    alpha_cutoff: float = 0.5
    unlit: bool = False
    # (u, v) texture wrap as GL and glTF number it: 10497 repeat, 33071 clamp to edge, 33648 mirrored repeat
    texture_wrap: tuple[int, int] = (10497, 10497)
    # lines and points of a glTF mesh: coloured as a surface facing the camera under the rig's light
    # (render/gl.py), so a white line is not lost on the white background; point clouds stay unlit
    facing_light: bool = False

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_faces(self) -> int:
        return 0 if self.indices is None or self.mode != "triangles" else int(self.indices.shape[0] // 3)


@dataclass
class MeshData:
    """Everything drawable in one asset file."""

    primitives: list[Primitive] = field(default_factory=list)
    source: str = ""

    @property
    def num_faces(self) -> int:
        return sum(p.num_faces for p in self.primitives)

    @property
    def num_points(self) -> int:
        return sum(p.count for p in self.primitives if p.mode == "points")

    def bounds(self) -> np.ndarray:
        """(2, 3) min/max corner over all primitives."""
        allpos = np.concatenate([p.positions for p in self.primitives], axis=0)
        return np.stack([allpos.min(axis=0), allpos.max(axis=0)])

    def all_positions(self) -> np.ndarray:
        return np.concatenate([p.positions for p in self.primitives], axis=0)
