"""The Toys4k CLIP-score protocol (TRELLIS evaluation set): metadata -> items -> score -> the
seed's table and summary.

Metadata: TRELLIS-500K's ``Toys4k.csv`` (3,229 rows) with columns ``sha256``,
``file_identifier`` (the asset's path inside ``toys4k_blend_files``, e.g.
``airplane/airplane_000/airplane_000.blend``), ``aesthetic_score`` and ``captions`` (a JSON
list of strings). Assets are found under ``--root`` in this order (first hit wins):

1. ``ROOT/<file_identifier>`` when it is itself a mesh file, the ``.blend`` as Toys4k ships it
   included (read through the user's Blender: :mod:`gencritic.mesh.blend`);
2. ``ROOT/<file_identifier>`` with its suffix swapped for .glb, .gltf, .obj, .ply (the .obj
   or .glb tree converted from the .blend files keeps the same relative paths);
3. the only mesh file in ``ROOT/<folder of file_identifier>`` (e.g. ``.../airplane_000/mesh.obj``),
   or the one whose stem is the identifier's stem, then ``mesh.*``/``model.*``;
4. ``ROOT/<sha256>.<ext>`` or the only mesh in ``ROOT/<sha256>/`` (content-addressed dumps).

The same search is tried with a leading ``toys4k_blend_files/`` or ``toys4k_obj_files/``
removed or added. An asset that is not found is a failed row naming where it looked. The
identifier's own file (the .blend as shipped) must have the metadata's sha256, as TRELLIS's
toolkit checks; one that differs is a failed row unless ``verify_sha256`` is off.

Caption rule (``--caption``): ``longest`` (default: the most detailed caption, i.e. the most
characters; ties go to the earlier one), ``first`` (the list's first), ``mean`` (the asset's
score is the mean over all its captions of the mean over views). Rows with no caption fail.

Score: per asset, the mean over valid rendered views of cos(image, caption) with the
``toys4k8`` rig (yaw 0..315 step 45, pitch 30°, radius 2, FoV 40°, 512², bbox-normalised);
``mean_clip_score`` is the mean over successful assets, ``mean_clip_score_scaled`` is ×100
(what papers print).

Generated assets (``--generated DIR``, text-to-3D results for the rows' captions): each row's
generated asset is found in DIR by the same search (``DIR/<sha256>.glb``, ``DIR/<sha256>/``, or the
identifier's own relative path); its renders get the CLIP score above, and all of them are
compared with renders of the dataset's own assets (every row whose asset is found under
``--root``, each file once, drawn with the same settings) by Fréchet and kernel distances on
Inception-v3 and DINOv2 features: TRELLIS' Toys4k columns ``CLIP``, ``FD_incep``, ``KD_incep``,
``FD_dinov2``, ``KD_dinov2`` (:mod:`gencritic.metrics.set_distances`). The reference set is written
to ``OUT/reference_assets.csv``; its renders and features are cached like any view's.
"""

from __future__ import annotations

import ast
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.hashing import sha256_file
from gencritic.items import MESH_EXTENSIONS, Item
from gencritic.jsonio import dumps_strict, write_json
from gencritic.models.loader import DEFAULT_CLIP_MODEL

SEED_COLUMNS = ["sha256", "file_identifier", "aesthetic_score", "clip_score", "num_views_rendered", "success",
                "caption_used", "error"]
SUMMARY_FIELDS = ["mean_clip_score", "mean_clip_score_scaled", "total_assets", "successful_evaluations",
                  "success_rate"]
CAPTION_RULES = ("longest", "first", "mean")
_SWAP_SUFFIXES = (".glb", ".gltf", ".obj", ".ply", ".stl", ".off")
_PREFIXES = ("toys4k_blend_files", "toys4k_obj_files", "toys4k_glb_files")


@dataclass(frozen=True)
class Toys4kRow:
    """One row of Toys4k's metadata."""

    sha256: str
    file_identifier: str
    aesthetic_score: float | None
    captions: tuple[str, ...]


