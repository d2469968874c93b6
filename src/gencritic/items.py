"""The typed records that flow through a run.

An :class:`Item` is what the user asked to judge (an image, a mesh, a folder of views, a
frame sequence) with its prompt, optional reference and the input columns carried through to
the results. Items know paths, not file formats or models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

ItemKind = Literal["image", "mesh", "views", "frames"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
MESH_EXTENSIONS = frozenset({".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".npz"})


@dataclass(frozen=True)
class Item:
    """One thing to score.

    ``item_id`` is stable across runs of the same input (it is what resume keys on);
    ``columns`` are the user's input columns, written back unchanged in the results.
    """

    item_id: str
    kind: ItemKind
    path: Path
    prompt: str | None = None
    reference: Path | None = None
    columns: dict[str, Any] = field(default_factory=dict)


def kind_for_path(path: Path) -> ItemKind:
    """Guess the item kind from a path: a mesh file, a folder of views, or an image."""
    if path.is_dir():
        return "views"
    if path.suffix.lower() in MESH_EXTENSIONS:
        return "mesh"
    return "image"
