"""Read a 3D asset file into flat arrays a rasteriser can draw, or fail the item with a reason.

Why one flat record: every visual kind an asset may carry (per-vertex colours, per-face
colours, UV textures, PBR base-colour factors) becomes the same per-vertex arrays (position,
normal, colour, uv), an index buffer and at most one texture per primitive. The renderer then
has one code path and no format-specific branches. Indexed (not triangle soups) because the
CPU rasteriser shades each vertex once per view: a soup triples that work.

Scene-graph transforms (glTF nodes, instancing) are applied here, so a primitive's positions
are in the file's world frame. The file's up axis is NOT changed here: that is an explicit
render setting (``up``), see :mod:`gencritic.mesh.normalize`.

Normals: those stored in the file are used; a file without normals is shaded flat (the
renderer takes face normals from screen-space derivatives, so no vertex is duplicated). We do
not invent smooth normals, which would round off hard edges a generator made.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from gencritic.errors import ItemError
from gencritic.items import CONVERT_3D_HINT, UNREAD_3D_EXTENSIONS
from gencritic.mesh.kit import is_kit, load_kit, read_kit

log = logging.getLogger("gencritic")

POINT_CLOUD_SUFFIXES = frozenset({".npz"})


@dataclass
class Primitive:
    """One draw call: indexed triangles or a point set, with per-vertex attributes."""

    mode: Literal["triangles", "points"]
    positions: np.ndarray  # float32 (N, 3), world frame of the file
    colors: np.ndarray  # float32 (N, 4) in [0, 1], sRGB-encoded: vertex colour x material factor
    indices: np.ndarray | None = None  # uint32 (3F,), triangles only
    normals: np.ndarray | None = None  # float32 (N, 3) unit; None = shade flat (face normals)
    uvs: np.ndarray | None = None  # float32 (N, 2), image space (v=0 at the image's top row)
    texture: np.ndarray | None = None  # uint8 (H, W, 4), row 0 = image top
    # +1: closed surface(s) wound counter-clockwise seen from outside, -1: clockwise, 0: open,
    # inconsistent or mixed. Lets the renderer skip back faces, which a camera outside can never see.
    orientation: int = 0

    @property
    def count(self) -> int:
        return int(self.positions.shape[0])

    @property
    def num_faces(self) -> int:
        return 0 if self.indices is None else int(self.indices.shape[0] // 3)


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


# ---------------------------------------------------------------------------------------------
# which files make up an asset (for content hashing)

_MTL_MAP = re.compile(r"^\s*(?:map_\w+|bump|disp|decal|norm)\s+(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


_OBJ_MTLLIB_BYTES = re.compile(rb"^[ \t]*mtllib[ \t]+(.+?)[ \t\r]*$", re.MULTILINE)


_OBJ_USEMTL_BYTES = re.compile(rb"^[ \t]*usemtl[ \t]+(.+?)[ \t\r]*$", re.MULTILINE)


def obj_material_libraries(path: Path) -> list[str]:
    """The ``mtllib`` names of an OBJ, read once per file version (hashing, the side-file check
    and the texture check all ask; a large OBJ is tens of megabytes of text)."""
    st = path.stat()
    return list(_obj_material_statements(str(path), st.st_mtime_ns, st.st_size)[0])


def obj_used_materials(path: Path) -> list[str]:
    """The material names an OBJ's faces select (``usemtl``), in first-use order."""
    st = path.stat()
    return list(_obj_material_statements(str(path), st.st_mtime_ns, st.st_size)[1])