def parse_captions(value: Any) -> tuple[str, ...]:
    """A JSON list (TRELLIS's format), a Python-literal list, or one plain caption."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    items: list[Any] | tuple[Any, ...] | None = None
    if isinstance(value, list | tuple):
        items = value
    else:
        text = str(value).strip()
        if not text:
            return ()
        if text.startswith("["):
            for parse in (json.loads, ast.literal_eval):
                try:
                    parsed = parse(text)
                except (ValueError, SyntaxError):
                    continue
                if isinstance(parsed, list):
                    items = parsed
                    break
        if items is None:
            items = [text]
    return tuple(c.strip() for c in (str(x) for x in items) if c.strip())


def choose_captions(captions: Sequence[str], rule: str = "longest") -> list[str]:
    """The caption(s) an asset is scored against under ``rule`` (see module docstring)."""
    if rule not in CAPTION_RULES:
        raise InputError(f"--caption {rule!r}: use {', '.join(CAPTION_RULES)}")
    if not captions:
        return []
    if rule == "first":
        return [captions[0]]
    if rule == "longest":
        return [max(captions, key=len)]  # max keeps the first of equal lengths
    return list(dict.fromkeys(captions))


def read_metadata(path: Path) -> list[Toys4kRow]:
    """Read Toys4k's metadata CSV; missing columns stop the run with the columns found."""
    import pandas as pd

    if not Path(path).is_file():
        raise InputError(f"Toys4k metadata not found: {path} (give TRELLIS-500K's Toys4k.csv / metadata.csv)")
    try:
        frame = pd.read_csv(path, dtype={"sha256": str, "file_identifier": str})
    except Exception as exc:
        raise InputError(f"cannot read {path} as CSV: {exc}") from None
    missing = [c for c in ("sha256", "file_identifier", "captions") if c not in frame.columns]
    if missing:
        raise InputError(f"{path} lacks column(s) {', '.join(missing)} (has: {', '.join(map(str, frame.columns))}); "
                         "Toys4k metadata needs sha256, file_identifier, aesthetic_score, captions")
    rows = []
    for rec in frame.to_dict("records"):
        aes = rec.get("aesthetic_score")
        aes_val = None if aes is None or (isinstance(aes, float) and math.isnan(aes)) else float(aes)
        rows.append(Toys4kRow(str(rec["sha256"]), str(rec["file_identifier"]), aes_val,
                              parse_captions(rec.get("captions"))))
    return rows


def _mesh_in_folder(folder: Path, stem: str) -> Path | None:
    if not folder.is_dir():
        return None
    meshes = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in MESH_EXTENSIONS)
    if len(meshes) == 1:
        return meshes[0]
    for preferred in (stem, "mesh", "model"):
        named = [p for p in meshes if p.stem == preferred]
        if named:
            return sorted(named, key=lambda p: _SWAP_SUFFIXES.index(p.suffix.lower())
                          if p.suffix.lower() in _SWAP_SUFFIXES else 99)[0]
    return None


def _identifier_variants(identifier: str) -> list[Path]:
    rel = Path(identifier)
    variants = [rel]
    if rel.parts and rel.parts[0] in _PREFIXES:
        variants.append(Path(*rel.parts[1:]))
    else:
        variants.extend(Path(p) / rel for p in _PREFIXES)
    return variants


def find_asset(root: Path, row: Toys4kRow) -> Path | None:
    """The asset file for ``row`` under ``root`` by the documented search order, or None."""
    for rel in _identifier_variants(row.file_identifier):
        direct = root / rel
        if direct.is_file() and direct.suffix.lower() in MESH_EXTENSIONS:
            return direct
        for suffix in _SWAP_SUFFIXES:
            candidate = direct.with_suffix(suffix)
            if candidate.is_file():
                return candidate
        found = _mesh_in_folder(direct.parent, direct.stem)
        if found is not None:
            return found
    for suffix in _SWAP_SUFFIXES:
        candidate = root / f"{row.sha256}{suffix}"
        if candidate.is_file():
            return candidate
    return _mesh_in_folder(root / row.sha256, row.sha256)


