"""What glTF files mean beyond what trimesh reads: applied to the document before trimesh sees it.

:mod:`gencritic.mesh.gltf_prepare` hands trimesh a document it reads right; this package makes
that document mean what the file means (docs/rendering.md, *glTF features*), each feature in a
module of its own, in this order:

1. ``EXT_``/``KHR_meshopt_compression`` buffer views decoded (:mod:`.meshopt`);
2. KTX2/Basis base-colour textures transcoded to PNG (:mod:`.basisu`);
3. ``EXT_mesh_gpu_instancing`` expanded into nodes (:mod:`.instancing`);
4. line primitives taken out, to be drawn as segments (:mod:`.modes`); strips and fans
   triangulated;
5. morph targets' default weights applied (:mod:`.morph`);
6. skinned nodes posed by their joints (:mod:`.skin`);
7. base-colour ``KHR_texture_transform`` baked into texture coordinates (:mod:`.texture_transform`);
8. primitives with masked, blended or unlit materials tagged (:mod:`.materials`).

A file that needs none of it is not touched (:func:`needs_features` reads only the JSON), so
plain assets load exactly as before and as fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import ItemError
from gencritic.mesh.gltf_features import (
    basisu,
    instancing,
    materials,
    meshopt,
    modes,
    morph,
    skin,
    texture_transform,
)
from gencritic.mesh.gltf_features.edit import GltfEdit, mesh_primitives
from gencritic.mesh.gltf_features.modes import LineSet


@dataclass
class Features:
    """The document trimesh should read, and what is drawn beside it."""

    document: dict[str, Any]
    lines: list[LineSet] = field(default_factory=list)


def _uses_instancing(doc: dict[str, Any]) -> bool:
    return any(instancing.EXTENSION in (n.get("extensions") or {}) for n in doc.get("nodes") or [])


def needs_features(doc: dict[str, Any]) -> bool:
    """Whether the document uses anything this package applies (cheap: the JSON only)."""
    return bool(meshopt.uses_meshopt(doc) or basisu.needs_transcoding(doc) or _uses_instancing(doc)
                or any(int(p.get("mode", modes.TRIANGLES)) not in (modes.TRIANGLES, modes.POINTS)
                       for _, _, p in mesh_primitives(doc))
                or morph.has_morph_weights(doc) or skin.skinned_nodes(doc)
                or texture_transform.has_base_colour_transform(doc) or materials.needs_tags(doc))


def apply_features(doc: dict[str, Any], binary: bytes | None, path: Path) -> Features:
    """The document rewritten so trimesh draws what it means; :class:`ItemError` when it cannot be."""
    edit = GltfEdit(doc, binary, path.parent, path.name)
    try:
        meshopt.decode_meshopt(edit)
        basisu.transcode_basisu(edit)
        instancing.expand_instances(edit)
        lines = modes.take_lines(edit)
        modes.triangulate_strips_and_fans(edit)
        morph.bake_morph_targets(edit)
        skin.pose_skins(edit)
        texture_transform.apply_texture_transforms(edit)
        if materials.needs_tags(edit.doc):
            materials.tag_primitives(edit)
    except ItemError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, AttributeError) as exc:
        raise ItemError(f"cannot read mesh {path.name}: malformed glTF ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:160]})") from None
    return Features(edit.finish(), lines)


# bumped whenever what this package draws changes for a file, so its cached renders and embeddings go stale
FEATURES_VERSION = b"gltf-features-1"


def features_salt(path: Path) -> bytes:
    """What :func:`gencritic.mesh.sidefiles.asset_sha256` adds for a glTF file this package draws (or
    whose points it now lights): ``FEATURES_VERSION``; nothing for any other file.

    Why in the asset's hash and not the renderer version: such files were drawn otherwise before
    (unmorphed, unskinned, opaque, ...) and their cached renders and embeddings must not be served,
    while every other asset's cache keys, which tests pin, stay as they were."""
    from gencritic.mesh.gltf_accessors import read_document

    try:
        doc, _ = read_document(path)
    except (OSError, ValueError, UnicodeDecodeError, ItemError):
        return b""  # the loader reports it
    if not isinstance(doc, dict):
        return b""
    try:
        points = any(int(p.get("mode", modes.TRIANGLES)) == modes.POINTS for _, _, p in mesh_primitives(doc))
        return FEATURES_VERSION if points or needs_features(doc) else b""
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return b""
