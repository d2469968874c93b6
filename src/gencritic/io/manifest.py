"""Turn what the user points at (an image, a folder, a manifest) into a list of items.

Manifests are CSV, JSONL or Parquet with a media column (``image``; aliases ``path``,
``file``, ``mesh``, ``asset``) and a text column (``prompt``; aliases ``caption``, ``text``).
Every other column is carried through to the results unchanged. Relative paths are resolved
against the manifest's folder, so a dataset folder can be moved as a whole.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, Item, kind_for_path
from gencritic.jsonio import dumps_strict

MEDIA_COLUMNS = ("image", "path", "file", "mesh", "asset", "filename")
PROMPT_COLUMNS = ("prompt", "caption", "text")
REFERENCE_COLUMNS = ("reference", "ref", "reference_image")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


def read_table(path: Path) -> list[dict[str, Any]]:
    """Read a CSV/TSV/JSONL/Parquet file into a list of row dicts (strings kept as strings)."""
    suffix = path.suffix.lower()
    if not path.exists():
        raise InputError(f"manifest not found: {path}")
    try:
        if suffix in (".csv", ".tsv"):
            # the csv module, not pandas: cells stay strings exactly as written, and a CLI run
            # does not pay pandas' import time
            with open(path, newline="", encoding="utf-8-sig") as fh:
                reader = csv.DictReader(fh, delimiter="\t" if suffix == ".tsv" else ",")
                if reader.fieldnames is None:
                    return []
                names = [str(n) for n in reader.fieldnames]
                if len(set(names)) != len(names):
                    raise InputError(f"manifest {path} has repeated column names: {', '.join(names)}")
                return [{k: ("" if v is None else v) for k, v in row.items() if k is not None} for row in reader]
        if suffix == ".parquet":
            import pandas as pd

            return [{str(k): v for k, v in r.items()} for r in pd.read_parquet(path).to_dict(orient="records")]
        if suffix in (".jsonl", ".json"):
            text = path.read_text(encoding="utf-8")
            if suffix == ".json" and text.lstrip().startswith("["):
                rows = json.loads(text)
            else:
                rows = [json.loads(line) for line in text.splitlines() if line.strip()]
            if not all(isinstance(r, dict) for r in rows):
                raise InputError(f"{path}: every JSON line must be an object with named fields")
            return rows
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


def items_from_manifest(path: Path, prompt_override: str | None = None) -> list[Item]:
    """Items from a manifest file; the error for missing columns lists the columns found."""
    rows = read_table(path)
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
    base = path.parent
    raw_paths = [str(r.get(media_col, "") or "") for r in rows]
    items = []
    for item_id, row, raw in zip(_unique_ids(raw_paths), rows, raw_paths, strict=True):
        media = Path(raw)
        media = media if media.is_absolute() else base / media
        prompt = prompt_override if prompt_override is not None else row.get(prompt_col) if prompt_col else None
        ref_raw = row.get(ref_col) if ref_col else None
        reference = None
        if ref_raw:
            reference = Path(str(ref_raw))
            reference = reference if reference.is_absolute() else base / reference
        items.append(
            Item(
                item_id=item_id,
                kind=kind_for_path(media) if raw else "image",
                path=media,
                prompt=None if prompt is None else str(prompt),
                reference=reference,
                columns={k: _plain(v) for k, v in row.items()},
            )
        )
    return items


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
    """``foo.png`` may have its prompt in ``foo.txt`` beside it (a common generator layout)."""
    txt = media.with_suffix(".txt")
    if txt.is_file():
        return txt.read_text(encoding="utf-8").strip()
    return None


def _is_views_folder(folder: Path) -> bool:
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return bool(files) and all(p.suffix.lower() in IMAGE_EXTENSIONS | {".json", ".txt"} for p in files) and any(
        p.suffix.lower() in IMAGE_EXTENSIONS for p in files
    )


def items_from_folder(folder: Path, prompt: str | None = None) -> list[Item]:
    """Images and meshes in a folder (sorted, recursive); a sub-folder of only images is one
    multi-view item (pre-rendered views of an asset)."""
    entries: list[Path] = []
    for child in sorted(folder.iterdir()):
        if child.name.startswith("."):
            continue
        if child.is_dir():
            if _is_views_folder(child):
                entries.append(child)
            else:
                entries.extend(
                    p
                    for p in sorted(child.rglob("*"))
                    if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS | MESH_EXTENSIONS
                )
        elif child.suffix.lower() in IMAGE_EXTENSIONS | MESH_EXTENSIONS:
            entries.append(child)
    # a mesh's texture images (named by its MTL/glTF) are part of the mesh, not items to score
    from gencritic.mesh.load import asset_files

    blends = [p for p in entries if p.suffix.lower() == ".blend"]
    if blends:  # a .blend's textures are known once Blender has read it (converted now, cached for the run)
        from gencritic.mesh.blend import prepare_blend_files

        prepare_blend_files(blends)

    textures = {f.resolve() for p in entries if p.suffix.lower() in MESH_EXTENSIONS for f in asset_files(p)[1:]}

    def only_textures(folder: Path) -> bool:  # e.g. model.obj beside textures/ (its map_Kd images)
        images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
        return bool(images) and all(p.resolve() in textures for p in images)

    entries = [p for p in entries if p.resolve() not in textures and not (p.is_dir() and only_textures(p))]
    if not entries:
        raise InputError(
            f"no images or meshes found in {folder} (looked for {', '.join(sorted(IMAGE_EXTENSIONS | MESH_EXTENSIONS))})"
        )
    items = []
    for path in entries:
        rel = path.relative_to(folder).as_posix()
        text = prompt if prompt is not None else _sidecar_prompt(path)
        if text is None and path.is_dir():
            text = _sidecar_prompt(path / "prompt")
        items.append(Item(item_id=rel, kind=kind_for_path(path), path=path, prompt=text, columns={"image": rel}))
    return items


def collect_items(source: Path, prompt: str | None = None) -> list[Item]:
    """Dispatch on what ``source`` is: manifest, folder, or a single image/mesh."""
    if not source.exists():
        raise InputError(f"input not found: {source} (give an image, a mesh, a folder or a manifest .csv/.jsonl/.parquet)")
    if source.is_dir():
        return items_from_folder(source, prompt)
    if source.suffix.lower() in MANIFEST_SUFFIXES:
        return items_from_manifest(source, prompt)
    if source.suffix.lower() in IMAGE_EXTENSIONS | MESH_EXTENSIONS:
        text = prompt if prompt is not None else _sidecar_prompt(source)
        return [Item(item_id=source.name, kind=kind_for_path(source), path=source, prompt=text, columns={"image": str(source)})]
    raise InputError(
        f"don't know how to read {source}: give an image, a mesh (.glb/.obj/.ply/.stl), a folder or a manifest"
    )


def pair_references(items: Sequence[Item], reference_dir: Path) -> list[Item]:
    """Set each item's ``reference`` to the image in ``reference_dir`` with the same file stem
    (``cat.png`` <-> ``refs/cat.jpg``); items that already have one keep it, unmatched items stay
    without (reference metrics then fail them with a clear reason). Two candidates for one stem
    is an input error, because guessing would silently pick one."""
    if not reference_dir.is_dir():
        raise InputError(f"--reference-dir {reference_dir} is not a folder")
    by_stem: dict[str, Path] = {}
    for p in sorted(reference_dir.iterdir()):
        if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
            if p.stem in by_stem:
                raise InputError(f"--reference-dir has two images for '{p.stem}': {by_stem[p.stem].name} and {p.name}")
            by_stem[p.stem] = p
    out = []
    for item in items:
        ref = item.reference if item.reference is not None else by_stem.get(item.path.stem)
        out.append(Item(item.item_id, item.kind, item.path, item.prompt, ref, item.columns))
    return out
