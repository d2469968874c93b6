"""``gencritic meshcheck``: one row of mesh health per asset (:mod:`.health`), and a summary.

Input: a mesh file, a folder (searched recursively; images in it — textures, renders — are not
assets and are skipped), or a manifest whose rows name meshes (``mesh``/``path``/``image`` ...
column; a row naming something that is not a mesh fails with that reason).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gencritic.errors import InputError, ItemError
from gencritic.geometry.health import HEALTH_COLUMNS, mesh_health
from gencritic.geometry.runs import RowRun, column_stats, software_versions
from gencritic.items import Item

log = logging.getLogger("gencritic")

NUMERIC = [c for c in HEALTH_COLUMNS if c not in ("watertight", "pbr_channels", "material_extensions",
                                                   "texture_resolution", "missing_files")]
METHOD_VERSION = "meshcheck-1"  # changes when a column's definition changes (guards resumed folders)


@dataclass
class MeshcheckResult:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path
    skipped: int  # non-mesh files a folder held


def collect_assets(source: Path) -> tuple[list[Item], int]:
    """(mesh items, how many non-mesh files of a folder were skipped)."""
    from gencritic.io.manifest import MANIFEST_SUFFIXES, collect_items

    source = Path(source)
    if not source.exists():
        raise InputError(f"input not found: {source} (give a mesh file, a folder of meshes or a manifest)")
    items = collect_items(source)
    if source.is_dir():
        meshes = [i for i in items if i.kind == "mesh"]
        if not meshes:
            raise InputError(f"no meshes found in {source} (it holds images only)")
        return meshes, len(items) - len(meshes)
    if source.suffix.lower() not in MANIFEST_SUFFIXES and items[0].kind != "mesh":
        raise InputError(f"{source} is not a mesh gencritic reads (.glb .gltf .obj .ply .stl .off .blend)")
    return items, 0


def check_asset(item: Item) -> dict[str, Any]:
    """The row of one asset: its health columns, or why there are none."""
    row: dict[str, Any] = {**item.columns, "asset": item.item_id, "path": str(item.path)}
    try:
        if item.error:  # the listing or manifest already showed it cannot be read
            raise ItemError(item.error)
        if item.kind != "mesh":
            raise ItemError(f"{item.path} is not a mesh file (meshcheck reads .glb .gltf .obj .ply .stl .off .blend)")
        row.update(mesh_health(item.path))
        row.update({"success": True, "error": ""})
    except ItemError as exc:
        row.update({"success": False, "error": str(exc)})
    except Exception as exc:  # a crash on one asset fails its row, not the run
        log.warning("checking %s failed", item.item_id, exc_info=True)
        row.update({"success": False, "error": f"{type(exc).__name__}: {exc}".replace("\n", " ")})
    return row


def run_meshcheck(source: Path, out_dir: Path, overwrite: bool = False,
                  on_row: Callable[[dict[str, Any]], None] | None = None) -> MeshcheckResult:
    started = time.perf_counter()
    items, skipped = collect_assets(source)
    carried: list[str] = []
    for item in items:
        carried.extend(k for k in item.columns if k not in carried and k not in ("image", "asset", "path"))
    columns = ["asset", "path", *carried, *HEALTH_COLUMNS, "success", "error"]
    run = RowRun(out_dir, {"meshcheck": METHOD_VERSION}, columns, NUMERIC, overwrite=overwrite)
    for item in items:
        if item.item_id in run.done:
            continue
        row = check_asset(item)
        run.add(item.item_id, row)
        if on_row is not None:
            on_row(row)
    order = [i.item_id for i in items]
    rows = run.rows(order)
    ok = [r for r in rows if r.get("success")]
    summary = {
        "command": "meshcheck",
        "assets": len(rows),
        "successes": len(ok),
        "success_rate": len(ok) / len(rows) if rows else None,
        "watertight": sum(1 for r in ok if r.get("watertight")),
        "with_self_intersections": sum(1 for r in ok if (r.get("self_intersections") or 0) > 0),
        "with_non_manifold_edges": sum(1 for r in ok if (r.get("non_manifold_edges") or 0) > 0),
        "with_degenerate_faces": sum(1 for r in ok if (r.get("degenerate_faces") or 0) > 0),
        "textured": sum(1 for r in ok if (r.get("textures") or 0) > 0),
        "columns": column_stats(rows, NUMERIC),
        "settings": {"method": METHOD_VERSION, "weld": "exact coordinate equality",
                     "degenerate_area": "1e-12 in the normalised frame (longest side 1)",
                     "self_intersections": "face pairs whose interiors cross (docs/3d_evaluation.md)"},
        "skipped_non_mesh_files": skipped,
        "versions": software_versions(),
        "wall_time_s": time.perf_counter() - started,
    }
    rows = run.finish(order, summary)
    return MeshcheckResult(rows, summary, Path(out_dir), skipped)
