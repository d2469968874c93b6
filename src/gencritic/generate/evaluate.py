"""Judge finished generations against their source images and rank the configurations.

Each complete job becomes a mesh :class:`~gencritic.items.Item` whose reference is the
(workdir copy of the) image it was generated from. Scoring is the normal pipeline
(:func:`gencritic.scoring.score`): rendered views, ``clip_i2i`` = CLIP image-image
similarity of each view to the input image, averaged over views. Jobs whose image has a
prompt (a sidecar ``.txt``) are also scored with text metrics (``clip`` by default);
jobs without one are not, rather than failing rows for a missing prompt.

A kit (``image_to_kit``) is judged as the object it is: its assembled mesh when the API gives
one, else all its parts drawn together as one asset (a ``.kit.json`` beside them, see
:mod:`gencritic.mesh.kit`): scoring one part, or the parts one by one, would judge an object
nobody asked for. ``num_parts`` says how many files were drawn together; per-part scores are
written only when asked (``per_part``), to their own file.

The leaderboard has one row per configuration and counts every job, including those that
failed to generate or to score: a generator that fails half its inputs does not get to
rank on the half that worked without saying so.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gencritic.atomic import atomic_write_text
from gencritic.errors import InputError
from gencritic.generate.matrix import JobConfig
from gencritic.generate.tracker import JobRow
from gencritic.io.tables import write_table
from gencritic.items import Item

IMAGE_METRIC = "clip_i2i"
LEADERBOARD_COLUMNS = ["rank", "config", "description", "jobs", "generated", "failed_generation", "scored",
                       "failed_scoring", "scored_with_warnings"]
KIT_FILE = "parts.kit.json"  # written beside a kit's parts when the API gave no assembled mesh


@dataclass
class EvalResult:
    """Rows per job, the leaderboard and where they were written."""

    job_rows: list[dict[str, Any]]
    job_columns: list[str]
    leaderboard: list[dict[str, Any]]
    leaderboard_columns: list[str]
    out_dir: Path


def main_file(row: JobRow) -> dict[str, Any] | None:
    """The file record of a job's whole-object mesh (a kit's assembled mesh, not its parts), or None."""
    meshes = sorted((f for f in row.files if f.get("kind") == "mesh"), key=lambda f: int(f.get("index", 0)))
    return meshes[0] if meshes else None


def part_files(row: JobRow) -> list[dict[str, Any]]:
    """The file records of a kit's parts, in the API's order."""
    return sorted((f for f in row.files if f.get("kind") == "part"), key=lambda f: int(f.get("index", 0)))


@dataclass(frozen=True)
class JobAsset:
    """What a job is scored on: a mesh file, or a kit file drawing its parts together."""

    path: Path
    num_parts: int  # mesh files drawn together: 1 for a whole mesh
    sha256: str  # of the content: a regenerated job gets a new item id, so it is never served an old score


def job_asset(row: JobRow) -> JobAsset | None:
    """The whole object of a finished job: its mesh, or (a kit answered with parts only) a kit file
    beside the parts naming them all, written now if needed; None when there is nothing to draw."""
    record = main_file(row)
    if record is not None:
        return JobAsset(Path(str(record["path"])), 1, str(record["sha256"]))
    parts = part_files(row)
    if not parts:
        return None
    from gencritic.mesh.kit import write_kit

    paths = [Path(str(p["path"])) for p in parts]
    kit = write_kit(paths[0].parent / KIT_FILE, paths)
    sha = hashlib.sha256("\n".join(str(p["sha256"]) for p in parts).encode()).hexdigest()
    return JobAsset(kit, len(parts), sha)


def _job_columns(row: JobRow) -> dict[str, Any]:
    return {"job_id": row.job_id, "image": row.image_name, "config": row.config, "image_sha256": row.image_sha256}


def job_items(rows: Sequence[JobRow]) -> list[Item]:
    """Items for every complete job with a mesh (or a kit's parts) on disk.

    The item id carries the content's sha256: the scoring pipeline resumes by item id, and a job
    that was cleaned and generated again must be scored again, not served its old number.
    """
    items = []
    for row in rows:
        if row.status != "complete":
            continue
        asset = job_asset(row)
        if asset is None:
            continue
        items.append(Item(item_id=f"{row.job_id}@{asset.sha256[:12]}", kind="mesh", path=asset.path,
                          prompt=row.prompt, reference=Path(row.image_copy), columns=_job_columns(row)))
    return items


def part_items(rows: Sequence[JobRow]) -> list[Item]:
    """One item per part of every complete kit (for per-part scores, asked for explicitly)."""
    items = []
    for row in rows:
        if row.status != "complete":
            continue
        for part in part_files(row):
            index = int(part.get("index", 0))
            items.append(Item(item_id=f"{row.job_id}#part-{index:02d}@{str(part['sha256'])[:12]}", kind="mesh",
                              path=Path(str(part["path"])), prompt=row.prompt, reference=Path(row.image_copy),
                              columns={**_job_columns(row), "part": index}))
    return items


def metric_columns(spec: str) -> list[str]:
    """Output columns of a metric spec, from the registry (so new metrics need no change here)."""
    from gencritic.metrics.registry import all_metrics

    name = spec.partition(":")[0].strip().lower()
    cls = all_metrics().get(name)
    if cls is None:
        raise InputError(f"unknown metric {name!r} (see `gencritic metrics`)")
    return list(cls.info.columns)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    return mean, math.sqrt(sum((v - mean) ** 2 for v in vals) / len(vals))


def build_leaderboard(rows: Sequence[JobRow], scored: dict[str, dict[str, Any]], configs: dict[str, JobConfig],
                      value_columns: Sequence[str]) -> list[dict[str, Any]]:
    """One row per configuration, best first by the first value column (pure)."""
    board: list[dict[str, Any]] = []
    for name in sorted({r.config for r in rows}):
        jobs = [r for r in rows if r.config == name]
        generated = [r for r in jobs if r.status == "complete"]
        results = [scored[r.job_id] for r in generated if r.job_id in scored]
        ok = [s for s in results if s.get("success")]
        entry: dict[str, Any] = {
            "config": name, "description": configs[name].describe() if name in configs else "",
            "jobs": len(jobs), "generated": len(generated),
            "failed_generation": sum(1 for r in jobs if r.status == "failed"),
            "scored": len(ok), "failed_scoring": len(results) - len(ok),
            "scored_with_warnings": sum(1 for s in ok if s.get("warnings")),
        }
        for col in value_columns:
            mean, std = _mean_std([float(s[col]) for s in results if isinstance(s.get(col), (int, float))])
            entry[f"{col}_mean"] = mean
            entry[f"{col}_std"] = std
        board.append(entry)
    if value_columns:
        key = f"{value_columns[0]}_mean"
        board.sort(key=lambda e: (e[key] is None, -(e[key] or 0.0), e["config"]))
    for i, entry in enumerate(board, 1):
        entry["rank"] = i
    return board


def to_markdown(board: Sequence[dict[str, Any]], columns: Sequence[str], title: str) -> str:
    """The leaderboard as a Markdown table (numbers to 4 decimals, missing as '–')."""
    def cell(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.4f}"
        return str(v).replace("|", "\\|")

    lines = [f"# {title}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(e.get(c)) for c in columns) + " |" for e in board]
    return "\n".join(lines) + "\n"


def _score_groups(items: Sequence[Item], out_dir: Path, prefix: str, model: str, text_metrics: Sequence[str],
                  device: str, render: dict[str, Any] | None, cache_dir: Path | None,
                  progress: bool) -> dict[str, dict[str, Any]]:
    """Score items (with prompts: image and text metrics; without: the image metric), each setup in
    its own resumable folder; the result rows by item id."""
    from gencritic.render.settings import render_settings
    from gencritic.scoring import ScoreOptions, score

    groups = [("with-prompt", [i for i in items if i.prompt], [IMAGE_METRIC, *text_metrics]),
              ("no-prompt", [i for i in items if not i.prompt], [IMAGE_METRIC])]
    scored: dict[str, dict[str, Any]] = {}
    for label, group, metrics in groups:
        if not group:
            continue
        options = ScoreOptions(metrics=list(metrics), model=model, device=device, cache_dir=cache_dir,
                               progress=progress, render=render_settings(render))
        # one resumable folder per scoring setup: another --model never collides with earlier results
        setup = hashlib.sha256(json.dumps(options.numeric_settings(), sort_keys=True, default=str).encode())
        run = score(group, out=out_dir / f"{prefix}-{label}-{setup.hexdigest()[:8]}", options=options)
        for result in run.rows:
            scored[str(result["item_id"])] = result
    return scored


def evaluate(rows: Sequence[JobRow], out_dir: Path, model: str, text_metrics: Sequence[str] = ("clip",),
             device: str = "auto", render: dict[str, Any] | None = None, cache_dir: Path | None = None,
             progress: bool = True, per_part: bool = False) -> EvalResult:
    """Score finished meshes (kits as whole objects) and write ``scores.csv``, ``leaderboard.csv`` and
    ``leaderboard.md``; with ``per_part``, also each kit part on its own in ``part_scores.csv``."""
    from gencritic.metrics.registry import all_metrics

    if IMAGE_METRIC not in all_metrics():
        raise InputError(f"metric {IMAGE_METRIC!r} is not available in this gencritic build; "
                         f"upgrade gencritic (see `gencritic metrics`)")
    items = job_items(rows)
    if not items:
        raise InputError("no finished meshes to evaluate yet: run `gencritic generate progress` until jobs are complete")
    configs = {r.config: JobConfig.from_json(r.config_json) for r in rows}
    image_cols = metric_columns(IMAGE_METRIC)
    text_cols = [c for m in text_metrics for c in metric_columns(m)]
    by_item = _score_groups(items, out_dir, "scores", model, text_metrics, device, render, cache_dir, progress)
    scored = {str(i.columns["job_id"]): by_item[i.item_id] for i in items if i.item_id in by_item}
    assets = {str(i.columns["job_id"]): i for i in items}
    parts_drawn = {r.job_id: (1 if main_file(r) else len(part_files(r))) for r in rows if r.job_id in assets}
    value_columns = image_cols + (text_cols if any(i.prompt for i in items) else [])
    job_columns = ["job_id", "image", "config", "status", "mesh", "num_parts", *value_columns, "success", "error",
                   "warnings"]
    job_rows: list[dict[str, Any]] = []
    for row in rows:
        s = scored.get(row.job_id, {})
        item = assets.get(row.job_id)
        job_rows.append({"job_id": row.job_id, "image": row.image_name, "config": row.config, "status": row.status,
                         "mesh": str(item.path) if item else "", "num_parts": parts_drawn.get(row.job_id),
                         **{c: s.get(c) for c in value_columns},
                         "success": s.get("success") if s else False,
                         "error": s.get("error") or row.error or ("" if s else f"not generated ({row.status})"),
                         "warnings": s.get("warnings") or ""})
    board = build_leaderboard(rows, scored, configs, value_columns)
    board_columns = LEADERBOARD_COLUMNS + [f"{c}_{stat}" for c in value_columns for stat in ("mean", "std")]
    out_dir.mkdir(parents=True, exist_ok=True)
    write_table(job_rows, job_columns, out_dir / "scores.csv")
    if per_part:
        parts = part_items(rows)
        by_part = _score_groups(parts, out_dir, "parts", model, text_metrics, device, render, cache_dir,
                                progress) if parts else {}
        part_rows = [{**{k: i.columns[k] for k in ("job_id", "image", "config", "part")}, "mesh": str(i.path),
                      **{c: by_part.get(i.item_id, {}).get(c) for c in value_columns},
                      "success": bool(by_part.get(i.item_id, {}).get("success")),
                      "error": by_part.get(i.item_id, {}).get("error") or "",
                      "warnings": by_part.get(i.item_id, {}).get("warnings") or ""} for i in parts]
        write_table(part_rows, ["job_id", "image", "config", "part", "mesh", *value_columns, "success", "error",
                                "warnings"], out_dir / "part_scores.csv")
    write_table(board, board_columns, out_dir / "leaderboard.csv")
    atomic_write_text(out_dir / "leaderboard.md", to_markdown(
        board, board_columns, f"Generation leaderboard ({IMAGE_METRIC} = CLIP image-image similarity of rendered "
                              f"views to the input image; model {model})"))
    return EvalResult(job_rows, job_columns, board, board_columns, out_dir)
