"""Read a results folder into plain rows and decide what each column is.

A report must work on any folder ``gencritic score`` wrote, including ones from older runs
and ones a user edited (added a ``mos`` column, say). So the column roles are decided from
the data and ``summary.json``, never assumed: metric columns are those the summary lists,
human-rating columns are numeric columns named like ``mos*``/``dmos*``/``*human*``/``*rating*``,
and group-by columns are text columns with a handful of distinct values.
"""

from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.io.fsnames import CSV_ERRORS

HUMAN_PATTERN = re.compile(r"^d?mos|human|rating", re.IGNORECASE)
BOOKKEEPING = {"success", "error", "warnings", "num_views", "num_views_scored", "prompt_tokens_cut", "item_id"}
MAX_GROUPS = 60


@dataclass
class ResultsData:
    """Everything a report shows, read once."""

    folder: Path
    columns: list[str]
    rows: list[dict[str, Any]]
    views: list[dict[str, Any]]
    summary: dict[str, Any]
    items: dict[str, dict[str, Any]] = field(default_factory=dict)  # item_id -> {"path", "kind"} from the journal
    metric_columns: list[str] = field(default_factory=list)
    human_columns: list[str] = field(default_factory=list)
    group_columns: list[str] = field(default_factory=list)
    higher_is_better: dict[str, bool] = field(default_factory=dict)

    @property
    def primary(self) -> str | None:
        head = self.summary.get("primary_metric")
        if head in self.metric_columns:
            return str(head)
        return self.metric_columns[0] if self.metric_columns else None

    def values(self, column: str) -> list[float]:
        return [v for v in (r.get(column) for r in self.rows) if isinstance(v, float) and not math.isnan(v)]


def to_number(text: Any) -> Any:
    """CSV cell -> float when it is a number (empty -> NaN), else the text unchanged."""
    if text is None:
        return math.nan
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return float(text)
    s = str(text).strip()
    if s == "":
        return math.nan
    try:
        return float(s)
    except ValueError:
        return s


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    # CSV_ERRORS: file names that are not UTF-8 are written as their bytes (io/fsnames.py)
    with open(path, newline="", encoding="utf-8", errors=CSV_ERRORS) as fh:
        reader = csv.DictReader(fh)
        columns = list(reader.fieldnames or [])
        return columns, [dict(r) for r in reader]


def _journal_items(folder: Path) -> dict[str, dict[str, Any]]:
    """Item paths and kinds, from the run's journal (results.csv does not carry absolute paths)."""
    journal = folder / ".gencritic" / "journal.jsonl"
    items: dict[str, dict[str, Any]] = {}
    if not journal.exists():
        return items
    for line in journal.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash
            item = rec.get("item", {})
            if "item_id" in item:
                items[item["item_id"]] = {"path": item.get("path"), "kind": item.get("kind")}
    return items


def _is_numeric(rows: list[dict[str, Any]], column: str) -> bool:
    vals = [r.get(column) for r in rows]
    present = [v for v in vals if not (isinstance(v, float) and math.isnan(v))]
    return bool(present) and all(isinstance(v, float) for v in present)


def load_results(folder: str | Path) -> ResultsData:
    """Load ``results.csv`` (required), ``views.csv`` and ``summary.json`` (optional) of a run."""
    folder = Path(folder)
    results = folder / "results.csv"
    if not results.is_file():
        raise InputError(f"{folder} has no results.csv: give a folder written by `gencritic score --out`")
    columns, raw_rows = _read_csv(results)
    if "item_id" not in columns:
        raise InputError(f"{results} has no item_id column: is it a gencritic results file?")
    summary: dict[str, Any] = {}
    if (folder / "summary.json").is_file():
        summary = json.loads((folder / "summary.json").read_text(encoding="utf-8"))
    rows = []
    for raw in raw_rows:
        row = {c: to_number(raw.get(c)) for c in columns}
        row["item_id"] = raw.get("item_id", "")
        row["error"] = raw.get("error", "") or ""
        row["success"] = str(raw.get("success", "")).lower() == "true"
        rows.append(row)
    views: list[dict[str, Any]] = []
    if (folder / "views.csv").is_file():
        _, raw_views = _read_csv(folder / "views.csv")
        views = [{**v, "value": to_number(v.get("value"))} for v in raw_views]
    data = ResultsData(folder=folder, columns=columns, rows=rows, views=views, summary=summary,
                       items=_journal_items(folder))
    classify_columns(data)
    return data


def classify_columns(data: ResultsData) -> None:
    """Fill metric/human/group column lists and directions (see the module docstring)."""
    declared = data.summary.get("metrics") or {}
    metric_cols = [c for c in data.columns if c in declared]
    if not metric_cols:  # no summary: numeric columns that are not bookkeeping or ratings
        metric_cols = [c for c in data.columns if c not in BOOKKEEPING and not HUMAN_PATTERN.search(c)
                       and _is_numeric(data.rows, c)]
    data.metric_columns = metric_cols
    data.higher_is_better = {c: bool((declared.get(c) or {}).get("higher_is_better", True)) for c in metric_cols}
    data.human_columns = [c for c in data.columns if c not in metric_cols and c not in BOOKKEEPING
                          and HUMAN_PATTERN.search(c) and _is_numeric(data.rows, c)]
    groups = []
    for c in data.columns:
        if c in metric_cols or c in data.human_columns or c in BOOKKEEPING:
            continue
        distinct = {str(r.get(c)) for r in data.rows}
        if 1 <= len(distinct) <= min(MAX_GROUPS, max(1, len(data.rows))) and (len(distinct) < len(data.rows)
                                                                                or c in ("model", "settings_id")):
            groups.append(c)
    data.group_columns = groups


def group_means(data: ResultsData, column: str) -> list[dict[str, Any]]:
    """Leaderboard of ``column``'s groups: n and the mean of every metric over successful rows,
    best first by the primary metric."""
    buckets: dict[str, list[dict[str, Any]]] = {}
    for r in data.rows:
        buckets.setdefault(str(r.get(column)), []).append(r)
    board = []
    for name, rows in buckets.items():
        entry: dict[str, Any] = {"group": name, "n": len(rows), "successes": sum(1 for r in rows if r["success"])}
        for m in data.metric_columns:
            vals = [r[m] for r in rows if r["success"] and isinstance(r.get(m), float) and not math.isnan(r[m])]
            entry[m] = sum(vals) / len(vals) if vals else None
        board.append(entry)
    primary = data.primary
    if primary:
        sign = -1.0 if data.higher_is_better.get(primary, True) else 1.0
        board.sort(key=lambda e: (e[primary] is None, sign * (e[primary] or 0.0), e["group"]))
    return board


def ranked(data: ResultsData, column: str) -> list[dict[str, Any]]:
    """Successful rows with a value in ``column``, best first."""
    rows = [r for r in data.rows if r["success"] and isinstance(r.get(column), float) and not math.isnan(r[column])]
    return sorted(rows, key=lambda r: r[column], reverse=data.higher_is_better.get(column, True))
