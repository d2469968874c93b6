"""Which files make up an asset, which of them are missing, and its content hash.

An OBJ's colours live in other files (its MTL material libraries and their textures), a PLY
may name a texture in its header, a .gltf keeps buffers and images beside it, a kit names its
parts and a .blend links what Blender reads. This module knows those references, so that a
render cache keys on every file that changes a picture (:func:`asset_sha256`), a folder listing
does not score a mesh's texture as an image (:func:`asset_files`), and a missing texture fails
the asset instead of drawing it plain without a word (:func:`check_side_files`).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gencritic.errors import ItemError
from gencritic.io.images import read_file_bytes
from gencritic.mesh.kit import is_kit, read_kit

log = logging.getLogger("gencritic")

_MTL_MAP = re.compile(r"^\s*(?:map_\w+|bump|disp|decal|norm)\s+(.+?)\s*$", re.MULTILINE | re.IGNORECASE)


_OBJ_MTLLIB_BYTES = re.compile(rb"^[ \t]*mtllib[ \t]+(.+?)[ \t\r]*$", re.MULTILINE)


_OBJ_USEMTL_BYTES = re.compile(rb"^[ \t]*usemtl[ \t]+(.+?)[ \t\r]*$", re.MULTILINE)


def mtl_map_specs(text: str) -> list[str]:
    """The values of a material library's texture statements (``map_Kd``, ``bump``...), as written."""
    return list(_MTL_MAP.findall(text))


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


def map_file_candidates(spec: str) -> list[str]:
    """File names a ``map_Kd`` value may mean: after its options (``-s 1 1 1 tex.png``), the
    rest as one name (names may hold spaces), and the last token alone."""
    tokens = spec.split()
    i = 0
    while i < len(tokens) and tokens[i].lower() in _MTL_OPTION_ARGS:
        i += 1 + _MTL_OPTION_ARGS[tokens[i].lower()]
    rest = " ".join(tokens[i:])
    return list(dict.fromkeys(c for c in (rest, tokens[-1] if tokens else "") if c))


def mtl_map_file(folder: Path, spec: str) -> Path | None:
    """The existing file a texture statement means, or None."""
    for name in map_file_candidates(spec):
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


def mtl_textured_materials(mtl: Path) -> dict[str, str]:
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
                    for spec in mtl_map_specs(mtl.read_text(errors="replace")):
                        found = mtl_map_file(mtl.parent, spec)
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
                for spec in mtl_textured_materials(mtl).values():
                    if mtl_map_file(mtl.parent, spec) is None:
                        colour.append(f"texture {map_file_candidates(spec)[0]} (map_Kd in {mtl.name})")
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
        data = read_file_bytes(f, "mesh", allow_empty=i > 0)  # side files may be empty; the mesh may not
        h.update((f.name if i else "").encode() + b"\0" + hashlib.sha256(data).digest())
    if path.suffix.lower() in (".glb", ".gltf"):  # drawn otherwise since mesh/gltf_features: new keys
        from gencritic.mesh.gltf_features import features_salt

        h.update(features_salt(path))
    return h.hexdigest()


_BLENDER_MTL_HEADER = re.compile(rb"^#\s*Blender\b[^\n]*MTL File", re.MULTILINE)


def written_by_blender(path: Path) -> bool:
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


def side_file_resolver(path: Path) -> Any:
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
                for candidate in dict.fromkeys([unquote(name), *map_file_candidates(name)]):
                    if candidate != name:
                        try:
                            return super().get(candidate)  # type: ignore[no-any-return]
                        except Exception:
                            continue
                raise

    return _Resolver