@dataclass
class Toys4kOptions:
    """Settings of a Toys4k run (the render ones default to the protocol's)."""

    caption: str = "longest"
    max_assets: int | None = None
    model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    workers: int | None = None  # None: auto (scoring.schedule.resolve_prefetch)
    rig: str = "toys4k8"
    resolution: int = 512
    up: str = "y"
    render: dict[str, Any] = field(default_factory=dict)  # any other render option
    cache_dir: Path | None = None
    overwrite: bool = False
    progress: bool = True
    verify_sha256: bool = True  # the identifier's own file must have the metadata's sha256
    generated: Path | None = None  # generated assets to compare with the dataset's (module docstring)
    inception: str | None = None  # Inception weights file (default: models.inception.find_weights)
    dinov2: str | None = None  # DINOv2 hub id or folder (default: ViT-L/14, as dgm-eval)


@dataclass
class Toys4kResult:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    results_csv: Path | None
    summary_json: Path | None


_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def sha256_mismatch(path: Path, row: Toys4kRow) -> str | None:
    """Why ``path`` is not the file ``row`` describes, or None. Checked only when ``path`` is the
    identifier's own file (the .blend as shipped): a converted or generated asset has other bytes.

    Why: the metadata's ``sha256`` is that of the .blend file (TRELLIS's toolkit checks it after
    extracting and skips files that differ). A re-saved, truncated or other-version file would
    otherwise be scored as if it were the dataset's."""
    if path.name != Path(row.file_identifier).name or not _SHA256_HEX.fullmatch(row.sha256.lower()):
        return None
    digest = sha256_file(path)
    if digest == row.sha256.lower():
        return None
    return (f"{path.name} has sha256 {digest[:16]}..., the metadata says {row.sha256[:16]}...: not the "
            f"file the metadata describes (re-saved, damaged or another version); re-extract it, or pass "
            f"--no-verify-sha256 to score it anyway")


def plan_items(rows: Sequence[Toys4kRow], root: Path, rule: str,
               verify_sha256: bool = True) -> tuple[list[Item], dict[str, str]]:
    """Items to score (one per asset and chosen caption) and the failures known before scoring."""
    items: list[Item] = []
    failures: dict[str, str] = {}
    for row in rows:
        captions = choose_captions(row.captions, rule)
        key = row.sha256
        if not captions:
            failures[key] = "no caption for this asset in the metadata"
            continue
        path = find_asset(root, row)
        if path is None:
            failures[key] = (f"asset file not found under {root} for {row.file_identifier} "
                             "(looked for the identifier with .glb/.gltf/.obj/.ply, a mesh in its folder, <sha256>.*)")
            continue
        mismatch = sha256_mismatch(path, row) if verify_sha256 else None
        if mismatch is not None:
            failures[key] = mismatch
            continue
        for k, caption in enumerate(captions):
            items.append(Item(item_id=f"{key}#{k}", kind="mesh", path=path, prompt=caption,
                              columns={"sha256": row.sha256, "caption_index": k}))
    return items, failures


