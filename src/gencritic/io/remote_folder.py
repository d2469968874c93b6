"""A folder behind an address (``s3://bucket/renders/``) as items, by the rules of a local folder.

The same rules as :func:`gencritic.io.manifest.items_from_folder`: images and meshes at any depth
in natural order, a top-level sub-folder of only images (and ``.json``/``.txt``) is one multi-view
item, hidden names are skipped, a ``name.txt`` beside ``name.png`` (or ``prompt.txt`` inside a
views folder) is its prompt. One listing request per prefix page; prompts are read on the driver.

One rule differs, and says so instead of guessing: a local folder leaves out the images that a
mesh in it uses as textures (found by reading the mesh). At an address that would mean
downloading every mesh on the driver, so a folder holding both images and meshes that can name
side files (OBJ, glTF, PLY) is refused with one line asking for a manifest.
"""

from __future__ import annotations

import posixpath

from gencritic.errors import InputError, ItemError
from gencritic.io.fetch import find_files, read_object
from gencritic.io.listing import natural_key
from gencritic.io.urls import UrlPath, redact
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, Item, kind_for_path

SIDE_FILE_MESHES = frozenset({".obj", ".gltf", ".ply"})


def _suffix(name: str) -> str:
    return posixpath.splitext(name)[1].lower()


def _prompt(folder: UrlPath, rel_txt: str, present: set[str]) -> str | None:
    """The text of ``rel_txt`` when the listing holds it; a read failure fails the item."""
    if rel_txt not in present:
        return None
    try:
        return read_object(folder / rel_txt).decode("utf-8").strip()
    except UnicodeDecodeError:
        raise ItemError(f"prompt file {redact(str(folder / rel_txt))} is not UTF-8 text; fix it or pass --prompt") \
            from None


def items_from_remote_folder(folder: UrlPath, prompt: str | None = None) -> list[Item]:
    """Items of every image and mesh below ``folder``; :class:`InputError` when there are none."""
    try:
        rels = find_files(folder)
    except ItemError as exc:
        raise InputError(f"{exc}; check the address and this machine's credentials") from None
    present = set(rels)
    wanted = IMAGE_EXTENSIONS | MESH_EXTENSIONS
    entries: list[tuple[str, bool]] = []  # (relative path, is a views folder)
    children: dict[str, list[str]] = {}
    for rel in rels:
        head, sep, rest = rel.partition("/")
        if sep:
            children.setdefault(head, []).append(rest)
        elif _suffix(rel) in wanted:
            entries.append((rel, False))
    for child, members in children.items():
        direct = {_suffix(m) for m in members if "/" not in m}
        if direct and direct <= IMAGE_EXTENSIONS | {".json", ".txt"} and direct & IMAGE_EXTENSIONS:
            entries.append((child, True))
        else:
            entries.extend((f"{child}/{m}", False) for m in members if _suffix(m) in wanted)
    if not entries:
        raise InputError(f"no images or meshes found under {redact(str(folder))} "
                         f"(looked for {', '.join(sorted(wanted))})")
    meshes = [r for r, views in entries if not views and _suffix(r) in SIDE_FILE_MESHES]
    if meshes and any(views or _suffix(r) in IMAGE_EXTENSIONS for r, views in entries):
        raise InputError(f"{redact(str(folder))} holds meshes that may use its images as textures "
                         f"(e.g. {meshes[0]}): list the items to score in a manifest (.csv with an 'image' column)")
    items = []
    for rel, is_views in entries:
        path = folder / rel
        text, error = prompt, None
        try:
            if text is None:
                text = _prompt(folder, posixpath.splitext(rel)[0] + ".txt", present)
            if text is None and is_views:
                text = _prompt(folder, f"{rel}/prompt.txt", present)
        except ItemError as exc:
            error = str(exc)
        items.append(Item(item_id=rel, kind="views" if is_views else kind_for_path(path), path=path, prompt=text,
                          columns={"image": rel}, error=error))
    return sorted(items, key=lambda i: tuple(natural_key(part) for part in i.item_id.split("/")))
