"""Turn what the user points at (an image, a folder, a manifest) into a list of items.

Manifests are CSV, JSONL or Parquet with a media column (``image``; aliases ``path``,
``file``, ``mesh``, ``asset``) and a text column (``prompt``; aliases ``caption``, ``text``).
Every other column is carried through to the results unchanged. Relative paths are resolved
against the manifest's folder, so a dataset folder can be moved as a whole.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from gencritic.errors import InputError, ItemError
from gencritic.io.listing import BadEntry, FolderError, Listing, list_folder, natural_key, walk_files
from gencritic.io.strict_csv import read_csv_rows
from gencritic.io.urls import UrlPath, as_path, redact
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, Item, ItemKind, kind_for_name, kind_for_path
from gencritic.jsonio import dumps_strict

MEDIA_COLUMNS = ("image", "path", "file", "mesh", "asset", "filename")
PROMPT_COLUMNS = ("prompt", "caption", "text")
REFERENCE_COLUMNS = ("reference", "ref", "reference_image")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_table(path: Path) -> list[dict[str, Any]]:
    """Read a CSV/TSV/JSONL/Parquet file into a list of row dicts (strings kept as strings).

    CSV/TSV are parsed strictly (:mod:`gencritic.io.strict_csv`): a file that does not parse
    cleanly is an :class:`InputError` naming the line, never a silently different table."""
    return _read_located(path)[0]


def _read_located(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """:func:`read_table`'s rows and where each is in the file (``line 4``, ``row 3``)."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"manifest not found: {path}")
    try:
        if suffix in (".csv", ".tsv"):
            # the csv module, not pandas: cells stay strings exactly as written, and a CLI run
            # does not pay pandas' import time
            rows, lines = read_csv_rows(path, "\t" if suffix == ".tsv" else ",")
            return list(rows), [f"line {n}" for n in lines]
        if suffix == ".parquet":
            import pandas as pd

            records = [{str(k): v for k, v in r.items()} for r in pd.read_parquet(path).to_dict(orient="records")]
            return records, [f"row {i + 1}" for i in range(len(records))]
        if suffix in (".jsonl", ".json"):
            text = path.read_text(encoding="utf-8")
            if suffix == ".json" and text.lstrip().startswith("["):
                rows = json.loads(text)
                where = [f"element {i + 1}" for i in range(len(rows))] if isinstance(rows, list) else []
            else:
                rows, where = [], []
                for n, line in enumerate(text.splitlines(), 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as exc:
                            raise InputError(f"manifest {path}, line {n}: not valid JSON ({exc.msg})") from None
                        where.append(f"line {n}")
            if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
                raise InputError(f"{path}: every JSON line must be an object with named fields")
            return rows, where
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read manifest {path}: {exc}") from None
    raise InputError(f"unsupported manifest format {suffix!r} for {path}: use .csv, .tsv, .jsonl or .parquet")


def _pick(columns: Sequence[str], candidates: Sequence[str]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    for name in candidates:
        if name in lowered:
            return lowered[name]
    return None


def _unique_ids(paths: Sequence[str]) -> list[str]:
    """Stable ids: the path as written, with ``#k`` on repeats (same image, other prompt)."""
    seen: Counter[str] = Counter()
    ids = []
    for p in paths:
        k = seen[p]
        ids.append(p if k == 0 else f"{p}#{k}")
        seen[p] += 1
    return ids


def items_from_manifest(path: Path, prompt_override: str | None = None,
                        base: Path | UrlPath | None = None) -> list[Item]:
    """Items from a manifest file; the error for missing columns lists the columns found.

    Relative media paths resolve against ``base`` (default: the manifest's folder; the address's
    folder for a manifest read from object storage). A cell may itself be an address."""
    rows, where = _read_located(path)
    if not rows:
        raise InputError(f"manifest {path} has no rows")
    columns = list(rows[0].keys())
    media_col = _pick(columns, MEDIA_COLUMNS)
    if media_col is None:
        raise InputError(
            f"manifest {path} needs an 'image' column (or one of {', '.join(MEDIA_COLUMNS[1:])}); "
            f"found columns: {', '.join(columns)}"
        )
    prompt_col = _pick(columns, PROMPT_COLUMNS)
    ref_col = _pick(columns, REFERENCE_COLUMNS)
    folder: Path | UrlPath = path.parent if base is None else base
    raw_paths = [_cell_text(r.get(media_col)) for r in rows]
    items = []
    for item_id, row, raw, at in zip(_unique_ids(raw_paths), rows, raw_paths, where, strict=True):
        media = as_path(raw)
        if isinstance(media, Path) and not media.is_absolute():
            media = folder / media
        # an empty cell is a failed row of its own, not the manifest's folder read as an image
        error = None if raw.strip() else f"empty image cell (column '{media_col}', {at} of {path.name})"
        prompt = prompt_override if prompt_override is not None else row.get(prompt_col) if prompt_col else None
        ref_raw = row.get(ref_col) if ref_col else None
        reference: Path | UrlPath | None = None
        if ref_raw:
            reference = as_path(str(ref_raw))
            if isinstance(reference, Path) and not reference.is_absolute():
                reference = folder / reference
        items.append(
            Item(
                item_id=item_id,
                kind=kind_for_path(media) if raw else "image",
                path=media,
                prompt=None if prompt is None else str(prompt),
                reference=reference,
                columns={k: _plain(v) for k, v in row.items()},
                error=error,
            )
        )
    return items


def _cell_text(value: Any) -> str:
    """A media cell as text; missing values (None, NaN from Parquet/pandas) are empty."""
    if value is None or (isinstance(value, float) and value != value) or type(value).__name__ == "NAType":
        return ""
    return str(value)


def _plain(value: Any) -> Any:
    """Make a manifest cell safe to write back to CSV/JSON (numpy scalars, NaN, lists)."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (ValueError, AttributeError):
            return str(value)
    if isinstance(value, (list, tuple, dict)):
        return dumps_strict(value, ensure_ascii=False)
    return value


def _sidecar_prompt(media: Path) -> str | None:
    """``foo.png`` may have its prompt in ``foo.txt`` beside it (a common generator layout).

    A prompt file that cannot be read is an :class:`ItemError` (that item fails, naming it):
    scoring without its prompt would be a different number."""
    txt = media.with_suffix(".txt")
    if not txt.is_file():
        return None
    try:
        return txt.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
        raise ItemError(f"prompt file {txt} cannot be read ({reason}); fix it or pass --prompt") from None


def _is_views_folder(listing: Listing) -> bool:
    """A folder of only images (and .json/.txt side files) is one multi-view item. An image
    entry that cannot be read still counts as an image: the item then fails naming it."""
    names = [p.name for p in listing.files]
    names += [b.path.name for b in listing.bad if b.path.suffix.lower() in IMAGE_EXTENSIONS]
    suffixes = {os.path.splitext(n)[1].lower() for n in names}
    return bool(suffixes) and suffixes <= IMAGE_EXTENSIONS | {".json", ".txt"} and bool(suffixes & IMAGE_EXTENSIONS)


def _bad_item(folder: Path, bad: BadEntry, prompt: str | None, is_folder: bool = False) -> Item:
    """A failed row for an entry the listing could not read, named by its path."""
    rel = bad.path.relative_to(folder).as_posix()
    kind: ItemKind = "views" if is_folder else kind_for_name(bad.path)
    return Item(item_id=rel, kind=kind, path=bad.path, prompt=prompt, columns={"image": rel},
                error=f"{bad.path}: {bad.reason}")


def items_from_folder(folder: Path, prompt: str | None = None) -> list[Item]:
    """Images and meshes in a folder (natural order, recursive); a sub-folder of only images is
    one multi-view item (pre-rendered views of an asset). An entry that cannot be read (symlink
    loop, broken link, unreadable sub-folder) is a failed row naming it, not the end of the run."""
    wanted = IMAGE_EXTENSIONS | MESH_EXTENSIONS
    try:
        top = list_folder(folder, wanted, folders=True)
    except FolderError as exc:
        raise InputError(f"{exc}; check the path and its permissions") from None
    entries: list[Path] = list(top.files)
    bad: list[tuple[BadEntry, bool]] = [(b, False) for b in top.bad]
    for child in top.folders:
        try:
            views = _is_views_folder(list_folder(child))
            sub = None if views else walk_files(child, wanted, above=(folder,))
        except FolderError as exc:
            bad.append((BadEntry(child, f"folder cannot be listed ({exc.reason})"), True))
            continue
        if sub is None:
            entries.append(child)
        else:
            entries.extend(sub.files)
            bad.extend((b, False) for b in sub.bad)
    # a mesh's texture images (named by its MTL/glTF) are part of the mesh, not items to score; a
    # .blend's are known once Blender has read it, which the scoring run does when it plans
    # (gencritic.scoring.plan), not the listing
    entries = without_side_files(entries, [p for p in entries if p.suffix.lower() in MESH_EXTENSIONS - {".blend"}])
    if not entries and not bad:
        raise InputError(
            f"no images or meshes found in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS | MESH_EXTENSIONS))})"
        )
    items = []
    for path in entries:
        rel = path.relative_to(folder).as_posix()
        text, error = prompt, None
        try:
            if text is None:
                text = _sidecar_prompt(path)
            if text is None and path.is_dir():
                text = _sidecar_prompt(path / "prompt")
        except ItemError as exc:
            error = str(exc)
        items.append(Item(item_id=rel, kind=kind_for_path(path), path=path, prompt=text, columns={"image": rel},
                          error=error))
    items += [_bad_item(folder, b, prompt, is_folder) for b, is_folder in bad]
    root_parts = len(folder.parts)
    return sorted(items, key=lambda i: tuple(natural_key(part) for part in i.path.parts[root_parts:]))


def without_side_files(paths: Sequence[Path], meshes: Sequence[Path]) -> list[Path]:
    """``paths`` without the side files of ``meshes`` (their textures, material libraries,
    buffers: :func:`gencritic.mesh.sidefiles.asset_files`) and without folders that hold only
    such files (``model.obj`` beside ``textures/``)."""
    from gencritic.mesh.sidefiles import asset_files

    side = {f.resolve() for m in meshes for f in asset_files(m)[1:]}
    if not side:
        return list(paths)

    def only_side_files(folder: Path) -> bool:
        try:
            images = list_folder(folder, IMAGE_EXTENSIONS).files
        except FolderError:
            return False
        return bool(images) and all(p.resolve() in side for p in images)

    return [p for p in paths if p.resolve() not in side and not (p.is_dir() and only_side_files(p))]


def collect_items(source: Path | UrlPath, prompt: str | None = None) -> list[Item]:
    """Dispatch on what ``source`` is: manifest, folder, or a single image/mesh (local or at an address)."""
    if isinstance(source, UrlPath):
        return _collect_remote(source, prompt)
    if not source.exists():
        raise InputError(f"input not found: {source} (give an image, a mesh, a folder or a manifest .csv/.jsonl/.parquet)")
    if source.is_dir():
        return items_from_folder(source, prompt)
    if source.suffix.lower() in MANIFEST_SUFFIXES:
        return items_from_manifest(source, prompt)
    if source.suffix.lower() in IMAGE_EXTENSIONS | MESH_EXTENSIONS:
        try:
            text = prompt if prompt is not None else _sidecar_prompt(source)
        except ItemError as exc:
            raise InputError(str(exc)) from None
        return [Item(item_id=source.name, kind=kind_for_path(source), path=source, prompt=text, columns={"image": str(source)})]
    raise InputError(
        f"don't know how to read {source}: give an image, a mesh (.glb/.obj/.ply/.stl), a folder or a manifest"
    )


def _collect_remote(source: UrlPath, prompt: str | None) -> list[Item]:
    """:func:`collect_items` for an address: the manifest is read here (the driver), media where
    each item is scored."""
    import tempfile

    from gencritic.io.fetch import ObjectNotFound, filesystem, read_object
    from gencritic.io.remote_folder import items_from_remote_folder

    filesystem(source)  # no fsspec implementation for the scheme: one line now
    suffix = source.suffix.lower()
    if suffix in MANIFEST_SUFFIXES:
        try:
            data = read_object(source)
        except ItemError as exc:
            raise InputError(f"manifest {exc}") from None
        with tempfile.TemporaryDirectory(prefix="gencritic-manifest-") as tmp:
            local = Path(tmp) / (source.name or f"manifest{suffix}")  # messages name it as written
            local.write_bytes(data)
            try:
                return items_from_manifest(local, prompt, base=source.parent)
            except InputError as exc:
                raise InputError(str(exc).replace(str(local), redact(str(source)))) from None
    if suffix in IMAGE_EXTENSIONS | MESH_EXTENSIONS or source.name.lower().endswith(".kit.json"):
        text = prompt
        if text is None:  # a prompt file beside it, as locally
            try:
                text = read_object(source.with_suffix(".txt")).decode("utf-8").strip()
            except ObjectNotFound:
                text = None
            except (ItemError, UnicodeDecodeError) as exc:
                raise InputError(f"prompt file beside {redact(str(source))} cannot be read ({exc}); "
                                 f"fix it or pass --prompt") from None
        return [Item(item_id=source.name, kind=kind_for_path(source), path=source, prompt=text,
                     columns={"image": str(source)})]
    return items_from_remote_folder(source, prompt)


def pair_references(items: Sequence[Item], reference_dir: Path | UrlPath) -> list[Item]:
    """Set each item's ``reference`` to the image in ``reference_dir`` with the same file stem
    (``cat.png`` <-> ``refs/cat.jpg``); items that already have one keep it, unmatched items stay
    without (reference metrics then fail them with a clear reason). Two candidates for one stem
    is an input error, because guessing would silently pick one. ``reference_dir`` may be an
    address (its images are listed here, fetched where each item is scored)."""
    if isinstance(reference_dir, UrlPath):
        from gencritic.io.fetch import list_folder_urls

        try:
            candidates: list[Path | UrlPath] = [u for u in list_folder_urls(reference_dir)
                                                if u.suffix.lower() in IMAGE_EXTENSIONS]
        except ItemError as exc:
            raise InputError(f"--reference-dir: {exc}") from None
        return _pair_by_stem(items, candidates)
    if not reference_dir.is_dir():
        raise InputError(f"--reference-dir {reference_dir} is not a folder")
    try:
        listing = list_folder(reference_dir, IMAGE_EXTENSIONS)
    except FolderError as exc:
        raise InputError(f"--reference-dir: {exc}") from None
    # an unreadable reference keeps its stem: its item fails when the reference is loaded
    return _pair_by_stem(items, [*listing.files, *[b.path for b in listing.bad]])


def _pair_by_stem(items: Sequence[Item], references: Sequence[Path | UrlPath]) -> list[Item]:
    by_stem: dict[str, Path | UrlPath] = {}
    for p in references:
        if p.stem in by_stem:
            raise InputError(f"--reference-dir has two images for '{p.stem}': {by_stem[p.stem].name} and {p.name}")
        by_stem[p.stem] = p
    out = []
    for item in items:
        ref = item.reference if item.reference is not None else by_stem.get(item.path.stem)
        out.append(replace(item, reference=ref))
    return out