def assemble(rows: Sequence[Toys4kRow], rule: str, failures: dict[str, str],
             scored: dict[str, list[dict[str, Any]]]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The seed's per-asset rows and summary from the pipeline's rows (pure)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        captions = choose_captions(row.captions, rule)
        caption_used = captions[0] if len(captions) == 1 else dumps_strict(captions, ensure_ascii=False)
        rec: dict[str, Any] = {"sha256": row.sha256, "file_identifier": row.file_identifier,
                               "aesthetic_score": row.aesthetic_score, "clip_score": None,
                               "num_views_rendered": 0, "success": False,
                               "caption_used": caption_used if captions else "", "error": ""}
        if row.sha256 in failures:
            rec["error"] = failures[row.sha256]
        else:
            parts = scored.get(row.sha256, [])
            errors = [p.get("error") for p in parts if not p.get("success")]
            if parts and not errors and len(parts) == len(captions):
                rec["clip_score"] = sum(float(p["clip_score"]) for p in parts) / len(parts)
                rec["num_views_rendered"] = int(parts[0].get("num_views_scored") or 0)
                rec["success"] = True
            else:
                rec["error"] = "; ".join(dict.fromkeys(str(e) for e in errors if e)) or "not scored (interrupted?)"
                rec["num_views_rendered"] = int(max((p.get("num_views_scored") or 0) for p in parts)) if parts else 0
        out.append(rec)
    ok = [r["clip_score"] for r in out if r["success"]]
    mean = sum(ok) / len(ok) if ok else None
    summary = {
        "mean_clip_score": mean,
        "mean_clip_score_scaled": None if mean is None else 100.0 * mean,
        "total_assets": len(out),
        "successful_evaluations": len(ok),
        "success_rate": (len(ok) / len(out)) if out else 0.0,
    }
    return out, summary


def run_toys4k(metadata: Path, root: Path, out: Path | None, options: Toys4kOptions | None = None,
               pool: Any = None) -> Toys4kResult:
    """Score Toys4k (or any metadata of the same shape) by the protocol; the API behind ``gencritic toys4k``.

    Writes ``OUT/toys4k_results.csv`` (the seed's columns), ``OUT/toys4k_summary.json`` (the
    seed's fields) and, from the scoring pipeline, ``OUT/scoring/`` (results, long-format
    ``views.csv`` with per-view scores, full ``summary.json``). Re-running resumes.
    """
    from gencritic.io.tables import write_table
    from gencritic.render.settings import parse_render_options
    from gencritic.scoring import ScoreOptions, score

    opts = options or Toys4kOptions()
    if opts.caption not in CAPTION_RULES:
        raise InputError(f"--caption {opts.caption!r}: use {', '.join(CAPTION_RULES)}")
    if opts.max_assets is not None and opts.max_assets < 1:
        raise InputError("--max-assets must be at least 1")
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"--root {root} is not a folder: give the folder holding the Toys4k assets")
    # the scoring run puts the render cache in CACHE_DIR/renders (none without a cache dir)
    render = parse_render_options({"rig": opts.rig, "resolution": opts.resolution, "up": opts.up,
                                   **opts.render})  # validated before any work
    rows = read_metadata(Path(metadata))
    if opts.max_assets is not None:
        rows = rows[:opts.max_assets]
    if not rows:
        raise InputError(f"{metadata} has no rows")
    metrics = ["clip"]
    reference: ReferenceSet | None = None
    if opts.generated is not None:
        if out is None:
            raise InputError("--generated needs --out: the reference set is written there")
        reference = reference_set(rows, root, opts, Path(out))
        metrics += distance_specs(reference.manifest, opts)
        items, failures = plan_items(rows, Path(opts.generated), opts.caption, verify_sha256=False)
    else:
        items, failures = plan_items(rows, root, opts.caption, opts.verify_sha256)

    scored: dict[str, list[dict[str, Any]]] = {}
    set_metrics: dict[str, Any] = {}
    if items:
        run = score(items, out=None if out is None else Path(out) / "scoring", pool=pool, options=ScoreOptions(
            metrics=metrics, model=opts.model, device=opts.device, dtype=opts.dtype, batch_size=opts.batch_size,
            workers=opts.workers, cache_dir=opts.cache_dir, overwrite=opts.overwrite, progress=opts.progress,
            render=render))
        for r in run.rows:
            scored.setdefault(str(r["sha256"]), []).append(r)
        set_metrics = {**run.summary.get("set_metrics", {}),
                       **{name: {"value": None, "error": f"unavailable: {why}"}
                          for name, why in (run.summary.get("unavailable_metrics") or {}).items()}}
    table, summary = assemble(rows, opts.caption, failures, scored)
    if reference is not None:
        summary.update(trellis_columns(summary, set_metrics, reference, Path(opts.generated or "")))
    results_csv = summary_json = None
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        results_csv = out / "toys4k_results.csv"
        summary_json = out / "toys4k_summary.json"
        write_table(table, SEED_COLUMNS, results_csv)
        write_json(summary_json, summary)
    return Toys4kResult(table, summary, results_csv, summary_json)


# -- generated assets against the dataset's (TRELLIS' Toys4k table) -----------------------------------

