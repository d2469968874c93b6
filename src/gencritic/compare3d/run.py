"""Run the evaluators over every pair and write the folder (see :mod:`gencritic.geometry.runs`).

The next pair is prepared (loaded, sampled, indexed) on a helper thread while the current one
is measured: mesh files are parsed in the loader's worker processes and the KD-tree queries
release the GIL, so the two overlap on a multi-core machine.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gencritic.compare3d.evaluators import PairEvaluator
from gencritic.compare3d.pairs import Pair
from gencritic.errors import ItemError
from gencritic.geometry.runs import RowRun, column_stats, software_versions

log = logging.getLogger("gencritic")

BASE_COLUMNS = ["pair_id", "generated", "reference"]
TAIL_COLUMNS = ["warnings", "success", "error"]


@dataclass
class Compare3dResult:
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path


def _columns(pairs: Sequence[Pair], evaluators: Sequence[PairEvaluator]) -> list[str]:
    carried: list[str] = []
    for pair in pairs:
        carried.extend(k for k in pair.columns if k not in carried)
    own = [c for e in evaluators for c in e.columns()]
    carried = [c for c in carried if c not in BASE_COLUMNS and c not in own and c not in TAIL_COLUMNS]
    return [*BASE_COLUMNS, *carried, *own, *TAIL_COLUMNS]


def _prepare(evaluators: Sequence[PairEvaluator], pair: Pair) -> list[Any]:
    """Each evaluator's preparation, or the ItemError it raised (kept to fail the row in order)."""
    out: list[Any] = []
    for evaluator in evaluators:
        try:
            out.append(evaluator.prepare(pair) if pair.missing() is None else None)
        except ItemError as exc:
            out.append(exc)
        except Exception as exc:  # a crash on this pair fails its row, not the run
            log.warning("preparing %s (%s) failed", pair.pair_id, evaluator.name, exc_info=True)
            out.append(ItemError(f"{type(exc).__name__}: {exc}".replace("\n", " ")))
    return out


def evaluate_pair(pair: Pair, evaluators: Sequence[PairEvaluator], prepared: list[Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One row (and its per-view rows): every evaluator's columns, or why it failed."""
    row: dict[str, Any] = {**pair.columns, "pair_id": pair.pair_id,
                           "generated": "" if pair.generated is None else str(pair.generated),
                           "reference": "" if pair.reference is None else str(pair.reference)}
    errors: list[str] = []
    warnings: list[str] = []
    views: list[dict[str, Any]] = []
    missing = pair.missing()
    if missing is not None:
        errors.append(missing)
    else:
        for evaluator, ready in zip(evaluators, prepared, strict=True):
            try:
                if isinstance(ready, ItemError):
                    raise ready
                result = evaluator.evaluate(pair, ready)
            except ItemError as exc:
                errors.append(f"{evaluator.name}: {exc}")
                continue
            except Exception as exc:  # a crash on this pair fails its row, not the run
                log.warning("evaluating %s (%s) failed", pair.pair_id, evaluator.name, exc_info=True)
                errors.append(f"{evaluator.name}: {type(exc).__name__}: {exc}".replace("\n", " "))
                continue
            row.update(result.values)
            warnings.extend(f"{evaluator.name}: {w}" for w in result.warnings)
            views.extend({"pair_id": pair.pair_id, **v} for v in result.views)
    row.update({"warnings": "; ".join(warnings), "success": not errors, "error": "; ".join(errors)})
    return row, views


def run_compare3d(pairs: Sequence[Pair], evaluators: Sequence[PairEvaluator], out_dir: Path,
                  overwrite: bool = False, on_row: Callable[[dict[str, Any]], None] | None = None) -> Compare3dResult:
    """Evaluate every pair not already in ``out_dir`` (resume), then write the canonical outputs."""
    started = time.perf_counter()
    settings = {e.name: e.settings() for e in evaluators}
    columns = _columns(pairs, evaluators)
    numeric = [c for e in evaluators for c in e.numeric_columns()]
    run = RowRun(out_dir, {"compare3d": settings}, columns, numeric, overwrite=overwrite)
    todo = [p for p in pairs if p.pair_id not in run.done]
    all_views: list[dict[str, Any]] = []
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="gencritic-compare3d") as ahead:
        pending: Future[list[Any]] | None = ahead.submit(_prepare, evaluators, todo[0]) if todo else None
        for index, pair in enumerate(todo):
            assert pending is not None
            prepared = pending.result()
            pending = ahead.submit(_prepare, evaluators, todo[index + 1]) if index + 1 < len(todo) else None
            row, views = evaluate_pair(pair, evaluators, prepared)
            run.add(pair.pair_id, row, views)
            all_views.extend(views)
            if on_row is not None:
                on_row(row)
    order = [p.pair_id for p in pairs]
    rows = run.rows(order)
    succeeded = sum(1 for r in rows if r.get("success"))
    summary = {
        "command": "compare3d",
        "pairs": len(rows),
        "successes": succeeded,
        "success_rate": succeeded / len(rows) if rows else None,
        "metrics": column_stats(rows, numeric),
        "settings": settings,
        "versions": software_versions(),
        "wall_time_s": time.perf_counter() - started,
    }
    rows = run.finish(order, summary)
    if all_views:  # views of pairs from an earlier (resumed) run are in the journal too
        from gencritic.io.tables import write_table

        records = run.store.records()
        view_rows = [v for i in order if i in records for v in records[i].get("views", [])]
        view_columns = list(dict.fromkeys(k for v in view_rows for k in v))
        write_table(view_rows, view_columns, out_dir / "views.csv")
    return Compare3dResult(rows, summary, out_dir)
