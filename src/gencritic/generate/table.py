"""How job state looks to a person: an image × configuration table and a one-line tally.

Kept apart from the CLI so the table is testable (it is built from tracker rows only) and
the command functions stay a few lines each.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from rich.table import Table

from gencritic.generate.tracker import STATUSES, JobRow

STYLE = {"pending": "dim", "submitting": "yellow", "running": "cyan", "downloading": "blue",
         "complete": "green", "failed": "red"}
MARK = {"pending": "·", "submitting": "↑", "running": "…", "downloading": "↓", "complete": "✓", "failed": "✗"}


def cell(row: JobRow) -> str:
    """One table cell: mark + status, the stage for chains, and a hint of trouble."""
    text = f"{MARK.get(row.status, '?')} {row.status}"
    if row.status in ("running", "submitting") and row.stage == "chat":
        text += " (chat)"
    if row.status == "complete":
        n = sum(1 for f in row.files if f.get("kind") == "part")
        if n:
            text += f" +{n} parts"
    elif row.last_error and row.status != "failed":
        text += " ⚠"
    return f"[{STYLE.get(row.status, '')}]{text}[/]"


def status_table(rows: Sequence[JobRow], title: str = "generation jobs") -> Table:
    """Images down, configurations across, in first-seen order."""
    configs = list(dict.fromkeys(r.config for r in rows))
    images: dict[str, str] = {}
    for r in rows:
        images.setdefault(r.image_sha256, f"{r.image_name} [dim]{r.image_sha256[:8]}[/]")
    grid = {(r.image_sha256, r.config): r for r in rows}
    table = Table(title=title, show_lines=False)
    table.add_column("image")
    for c in configs:
        table.add_column(c)
    for sha, label in images.items():
        table.add_row(label, *[cell(grid[(sha, c)]) if (sha, c) in grid else "" for c in configs])
    return table


def tally(rows: Sequence[JobRow]) -> str:
    counts = Counter(r.status for r in rows)
    return ", ".join(f"{counts[s]} {s}" for s in STATUSES if counts[s]) or "no jobs"


def problems(rows: Sequence[JobRow]) -> list[str]:
    """Lines for failed jobs (their error) and jobs waiting on a transient problem."""
    out = []
    for r in rows:
        if r.status == "failed":
            out.append(f"✗ {r.image_name} × {r.config}: {r.error}")
        elif r.last_error:
            out.append(f"⚠ {r.image_name} × {r.config} ({r.status}): {r.last_error}")
    return out
