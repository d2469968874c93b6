"""A mesh behind an address, with its side files, as a local folder the loaders read unchanged.

Why a folder: an OBJ finds its material library and textures by relative name, a ``.gltf`` its
buffers and images, a PLY its ``TextureFile``, a kit its parts. The loaders (and the render cache's
hash of every file that changes a picture) work on local paths, so the asset is fetched file by
file (:class:`gencritic.io.fetch.ObjectCache`, by content) and laid out under its common folder,
with the same relative names as in the bucket. A reference whose object does not exist is left
missing: the loader then fails the asset naming it (or draws it untextured where asked), exactly
as for a local copy, and the error names the address. ``.blend`` files are fetched alone: what
they link must be packed into them.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import unquote

from gencritic.errors import ItemError
from gencritic.io.fetch import ObjectCache, ObjectNotFound
from gencritic.io.urls import UrlPath, is_url, redact
from gencritic.items import KIT_SUFFIX

# how many files one asset may pull in (a reference cycle or a hostile file cannot fetch for ever)
MAX_ASSET_FILES = 4096


def _candidates(base: UrlPath, names: list[str]) -> list[UrlPath]:
    out = []
    for name in names:
        name = name.replace("\\", "/")
        if not name or name.startswith("/") or (":" in name.split("/")[0] and not is_url(name)):
            continue  # an absolute local path (C:/..., /home/...) names nothing in the bucket
        out.append(UrlPath(name) if is_url(name) else base / name)
    return out


def _references(url: UrlPath, local: Path) -> list[list[UrlPath]]:
    """The side files ``local`` (the fetched copy of ``url``) names: per reference, the addresses it
    may mean, most likely first."""
    from gencritic.mesh.sidefiles import (
        map_file_candidates,
        mtl_map_specs,
        obj_material_libraries,
        ply_texture_name,
    )

    name = url.name.lower()
    suffix = url.suffix.lower()
    base = url.parent
    refs: list[list[str]] = []
    try:
        if name.endswith(KIT_SUFFIX):
            doc = json.loads(local.read_text(encoding="utf-8"))
            parts = doc.get("parts") if isinstance(doc, dict) else None
            refs = [[p] for p in parts or [] if isinstance(p, str)]
        elif suffix == ".obj":
            refs = [[lib] for lib in obj_material_libraries(local)]
        elif suffix == ".mtl":
            refs = [map_file_candidates(spec) for spec in mtl_map_specs(local.read_text(errors="replace"))]
        elif suffix == ".ply":
            texture = ply_texture_name(local)
            refs = [[texture]] if texture else []
        elif suffix == ".gltf":
            doc = json.loads(local.read_text(encoding="utf-8", errors="replace"))
            for entry in [*doc.get("buffers", []), *doc.get("images", [])]:
                uri = entry.get("uri", "") if isinstance(entry, dict) else ""
                if uri and not uri.startswith("data:"):
                    refs.append(list(dict.fromkeys([unquote(uri), uri])))
    except (OSError, ValueError, AttributeError):
        return []  # not readable as its kind: the loader says why, naming the file
    return [c for c in (_candidates(base, r) for r in refs) if c]


def _common_folder(urls: list[UrlPath]) -> UrlPath:
    root = urls[0].parent
    for url in urls[1:]:
        while not _below(url, root):
            if root.parent == root:
                raise ItemError(f"{redact(str(url))} is not in the same bucket as {redact(str(urls[0]))}: "
                                f"side files must be stored beside their asset")
            root = root.parent
    return root


def _below(url: UrlPath, folder: UrlPath) -> bool:
    try:
        url.relative_to(folder)
    except ValueError:
        return False
    return True


def fetch_asset(url: UrlPath, objects: ObjectCache) -> tuple[Path, dict[str, str]]:
    """The local path of ``url``'s mesh inside a folder that also holds its side files, and the
    mapping of that folder to its address (for naming addresses in errors)."""
    files: dict[UrlPath, Path] = {url: objects.fetch(url)}
    queue = [url]
    while queue:
        current = queue.pop(0)
        for candidates in _references(current, files[current]):
            for candidate in candidates:
                if candidate in files:
                    break
                if len(files) >= MAX_ASSET_FILES:
                    raise ItemError(f"{redact(str(url))} names more than {MAX_ASSET_FILES} side files")
                try:
                    files[candidate] = objects.fetch(candidate)
                except ObjectNotFound:
                    continue  # try the next reading of the name; none found: the loader names it
                queue.append(candidate)
                break
    root = _common_folder(list(files))
    folder = objects.tree({u.relative_to(root): local for u, local in files.items()})
    return folder / url.relative_to(root), {str(folder): str(root)}