@functools.lru_cache(maxsize=64)
def _obj_material_statements(path: str, _mtime_ns: int, _size: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(``mtllib`` names, distinct ``usemtl`` names) of one file version, in one read."""
    data = Path(path).read_bytes()
    libs = tuple(m.decode("utf-8", errors="replace") for m in _OBJ_MTLLIB_BYTES.findall(data))
    used = tuple(dict.fromkeys(m.decode("utf-8", errors="replace") for m in _OBJ_USEMTL_BYTES.findall(data)))
    return libs, used


_PLY_TEXTURE = re.compile(rb"^comment\s+TextureFile\s+(.+?)[ \t\r]*$", re.MULTILINE | re.IGNORECASE)


def ply_texture_name(path: Path) -> str | None:
    """The ``comment TextureFile NAME`` of a PLY header (Meshlab's way to attach a texture)."""
    with path.open("rb") as f:
        head = f.read(65536)
    head = head.split(b"end_header", 1)[0]
    match = _PLY_TEXTURE.search(head)
    return match.group(1).decode("utf-8", errors="replace") if match else None


_MTL_BLOCK = re.compile(r"^\s*newmtl\s+(.+?)\s*$", re.MULTILINE)
_MTL_DIFFUSE_MAP = re.compile(r"^\s*map_Kd\s+(.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_MTL_OPTION_ARGS = {"-blendu": 1, "-blendv": 1, "-bm": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                    "-mm": 2, "-o": 3, "-s": 3, "-t": 3, "-texres": 1, "-type": 1}


def _map_file_candidates(spec: str) -> list[str]:
    """File names a ``map_Kd`` value may mean: after its options (``-s 1 1 1 tex.png``), the
    rest as one name (names may hold spaces), and the last token alone."""
    tokens = spec.split()
    i = 0
    while i < len(tokens) and tokens[i].lower() in _MTL_OPTION_ARGS:
        i += 1 + _MTL_OPTION_ARGS[tokens[i].lower()]
    rest = " ".join(tokens[i:])
    return list(dict.fromkeys(c for c in (rest, tokens[-1] if tokens else "") if c))


def _mtl_map_file(folder: Path, spec: str) -> Path | None:
    """The existing file a texture statement means, or None."""
    for name in _map_file_candidates(spec):
        candidate = folder / name.replace("\\", "/")
        if candidate.is_file():
            return candidate
    return None


def mtl_material_names(mtl: Path) -> set[str]:
    """The materials a material library defines (``newmtl``)."""
    return set(mtl_material_blocks(mtl))


def mtl_material_blocks(mtl: Path) -> dict[str, str]:
    """Material name -> the statements of its ``newmtl`` block, in one material library."""
    text = mtl.read_text(errors="replace")
    starts = list(_MTL_BLOCK.finditer(text))
    return {match.group(1): text[match.end():starts[i + 1].start() if i + 1 < len(starts) else len(text)]
            for i, match in enumerate(starts)}


def _mtl_textured_materials(mtl: Path) -> dict[str, str]:
    """Material name -> its ``map_Kd`` statement, in one material library."""
    out: dict[str, str] = {}
    for name, block in mtl_material_blocks(mtl).items():
        maps = _MTL_DIFFUSE_MAP.findall(block)
        if maps:
            out[name] = maps[0]
    return out


def asset_files(path: Path) -> list[Path]:
    """The mesh file and the side files it references (MTL, textures, a PLY's TextureFile, glTF
    buffers) that exist.

    Why: an OBJ's texture lives in another file; a render cache keyed only on the OBJ's bytes
    would serve a stale picture after the texture changed.
    """
    files = [path]
    suffix = path.suffix.lower()
    try:
        if is_kit(path):  # its parts and theirs
            for part in read_kit(path):
                files.extend(asset_files(part))
        elif suffix == ".blend":  # its textures and libraries are known once Blender has read it
            from gencritic.blender import BlenderMissing
            from gencritic.mesh.blend import cached_conversion

            try:
                converted = cached_conversion(path)
            except BlenderMissing:
                converted = None
            files.extend(converted.externals if converted else [])
        elif suffix == ".obj":
            for lib in obj_material_libraries(path):
                mtl = path.parent / lib
                if mtl.is_file():
                    files.append(mtl)
                    for spec in _MTL_MAP.findall(mtl.read_text(errors="replace")):
                        found = _mtl_map_file(mtl.parent, spec)
                        if found is not None:
                            files.append(found)
        elif suffix == ".ply":
            texture = ply_texture_name(path)
            if texture and (path.parent / texture).is_file():
                files.append(path.parent / texture)
        elif suffix == ".gltf":
            doc = json.loads(path.read_text(errors="replace"))
            for entry in [*doc.get("buffers", []), *doc.get("images", [])]:
                uri = entry.get("uri", "")
                if uri and not uri.startswith("data:"):
                    candidate = path.parent / uri
                    if candidate.is_file():
                        files.append(candidate)
    except (OSError, ValueError, ItemError):
        pass  # the loader reports the real problem with this file
    return list(dict.fromkeys(files))


_warned_missing_mtl: set[str] = set()
# mesh-loader worker processes leave this warning to the parent, which checks every asset's side
# files (render.api.render_asset) before a worker loads it: otherwise each process printed it once more
warn_in_this_process = True

UNTEXTURED_OPTION = "allow_untextured=true (--allow-untextured)"


def note_missing_material_library(path: Path, lib: str) -> None:
    """Log, once per file, that an OBJ names a material library that is not beside it although
    none of its faces uses a material (an exporter's default line for a geometry-only file): the
    asset looks exactly as it would with the library, so this is a note, not a row warning."""
    mtl = str(path.parent / lib)
    if not warn_in_this_process or mtl in _warned_missing_mtl:
        return
    _warned_missing_mtl.add(mtl)
    log.warning("%s refers to material library %s, which is not beside it: drawn untextured, in the default "
                "colour", path.name, lib)


def _missing_material_libraries(path: Path) -> list[str]:
    """The OBJ's absent ``mtllib`` files, described, when its faces use materials that no present
    library defines (without them those faces are drawn in the default colour); [] otherwise.

    Why the distinction: exporters write an ``mtllib`` line for geometry-only files too, and an OBJ
    whose faces select no material (no ``usemtl``) is drawn the same with or without its library
    (trimesh applies no material then), so failing it would refuse a correct render."""
    libs = obj_material_libraries(path)
    absent = [lib for lib in libs if not (path.parent / lib).is_file()]
    if not absent:
        return []
    defined: set[str] = set()
    for lib in libs:
        if lib not in absent:
            defined |= mtl_material_names(path.parent / lib)
    undefined = [m for m in obj_used_materials(path) if m not in defined]
    if not undefined:
        for lib in absent:
            note_missing_material_library(path, lib)
        return []
    shown = ", ".join(undefined[:3]) + (f" and {len(undefined) - 3} more" if len(undefined) > 3 else "")
    return [f"material library {lib} (mtllib; its faces use material{'s' if len(undefined) > 1 else ''} {shown})"
            for lib in absent]


@dataclass(frozen=True)
class MissingFiles:
    """Side files an asset names that are not there, by what is lost without them.

    ``colour``: what its colours come from (textures, material libraries): without them it is
    drawn in plain material or default colours, which is accepted only when asked for.
    ``geometry``: what its shape comes from (a .gltf's buffers): it cannot be drawn at all."""

    colour: tuple[str, ...] = ()
    geometry: tuple[str, ...] = ()


def missing_side_files(path: Path) -> MissingFiles:
    """Files the asset's colours or shape come from that are not there: an OBJ's material
    libraries (when its faces use their materials) and their diffuse textures (``map_Kd``), a
    PLY's ``TextureFile``, a .gltf's buffers and base-colour images.

    Why: trimesh draws an OBJ whose texture or material library is missing in a plain colour,
    usually white or grey, without a word; a pipeline that copied the .obj without its side files
    would score plain renders. Bump and specular maps are not checked: the renderer does not use them."""
    colour: list[str] = []
    geometry: list[str] = []
    suffix = path.suffix.lower()
    try:
        if suffix == ".obj":
            colour.extend(_missing_material_libraries(path))
            for lib in obj_material_libraries(path):
                mtl = path.parent / lib
                if not mtl.is_file():
                    continue
                for spec in _mtl_textured_materials(mtl).values():
                    if _mtl_map_file(mtl.parent, spec) is None:
                        colour.append(f"texture {_map_file_candidates(spec)[0]} (map_Kd in {mtl.name})")
        elif suffix == ".ply":
            texture = ply_texture_name(path)
            if texture and not (path.parent / texture).is_file():
                colour.append(f"texture {texture} (TextureFile in its header)")
        elif suffix == ".gltf":
            from urllib.parse import unquote

            from gencritic.mesh.gltf_prepare import base_colour_images

            doc = json.loads(path.read_text(errors="replace"))
            used_images = set(base_colour_images(doc))
            for buffer in doc.get("buffers") or []:
                uri = buffer.get("uri", "")
                if uri and not uri.startswith("data:") and not (path.parent / unquote(uri)).is_file():
                    geometry.append(f"buffer {unquote(uri)}")
            for i, image in enumerate(doc.get("images") or []):
                uri = image.get("uri", "")
                if (i in used_images and uri and not uri.startswith("data:")
                        and not (path.parent / unquote(uri)).is_file()):
                    colour.append(f"image {unquote(uri)}")
    except (OSError, ValueError, IndexError, TypeError, AttributeError):
        pass  # an unreadable or malformed file is the loader's to report
    return MissingFiles(tuple(dict.fromkeys(colour)), tuple(dict.fromkeys(geometry)))


def check_side_files(path: Path, allow_untextured: bool = False) -> list[str]:
    """Fail the asset for missing side files, or, for missing colour files when
    ``allow_untextured``, accept it and return the row warnings that say what it is drawn without."""
    from gencritic.row_warnings import warning

    missing = missing_side_files(path)
    if missing.geometry:
        raise ItemError(f"mesh {path.name} needs {', '.join(missing.geometry + missing.colour)}, not found beside "
                        f"it in {path.parent}: copy it there (the asset cannot be drawn without it)")
    if missing.colour and not allow_untextured:
        raise ItemError(f"mesh {path.name} needs {', '.join(missing.colour)}, not found beside it in {path.parent}: "
                        f"copy it there (without it the asset would be drawn in a plain colour), or pass the render "
                        f"option {UNTEXTURED_OPTION} to score it drawn without it")
    return [warning("untextured", f"{path.name} drawn without {what}, not found beside it, in a plain colour "
                                  f"(allow_untextured)") for what in missing.colour]


def asset_sha256(path: Path) -> str:
    """sha256 over the asset's files (name-independent for the main file, so renames are free).

    A .blend is converted first (cached): its hash covers the files Blender read and the
    converter's and Blender's versions, since another Blender may export other geometry."""
    h = hashlib.sha256()
    if is_kit(path):  # its parts' contents in order: the kit file's own bytes name paths, not content
        h.update(b"kit\0")
        for part in read_kit(path):
            try:
                h.update(bytes.fromhex(asset_sha256(part)))
            except ItemError as exc:
                raise ItemError(f"kit {path.name}, part {part.name}: {exc}") from None
        return h.hexdigest()
    if path.suffix.lower() == ".blend" and path.is_file():
        from gencritic.mesh.blend import converted_blend

        converted = converted_blend(path)  # its files' hashes, checked when the conversion was found
        h.update(f"converted by {converted.converter}\0".encode())
        for name, digest in zip(["", *(f.name for f in converted.externals)], converted.sha256s, strict=True):
            h.update(name.encode() + b"\0" + bytes.fromhex(digest))
        return h.hexdigest()
    for i, f in enumerate(asset_files(path)):
        try:
            data = f.read_bytes()
        except FileNotFoundError:
            raise ItemError(f"mesh file not found: {f}") from None
        except IsADirectoryError:
            raise ItemError(f"expected a mesh file but found a folder: {f}") from None
        except OSError as exc:
            raise ItemError(f"cannot read {f}: {exc.strerror or exc}") from None
        if i == 0 and not data:
            raise ItemError(f"mesh file is empty (0 bytes): {f}")
        h.update((f.name if i else "").encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# loading


def _rgba_float(color: Any, n: int) -> np.ndarray:
    """uint8 or float colours (N,3|4) or one colour -> float32 (n, 4) in [0, 1]."""
    arr = np.asarray(color)
    if arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / 255.0
    arr = arr.astype(np.float32)
    if arr.ndim == 1:
        arr = np.broadcast_to(arr, (n, arr.shape[0]))
    if arr.shape[1] == 3:
        arr = np.concatenate([arr, np.ones((arr.shape[0], 1), np.float32)], axis=1)
    return np.ascontiguousarray(np.clip(arr[:, :4], 0.0, 1.0), dtype=np.float32)


def _texture_rgba(image: Any) -> np.ndarray | None:
    if image is None:
        return None
    from PIL import Image

    if not isinstance(image, Image.Image):
        return None
    return np.ascontiguousarray(np.asarray(image.convert("RGBA"), dtype=np.uint8))


def _exact_factor(material: Any, quantized: np.ndarray,
                  float_factors: Sequence[tuple[str | None, np.ndarray]]) -> np.ndarray | None:
    """The file's float ``baseColorFactor`` behind trimesh's uint8 one: the materials of that name
    whose factor rounds to it; None when there is none, or several that disagree."""
    name = getattr(material, "name", None)
    found = {tuple(f) for n, f in float_factors
             if n == name and np.all(np.abs(f * 255.0 - quantized.astype(np.float64)) <= 0.5 + 1e-6)}
    return np.asarray(found.pop(), np.float32) if len(found) == 1 else None


def _material_color_and_texture(visual: Any, float_factors: Sequence[tuple[str | None, np.ndarray]] = ()
                                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """(RGBA factor in [0,1], texture or None) of a TextureVisuals material.

    glTF PBR: baseColorTexture x baseColorFactor (the spec), the factor at the file's float
    precision (``float_factors``, see :func:`gltf_prepare.base_colour_factors`). OBJ/MTL
    (SimpleMaterial): the map_Kd image alone when present, otherwise Kd; trimesh and pyrender read
    OBJ the same way.
    """
    material = getattr(visual, "material", None)
    if material is None:
        return np.ones(4, np.float32), None
    if hasattr(material, "baseColorTexture"):
        factor = material.baseColorFactor
        fac = np.ones(4, np.float32) if factor is None else _rgba_float(factor, 1)[0]
        if factor is not None and np.asarray(factor).dtype == np.uint8:
            exact = _exact_factor(material, np.asarray(factor), float_factors)
            fac = fac if exact is None else exact
        return fac, _texture_rgba(material.baseColorTexture)
    texture = _texture_rgba(getattr(material, "image", None))
    if texture is not None:
        return np.ones(4, np.float32), texture
    diffuse = getattr(material, "diffuse", None)
    return (np.ones(4, np.float32) if diffuse is None else _rgba_float(diffuse, 1)[0]), None


def srgb_from_linear(values: np.ndarray) -> np.ndarray:
    """The sRGB transfer function (IEC 61966-2-1) of linear values in [0, 1]."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    return np.where(v <= 0.0031308, 12.92 * v, 1.055 * np.power(v, 1 / 2.4) - 0.055)


def _display_rgba(rgba: np.ndarray, linear: bool) -> np.ndarray:
    """RGBA with its colour channels in sRGB (the renderer's space); alpha is never encoded."""
    if not linear:
        return rgba
    out = np.array(rgba, dtype=np.float32, copy=True)
    out[..., :3] = srgb_from_linear(out[..., :3])
    return out


def _triangles_primitive(mesh: Any, transform: np.ndarray, linear_colours: bool = False,
                         float_factors: Sequence[tuple[str | None, np.ndarray]] = (),
                         linear_vertex_colours: bool | None = None) -> Primitive | None:
    """``linear_colours``: the file's material factors and vertex colours are linear (glTF by its
    specification, Blender's MTL files by Blender's convention) and are encoded to sRGB, the
    space textures are in and the renderer shades in. ``linear_vertex_colours`` overrides it for
    vertex colours (False when :mod:`gltf_prepare` has already encoded them)."""
    vertex_linear = linear_colours if linear_vertex_colours is None else linear_vertex_colours
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    faces = np.asarray(mesh.faces, dtype=np.int64).reshape(-1, 3)
    if faces.size == 0 or vertices.size == 0:
        return None
    if faces.min() < 0 or faces.max() >= len(vertices):
        raise ItemError("mesh has face indices outside its vertex list (corrupt file)")
    visual: Any = getattr(mesh, "visual", None)
    kind = getattr(visual, "kind", None)
    n = len(vertices)
    colors = np.ones((n, 4), np.float32)
    uvs = None
    texture = None
    if kind == "texture":
        factor, texture = _material_color_and_texture(visual, float_factors)
        colors = np.broadcast_to(_display_rgba(factor, linear_colours), (n, 4)).copy()
        vcol = getattr(visual, "vertex_attributes", {}).get("color") if hasattr(visual, "vertex_attributes") else None
        if vcol is not None and len(vcol) == n:
            colors *= _display_rgba(_rgba_float(vcol, n), vertex_linear)
        uv = getattr(visual, "uv", None)
        if texture is not None and uv is not None and len(uv) == n:
            uv = np.asarray(uv, dtype=np.float32)
            # trimesh stores OBJ-style uv (v=0 at the image bottom); flip to row-major image space
            uvs = np.stack([uv[:, 0], 1.0 - uv[:, 1]], axis=1)
        else:
            texture = None
    elif kind == "vertex":
        colors = _display_rgba(_rgba_float(visual.vertex_colors, n), vertex_linear)
    has_file_normals = "vertex_normals" in getattr(getattr(mesh, "_cache", None), "cache", {})
    normals = np.asarray(mesh.vertex_normals, dtype=np.float64) if has_file_normals else None

    if kind == "face":  # per-face colours: one vertex per face corner
        corners = faces.reshape(-1)
        vertices = vertices[corners]
        colors = np.repeat(_display_rgba(_rgba_float(visual.face_colors, len(faces)), linear_colours), 3, axis=0)
        normals = None if normals is None else normals[corners]
        faces = np.arange(len(corners), dtype=np.int64).reshape(-1, 3)
    else:  # drop vertices no face uses, so they cannot move the bounding box
        used = np.unique(faces)
        if len(used) < len(vertices):
            remap = np.full(len(vertices), -1, dtype=np.int64)
            remap[used] = np.arange(len(used))
            vertices, colors = vertices[used], colors[used]
            normals = None if normals is None else normals[used]
            uvs = None if uvs is None else uvs[used]
            faces = remap[faces]

    world = vertices @ transform[:3, :3].T + transform[:3, 3]
    linear = transform[:3, :3]
    if normals is not None and abs(np.linalg.det(linear)) > 1e-12:
        normals = normals @ np.linalg.inv(linear)  # inverse-transpose, applied to row vectors
        length = np.linalg.norm(normals, axis=1, keepdims=True)
        if not np.isfinite(normals).all() or (length < 1e-12).any():
            normals = None  # the file's normals are unusable: shade flat from the geometry instead
        else:
            normals = normals / length
    else:
        normals = None
    return Primitive("triangles", world.astype(np.float32), np.ascontiguousarray(colors, np.float32),
                     np.ascontiguousarray(faces.reshape(-1), dtype=np.uint32),
                     normals=None if normals is None else normals.astype(np.float32),
                     orientation=closed_orientation(world, faces),
                     uvs=None if uvs is None else np.ascontiguousarray(uvs, np.float32), texture=texture)


def closed_orientation(positions: np.ndarray, faces: np.ndarray) -> int:
    """+1 / -1 when every connected part is a closed, consistently wound surface and all parts
    are wound the same way seen from outside (+1: counter-clockwise, i.e. positive volume);
    0 otherwise (open, non-manifold, inconsistent, or parts disagreeing).

    Closed and consistent: every directed edge occurs once and its reverse occurs once. The
    sign comes from each part's signed volume, so a mirrored node transform (already baked into
    ``positions``) is accounted for. Meshes split at UV seams are not closed by index: they
    simply keep back faces, which is always correct.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    n = int(positions.shape[0])
    a = f.reshape(-1)
    b = f[:, [1, 2, 0]].reshape(-1)
    forward = a * n + b
    backward = b * n + a
    fwd_sorted = np.sort(forward)
    if np.any(fwd_sorted[1:] == fwd_sorted[:-1]):
        return 0  # an edge used twice in one direction: inconsistent or non-manifold
    idx = np.searchsorted(fwd_sorted, backward)
    idx[idx == len(fwd_sorted)] = 0
    if not np.array_equal(fwd_sorted[idx], backward):
        return 0  # a boundary edge: open surface
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(n, n))
    count, labels = connected_components(graph, directed=False)
    tri = positions.astype(np.float64)[f]
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])) / 6.0
    per_part = np.bincount(labels[f[:, 0]], weights=volume, minlength=count)
    used = np.unique(labels[f[:, 0]])
    signs = np.sign(per_part[used])
    if np.all(signs > 0):
        return 1
    if np.all(signs < 0):
        return -1
    return 0


def _points_primitive(points: np.ndarray, colors: Any, transform: np.ndarray | None = None,
                      linear: bool = False) -> Primitive | None:
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if pts.size == 0:
        return None
    if transform is not None:
        pts = pts @ transform[:3, :3].T + transform[:3, 3]
    n = len(pts)
    if colors is None or len(colors) != n:
        col = np.ones((n, 4), np.float32)
    else:
        col = _display_rgba(_rgba_float(colors, n), linear)
    return Primitive("points", pts.astype(np.float32), col)


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
    prim = _points_primitive(points, colors)
    return MeshData([prim] if prim else [], str(path))


def load_asset(path: Path, allow_untextured: bool = False) -> MeshData:
    """Load a mesh, a point cloud or a kit of parts (:mod:`gencritic.mesh.kit`); corrupt, empty
    or degenerate files raise :class:`ItemError`, and so do missing textures and material
    libraries unless ``allow_untextured`` (then :func:`check_side_files` names them as warnings)."""
    path = Path(path)
    if is_kit(path):
        data = load_kit(path, lambda part: load_asset(part, allow_untextured))
        _validate(data, path)
        return data
    if not path.exists():
        raise ItemError(f"mesh file not found: {path}")
    if path.is_dir():
        raise ItemError(f"expected a mesh file but found a folder: {path}")
    if path.stat().st_size == 0:
        raise ItemError(f"mesh file is empty (0 bytes): {path}")
    if path.suffix.lower() in UNREAD_3D_EXTENSIONS:
        raise ItemError(f"{path.name}: gencritic does not read {path.suffix} files (it reads .glb .gltf .obj .ply "
                        f".stl .off, .npz point clouds and, through Blender, .blend): {CONVERT_3D_HINT}")
    if path.suffix.lower() in POINT_CLOUD_SUFFIXES:
        data = _load_npz(path)
    elif path.suffix.lower() == ".blend":
        data = _load_blend(path)
    else:
        untextured = check_side_files(path, allow_untextured)
        data = _load_with_trimesh(path)
        if not untextured and not any(p.texture is not None for p in data.primitives):
            texture = _declared_texture(path)
            if texture is not None:  # present (checked above) yet not applied: undecodable, or no uvs
                raise ItemError(f"mesh {path.name}: its texture {texture} could not be applied (an image Pillow "
                                f"cannot open, or no texture coordinates): the asset would be drawn untextured; "
                                f"convert the texture to PNG and export again")
    _validate(data, path)
    return data


def _load_blend(path: Path) -> MeshData:
    """A .blend through its GLB conversion (cached); errors name the .blend, not the cache file."""
    from gencritic.mesh.blend import converted_blend

    glb = converted_blend(path).glb
    try:
        data = _load_with_trimesh(glb)
    except ItemError as exc:
        raise ItemError(f"{path.name} (converted by Blender): {exc}") from None
    if not any(p.texture is not None for p in data.primitives) and _declared_texture(glb) is not None:
        raise ItemError(f"{path.name}: its texture could not be applied after Blender's export (an image "
                        f"Pillow cannot open, or no texture coordinates); pack a PNG texture into the .blend")
    return MeshData(data.primitives, str(path))


def _load_with_trimesh(path: Path) -> MeshData:
    import io

    import trimesh

    rewritten = None
    float_factors: list[tuple[str | None, np.ndarray]] = []
    resolver = _side_file_resolver(path)
    linear_colours = path.suffix.lower() in (".glb", ".gltf") or _written_by_blender(path)
    linear_vertex_colours = linear_colours
    if path.suffix.lower() in (".glb", ".gltf"):
        from gencritic.mesh.gltf_prepare import base_colour_factors, prepare_gltf

        # fails what would be drawn wrongly; dequantizes what trimesh misreads
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
        _check_obj_textures(scene, path)
    prims: list[Primitive] = []
    for node in scene.graph.nodes_geometry:
        transform, geom_name = scene.graph[node]
        geom = scene.geometry.get(geom_name)
        if geom is None:
            continue
        matrix = np.asarray(transform, dtype=np.float64)
        if isinstance(geom, trimesh.Trimesh):
            prim = _triangles_primitive(geom, matrix, linear_colours, float_factors, linear_vertex_colours)
        elif isinstance(geom, trimesh.PointCloud):
            prim = _points_primitive(geom.vertices, getattr(geom, "colors", None), matrix, linear_vertex_colours)
        else:
            continue  # paths/lines are not surfaces; they are not drawn
        if prim is not None:
            prims.append(prim)
    return MeshData(prims, str(path))


_BLENDER_MTL_HEADER = re.compile(rb"^#\s*Blender\b[^\n]*MTL File", re.MULTILINE)


def _written_by_blender(path: Path) -> bool:
    """Whether an OBJ's material library says Blender wrote it. Blender writes each material's
    base colour to ``Kd`` as the linear value it stores; other tools mostly write display (sRGB)
    values, and the MTL format does not say which. Toys4k's originals are Blender files."""
    if path.suffix.lower() != ".obj":
        return False
    for lib in obj_material_libraries(path):
        try:
            with (path.parent / lib).open("rb") as f:
                if _BLENDER_MTL_HEADER.search(f.read(512)):
                    return True
        except OSError:
            continue
    return False


def _side_file_resolver(path: Path) -> Any:
    """trimesh's file resolver for the files beside ``path``, reading their names as the formats
    mean them. Why: trimesh passes everything after ``map_Kd`` as the file name, so ``map_Kd -s 1
    1 1 skin.png`` (valid MTL) found no file, and a glTF image URI is URL-encoded
    (``base%20colour.png``) but was looked up as written; either texture was dropped silently."""
    return _resolver_class()(str(path))


@functools.cache
def _resolver_class() -> type:
    """Defined once, on first use: trimesh is imported only when a mesh is loaded."""
    from urllib.parse import unquote

    import trimesh

    class _Resolver(trimesh.resolvers.FilePathResolver):
        def get(self, name: str) -> bytes:
            try:
                return super().get(name)  # type: ignore[no-any-return]
            except Exception:
                for candidate in dict.fromkeys([unquote(name), *_map_file_candidates(name)]):
                    if candidate != name:
                        try:
                            return super().get(candidate)  # type: ignore[no-any-return]
                        except Exception:
                            continue
                raise

    return _Resolver


def _obj_textured_materials(path: Path, present_only: bool = False) -> dict[str, str]:
    """Material name -> the file name its ``map_Kd`` gives, over the OBJ's material libraries
    (``present_only``: only textures whose file is there)."""
    out: dict[str, str] = {}
    for lib in obj_material_libraries(path):
        mtl = path.parent / lib
        if mtl.is_file():
            for name, spec in _mtl_textured_materials(mtl).items():
                if not present_only or _mtl_map_file(mtl.parent, spec) is not None:
                    out.setdefault(name, _map_file_candidates(spec)[0])
    return out


def _check_obj_textures(scene: Any, path: Path) -> None:
    """Fail when a material whose MTL names a ``map_Kd`` image came out of trimesh without it
    (undecodable image): one untextured part among textured ones is as wrong as all of them.
    (Absent images were dealt with before loading: failed, or accepted with ``allow_untextured``.)"""
    textured = _obj_textured_materials(path, present_only=True)
    if not textured:
        return
    for geom in scene.geometry.values():
        material = getattr(getattr(geom, "visual", None), "material", None)
        name = getattr(material, "name", None)
        if name in textured and getattr(material, "image", None) is None:
            raise ItemError(f"mesh {path.name}: the texture {textured[name]} of material {name} could not be read "
                            f"as an image (corrupt, or a format Pillow cannot open): convert it to PNG")


def _declared_texture(path: Path) -> str | None:
    """The first diffuse/base-colour texture the file's materials name (an OBJ's ``map_Kd``, a
    glTF material's ``baseColorTexture``), or None."""
    try:
        if path.suffix.lower() == ".obj":
            return next(iter(_obj_textured_materials(path).values()), None)
        if path.suffix.lower() == ".ply":
            return ply_texture_name(path)
        if path.suffix.lower() in (".gltf", ".glb"):
            from gencritic.mesh.gltf_prepare import base_colour_images, read_document

            doc, _ = read_document(path)
            for source in base_colour_images(doc)[:1]:
                image = doc["images"][source]
                return str(image.get("uri") or image.get("name") or f"image {source}")
    except (OSError, ValueError, KeyError, IndexError, TypeError, AttributeError, ItemError):
        pass  # malformed: the loader has already said what it could
    return None


def _validate(data: MeshData, path: Path) -> None:
    if not data.primitives:
        raise ItemError(f"mesh {path.name} has no faces or points to draw (empty asset)")
    for prim in data.primitives:
        if not np.isfinite(prim.positions).all():
            raise ItemError(f"mesh {path.name} has NaN or infinite vertex coordinates (corrupt or degenerate)")
    lo, hi = data.bounds()
    extent = float((hi - lo).max())
    if not extent > 0.0:
        raise ItemError(f"mesh {path.name} is degenerate: all vertices at one point (zero-size bounding box)")
    if data.num_faces and not data.num_points:
        areas = [np.linalg.norm(np.cross(t[:, 1] - t[:, 0], t[:, 2] - t[:, 0]), axis=1).sum()
                 for t in (p.positions.astype(np.float64)[p.indices.reshape(-1, 3)]
                           for p in data.primitives if p.indices is not None)]
        if float(sum(areas)) <= 1e-12 * extent * extent:
            raise ItemError(f"mesh {path.name} is degenerate: every triangle has zero area")
