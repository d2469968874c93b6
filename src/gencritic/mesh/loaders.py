"""Read a 3D asset file into :class:`~gencritic.mesh.data.MeshData`, or fail the item with a reason.

One entry point, :func:`load_asset`: meshes through trimesh (glTF files checked and rewritten
first by :mod:`gencritic.mesh.gltf_prepare`), ``.npz`` point clouds, kits of parts
(:mod:`gencritic.mesh.kit`) and ``.blend`` files through their cached GLB conversion
(:mod:`gencritic.mesh.blend`). Side files are checked before loading
(:mod:`gencritic.mesh.sidefiles`), textures after (:mod:`gencritic.mesh.textures`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from gencritic.errors import ItemError
from gencritic.items import UNREAD_3D_EXTENSIONS, unread_3d_message
from gencritic.mesh.colors import TextureUnreadable
from gencritic.mesh.data import MeshData, Primitive
from gencritic.mesh.kit import is_kit, load_kit
from gencritic.mesh.primitives import points_primitive, triangles_primitive, validate_mesh
from gencritic.mesh.sidefiles import check_side_files, side_file_resolver, written_by_blender
from gencritic.mesh.textures import check_obj_textures, declared_texture, texture_name

POINT_CLOUD_SUFFIXES = frozenset({".npz"})


def _load_npz(path: Path) -> MeshData:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            key = next((k for k in ("points", "xyz", "positions", "vertices") if k in keys), None)
            if key is None:
                raise ItemError(f"point cloud {path} has no 'points' array (found: {', '.join(sorted(keys)) or 'none'})")
            points = np.asarray(data[key])
            ckey = next((k for k in ("colors", "rgb", "colours") if k in keys), None)
            colors = np.asarray(data[ckey]) if ckey else None
    except ItemError:
        raise
    except Exception as exc:
        raise ItemError(f"cannot read point cloud {path}: {exc}") from None
    if points.ndim != 2 or points.shape[1] != 3:
        raise ItemError(f"point cloud {path}: 'points' must be an (N, 3) array, got shape {points.shape}")
    prim = points_primitive(points, colors)
    return MeshData([prim] if prim else [], str(path))


def load_asset(path: Path, allow_untextured: bool = False) -> MeshData:
    """Load a mesh, a point cloud or a kit of parts (:mod:`gencritic.mesh.kit`); corrupt, empty
    or degenerate files raise :class:`ItemError`, and so do missing textures and material
    libraries unless ``allow_untextured`` (then :func:`check_side_files` names them as warnings)."""
    path = Path(path)
    if is_kit(path):
        data = load_kit(path, lambda part: load_asset(part, allow_untextured))
        validate_mesh(data, path)
        return data
    if not path.exists():
        raise ItemError(f"mesh file not found: {path}")
    if path.is_dir():
        raise ItemError(f"expected a mesh file but found a folder: {path}")
    if path.stat().st_size == 0:
        raise ItemError(f"mesh file is empty (0 bytes): {path}")
    if path.suffix.lower() in UNREAD_3D_EXTENSIONS:
        raise ItemError(unread_3d_message(path.name, path.suffix))
    if path.suffix.lower() in POINT_CLOUD_SUFFIXES:
        data = _load_npz(path)
    elif path.suffix.lower() == ".blend":
        data = _load_blend(path)
    else:
        untextured = check_side_files(path, allow_untextured)
        data = _load_with_trimesh(path)
        if not untextured and not any(p.texture is not None for p in data.primitives):
            texture = declared_texture(path)
            if texture is not None:  # present (checked above) yet not applied: undecodable, or no uvs
                raise ItemError(f"mesh {path.name}: its texture {texture} could not be applied (an image Pillow "
                                f"cannot open, or no texture coordinates): the asset would be drawn untextured; "
                                f"convert the texture to PNG and export again")
    validate_mesh(data, path)
    return data


def _load_blend(path: Path) -> MeshData:
    """A .blend through its GLB conversion (cached); errors name the .blend, not the cache file."""
    from gencritic.mesh.blend import converted_blend

    glb = converted_blend(path).glb
    try:
        data = _load_with_trimesh(glb)
    except ItemError as exc:
        raise ItemError(f"{path.name} (converted by Blender): {exc}") from None
    if not any(p.texture is not None for p in data.primitives) and declared_texture(glb) is not None:
        raise ItemError(f"{path.name}: its texture could not be applied after Blender's export (an image "
                        f"Pillow cannot open, or no texture coordinates); pack a PNG texture into the .blend")
    return MeshData(data.primitives, str(path))


def _load_with_trimesh(path: Path) -> MeshData:
    import io

    import trimesh

    rewritten = None
    float_factors: list[tuple[str | None, np.ndarray]] = []
    resolver = side_file_resolver(path)
    linear_colours = path.suffix.lower() in (".glb", ".gltf") or written_by_blender(path)
    linear_vertex_colours = linear_colours
    prepared = None
    if path.suffix.lower() in (".glb", ".gltf"):
        from gencritic.mesh.gltf_prepare import base_colour_factors, prepare_gltf

        # fails what would be drawn wrongly; dequantizes what trimesh misreads; applies mesh/gltf_features
        prepared = prepare_gltf(path)
        rewritten, float_factors = prepared.data, base_colour_factors(prepared.document)
        linear_vertex_colours = not prepared.vertex_colours_srgb
    try:
        if rewritten is None:
            scene: Any = trimesh.load(str(path), force="scene", process=False, resolver=resolver)
        else:  # relative buffer and image URIs still resolve beside the original file
            scene = trimesh.load(io.BytesIO(rewritten), file_type="glb", force="scene", process=False,
                                 resolver=resolver)
    except Exception as exc:  # trimesh raises many kinds on corrupt input
        reason = " ".join(str(exc).split())[:200] or type(exc).__name__
        raise ItemError(f"cannot read mesh {path.name}: {reason}") from None
    if path.suffix.lower() == ".obj":
        check_obj_textures(scene, path)
    prims: list[Primitive] = []
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry.get(geom_name)
        if geom is None:
            continue
        matrix = np.asarray(transform, dtype=np.float64)
        if isinstance(geom, trimesh.Trimesh):
            try:
                prim = triangles_primitive(geom, matrix, linear_colours, float_factors, linear_vertex_colours)
                if prim is not None and prepared is not None:
                    from gencritic.mesh.gltf_features.drawn import apply_material_flags

                    apply_material_flags(prim, geom.metadata, prepared.document)
            except TextureUnreadable as exc:
                texture = texture_name(path, exc.material)
                raise ItemError(f"mesh {path.name}: its texture {texture} (material {exc.material or 'unnamed'}) "
                                f"cannot be decoded ({exc.reason}): re-save the image as PNG and export the asset "
                                f"again") from None
        elif isinstance(geom, trimesh.PointCloud):
            prim = points_primitive(geom.vertices, getattr(geom, "colors", None), matrix, linear_vertex_colours)
            if prim is not None and prepared is not None:
                prim.facing_light = True  # a glTF mesh's points, not a point cloud: lit as lines are
        else:
            continue  # paths/lines are not surfaces; they are not drawn
        if prim is not None:
            prims.append(prim)
    if prepared is not None and prepared.lines:
        from gencritic.mesh.gltf_features.drawn import line_primitives

        prims.extend(line_primitives(prepared.lines))
    return MeshData(prims, str(path))