TRELLIS_COLUMNS = {"FD_incep": "fd_incep", "KD_incep": "kd_incep", "FD_dinov2": "fd_dinov2", "KD_dinov2": "kd_dinov2"}


@dataclass(frozen=True)
class ReferenceSet:
    """The dataset's own assets the generated ones are compared with."""

    manifest: Path
    paths: tuple[Path, ...]
    missing: dict[str, str]  # sha256 -> why the row's asset is not in the set


def reference_set(rows: Sequence[Toys4kRow], root: Path, opts: Toys4kOptions, out: Path) -> ReferenceSet:
    """Every row's dataset asset found under ``root`` (each file once), written as a manifest."""
    from gencritic.io.tables import write_table

    if opts.caption == "mean":
        raise InputError("--caption mean scores an asset once per caption, but the distances need each generated "
                         "asset's views once: use --caption longest or first with --generated")
    generated = Path(opts.generated or "")
    if not generated.is_dir():
        raise InputError(f"--generated {generated} is not a folder: give the folder of generated assets "
                         "(<sha256>.glb, <sha256>/, or the identifiers' own relative paths)")
    paths: dict[Path, None] = {}
    missing: dict[str, str] = {}
    for row in rows:
        path = find_asset(root, row)
        why = ("asset file not found under --root" if path is None
               else sha256_mismatch(path, row) if opts.verify_sha256 else None)
        if why is not None or path is None:
            missing[row.sha256] = why or "not found"
            continue
        paths.setdefault(path.resolve(), None)
    if len(paths) < 2:
        raise InputError(f"--root {root} holds {len(paths)} of the metadata's assets; the distances need at least 2 "
                         "reference assets")
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "reference_assets.csv"
    write_table([{"path": str(p)} for p in paths], ["path"], manifest)
    return ReferenceSet(manifest, tuple(paths), missing)


def distance_specs(manifest: Path, opts: Toys4kOptions) -> list[str]:
    """The four set-metric specs against ``manifest`` (their options are ``k=v;...``)."""
    for label, value in (("--out", str(manifest)), ("--inception", opts.inception), ("--dinov2", opts.dinov2)):
        if value and (";" in value or "," in value):
            raise InputError(f"{label} {value}: a path with ';' or ',' cannot name a metric option; move it")
    incep = f"ref={manifest}" + (f";model={opts.inception}" if opts.inception else "")
    dino = f"ref={manifest}" + (f";model={opts.dinov2}" if opts.dinov2 else "")
    return [f"fd_incep:{incep}", f"kd_incep:{incep}", f"fd_dinov2:{dino}", f"kd_dinov2:{dino}"]


def trellis_columns(summary: dict[str, Any], set_metrics: dict[str, Any], reference: ReferenceSet,
                    generated: Path) -> dict[str, Any]:
    """The summary fields of a ``--generated`` run: TRELLIS' column names, their sources and errors."""
    table: dict[str, float | None] = {"CLIP": summary["mean_clip_score_scaled"]}
    errors: dict[str, str] = {}
    for column, metric in TRELLIS_COLUMNS.items():
        entry = set_metrics.get(metric) or {"value": None, "error": "not computed (no generated asset was scored)"}
        table[column] = entry.get("value")
        if entry.get("error"):
            errors[column] = str(entry["error"])
    return {
        "table": table,
        "table_errors": errors,
        "table_conventions": {
            "CLIP": "mean over assets of the mean over views of cos(image, caption), x100",
            "FD_incep/KD_incep": "Inception-v3 pool3, clean-fid resize (299, PIL bicubic per channel in float)",
            "FD_dinov2/KD_dinov2": "DINOv2 CLS token after the final norm, 224x224 bicubic, ImageNet normalisation",
            "KD": "unbiased MMD^2, kernel (x.y/d + 1)^3, mean over 100 subsets of up to 1000 views; not scaled",
        },
        "generated": str(generated),
        "reference_assets": len(reference.paths),
        "reference_missing": reference.missing,
        "reference_manifest": str(reference.manifest),
        "set_metrics": {m: set_metrics.get(m) for m in TRELLIS_COLUMNS.values()},
    }
