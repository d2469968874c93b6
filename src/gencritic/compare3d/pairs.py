"""Which generated asset is compared with which reference.

* two folders (walked as every command walks folders: natural order, hidden entries skipped):
  files are paired by their path relative to the folder without the extension (``gen/chair.glb``
  with ``ref/chair.obj``, ``gen/a/b.ply`` with ``ref/a/b.glb``); a name found on one side only,
  or an entry that cannot be listed (a broken link), is still a row — failed, saying why — so a
  method that produced nothing for an input is not silently left out of the table;
* a manifest (CSV/TSV/JSONL/Parquet) with ``generated`` and ``reference`` columns, paths relative
  to the manifest's folder; other columns are carried into the results;
* two mesh files: one pair.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.items import MESH_EXTENSIONS

GENERATED_COLUMNS = ("generated", "gen", "prediction", "pred")
REFERENCE_COLUMNS = ("reference", "ref", "gt", "ground_truth")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class Pair:
    pair_id: str
    generated: Path | None
    reference: Path | None
    columns: dict[str, Any] = field(default_factory=dict)  # carried manifest columns
    problem: str | None = None  # a folder entry that could not be listed (broken link, loop ...)

    def missing(self) -> str | None:
        """Why this pair cannot be compared before reading anything, or None."""
        if self.problem is not None:
            return self.problem
        if self.generated is None:
            return f"no generated asset named {self.pair_id!r} (the reference is {self.reference})"
        if self.reference is None:
            return f"no reference asset named {self.pair_id!r} (the generated asset is {self.generated})"
        return None


def _meshes_by_name(folder: Path, side: str) -> tuple[dict[str, Path], dict[str, str]]:
    """(name -> mesh file, name -> why an entry of that name could not be listed), through the
    one folder walk every command uses (natural order, hidden entries skipped, bad entries kept)."""
    from gencritic.io.listing import FolderError, walk_files

    try:
        listing = walk_files(folder, MESH_EXTENSIONS)
    except FolderError as exc:
        raise InputError(str(exc)) from None
    found: dict[str, Path] = {}
    for path in listing.files:
        key = path.relative_to(folder).with_suffix("").as_posix()
        if key in found:
            raise InputError(f"the {side} folder {folder} has two assets named {key!r}: {found[key].name} and "
                             f"{path.name}; keep one, or pair them with a manifest (generated,reference columns)")
        found[key] = path
    bad = {b.path.relative_to(folder).with_suffix("").as_posix(): f"{side} {b.describe(folder)}" for b in listing.bad}
    return found, bad


def pairs_from_folders(generated: Path, reference: Path) -> list[Pair]:
    from gencritic.io.listing import natural_key

    gen, gen_bad = _meshes_by_name(generated, "generated")
    ref, ref_bad = _meshes_by_name(reference, "reference")
    if not gen and not gen_bad:
        raise InputError(f"no meshes found in {generated} (looked for {', '.join(sorted(MESH_EXTENSIONS))})")
    if not ref and not ref_bad:
        raise InputError(f"no meshes found in {reference} (looked for {', '.join(sorted(MESH_EXTENSIONS))})")
    if not set(gen) & set(ref):
        raise InputError(f"no asset in {generated} has a namesake in {reference} (paired by path without the "
                         f"extension, e.g. {next(iter(gen or gen_bad))!r}); rename them or give a manifest with "
                         f"generated,reference columns")
    names = sorted(set(gen) | set(ref) | set(gen_bad) | set(ref_bad),
                   key=lambda n: tuple(natural_key(part) for part in n.split("/")))
    problems = {**ref_bad, **gen_bad}
    return [Pair(n, gen.get(n), ref.get(n), {"generated": _rel(gen.get(n), generated),
                                            "reference": _rel(ref.get(n), reference)}, problems.get(n))
            for n in names]


def _rel(path: Path | None, folder: Path) -> str:
    return "" if path is None else path.relative_to(folder).as_posix()


def _pick(columns: list[str], names: tuple[str, ...]) -> str | None:
    lowered = {c.lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def pairs_from_manifest(path: Path) -> list[Pair]:
    from gencritic.io.manifest import read_table

    rows = read_table(path)
    if not rows:
        raise InputError(f"manifest {path} has no rows")
    columns = list(rows[0].keys())
    gen_col, ref_col = _pick(columns, GENERATED_COLUMNS), _pick(columns, REFERENCE_COLUMNS)
    if gen_col is None or ref_col is None:
        raise InputError(f"manifest {path} needs 'generated' and 'reference' columns (one path each per row); "
                         f"found columns: {', '.join(columns)}")
    seen: Counter[str] = Counter()
    pairs = []
    for number, row in enumerate(rows, start=1):
        raw_gen, raw_ref = str(row.get(gen_col) or ""), str(row.get(ref_col) or "")
        base = raw_gen or f"row {number}"
        pair_id = base if not seen[base] else f"{base}#{seen[base]}"  # the same file twice: #1, #2 ...
        seen[base] += 1
        pairs.append(Pair(pair_id, _resolve(raw_gen, path.parent), _resolve(raw_ref, path.parent), dict(row)))
    return pairs


def _resolve(raw: str, base: Path) -> Path | None:
    if not raw:
        return None
    return Path(raw) if Path(raw).is_absolute() else base / raw


def collect_pairs(generated: Path, reference: Path | None) -> list[Pair]:
    """Dispatch on what was given; bad input is one :class:`InputError` line."""
    generated = Path(generated)
    if not generated.exists():
        raise InputError(f"input not found: {generated} (give a folder of generated meshes, a manifest with "
                         f"generated,reference columns, or a mesh file)")
    if generated.is_file() and generated.suffix.lower() in MANIFEST_SUFFIXES:
        if reference is not None:
            raise InputError(f"{generated} is a manifest: its 'reference' column names the references, so give no "
                             f"REFERENCE argument (got {reference})")
        return pairs_from_manifest(generated)
    if reference is None:
        raise InputError(f"give the references too: gencritic compare3d {generated} REFERENCE --out DIR "
                         f"(a folder paired by name, or a mesh file)")
    reference = Path(reference)
    if not reference.exists():
        raise InputError(f"reference not found: {reference}")
    if generated.is_dir() != reference.is_dir():
        raise InputError(f"give two folders or two mesh files, not one of each ({generated}, {reference})")
    if generated.is_dir():
        return pairs_from_folders(generated, reference)
    for p in (generated, reference):
        if p.suffix.lower() not in MESH_EXTENSIONS:
            raise InputError(f"{p} is not a mesh gencritic reads ({', '.join(sorted(MESH_EXTENSIONS))})")
    return [Pair(generated.stem, generated, reference, {"generated": str(generated), "reference": str(reference)})]
