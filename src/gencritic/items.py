"""The typed records that flow through a run.

An :class:`Item` is what the user asked to judge (an image, a mesh, a folder of views, a
frame sequence) with its prompt, optional reference and the input columns carried through to
the results. Items know paths, not file formats or models.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gencritic.io.urls import UrlPath

ItemKind = Literal["image", "mesh", "views", "frames"]

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"})
# .blend files are read through the user's Blender (converted to GLB, cached: mesh/blend.py)
MESH_EXTENSIONS = frozenset({".glb", ".gltf", ".obj", ".ply", ".stl", ".off", ".npz", ".blend"})
# 3D formats gencritic does not read: items of these kinds fail with how to convert them,
# instead of being mistaken for images
UNREAD_3D_EXTENSIONS = frozenset({".fbx", ".usd", ".usda", ".usdc", ".usdz", ".dae", ".3ds", ".abc",
                                  ".3mf", ".x3d", ".vrml", ".wrl", ".ma", ".mb", ".max", ".c4d", ".vox"})
# a kit: parts of one object drawn together (gencritic/mesh/kit.py); listed in manifests, not
# picked up from folders (a folder of parts would otherwise be scored twice)
KIT_SUFFIX = ".kit.json"
CONVERT_3D_HINT = ("convert it to .glb, e.g. open it in Blender and use File > Export > glTF 2.0 "
                   "(FBX also: `npx fbx2gltf`)")


def unread_3d_message(name: str, suffix: str) -> str:
    """Why a file of a 3D format gencritic does not read fails its row, and how to convert it."""
    return (f"{name}: gencritic does not read {suffix} files (it reads .glb .gltf .obj .ply "
            f".stl .off, .npz point clouds and, through Blender, .blend): {CONVERT_3D_HINT}")


@dataclass(frozen=True)
class Item:
    """One thing to score.

    ``item_id`` is stable across runs of the same input (it is what resume keys on);
    ``columns`` are the user's input columns, written back unchanged in the results.
    ``error`` is set when reading the input already showed the item cannot be scored (an empty
    image cell, a broken symlink in a folder): the item is still a row, failed with this reason,
    so one bad entry never costs the others.
    """

    item_id: str
    kind: ItemKind
    path: Path | UrlPath  # an address (s3://, gs://, az://, https://) is read where the item is scored
    prompt: str | None = None
    reference: Path | UrlPath | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def kind_for_name(path: Path | UrlPath) -> ItemKind:
    """The item kind a path's name suggests, without touching the disk (for entries that cannot
    be examined: a broken link named ``x.glb`` is a failed mesh row)."""
    return "mesh" if path.suffix.lower() in MESH_EXTENSIONS | UNREAD_3D_EXTENSIONS else "image"


def kind_for_path(path: Path | UrlPath) -> ItemKind:
    """Guess the item kind from a path: a mesh file, a folder of views, or an image.

    An address is judged by its name alone (a manifest of a million addresses must not cost a
    request each on the driver): a mesh or image suffix says which, no suffix means a folder."""
    if isinstance(path, UrlPath):
        suffix = path.suffix.lower()
        if path.name.lower().endswith(KIT_SUFFIX) or suffix in MESH_EXTENSIONS | UNREAD_3D_EXTENSIONS:
            return "mesh"
        return "image" if suffix else "views"
    if path.is_dir():
        return "views"
    if path.name.lower().endswith(KIT_SUFFIX) or path.suffix.lower() in MESH_EXTENSIONS | UNREAD_3D_EXTENSIONS:
        return "mesh"
    return "image"
