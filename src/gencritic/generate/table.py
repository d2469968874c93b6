"""How job state looks to a person: an image × configuration table and a one-line tally.

Kept apart from the CLI so the table is testable (it is built from tracker rows only) and
the command functions stay a few lines each.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from gencritic.generate.tracker import STATUSES, JobRow

STYLE = {"pending": "dim", "submitting": "yellow", "unconfirmed": "magenta", "running": "cyan", "downloading": "blue",
         "complete": "green", "failed": "red"}
MARK = {"pending": "·", "submitting": "↑", "unconfirmed": "?", "running": "…", "downloading": "↓", "complete": "✓",
        "failed": "✗"}


def cell(row: JobRow) -> str:
    """One table cell: mark + status, the stage for chains, and a hint of trouble."""
    text = f"{MARK.get(row.status, '?')} {row.status}"
    if row.status in ("running", "submitting", "unconfirmed") and row.stage == "chat":
        text += " (chat)"
    if row.status == "complete":
        n = sum(1 for f in row.files if f.get("kind") == "part")
        if n:
            text += f" +{n} parts"
    elif row.last_error and row.status not in ("failed", "unconfirmed"):
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


def resolve_commands(row: JobRow, workdir: Path | None = None) -> list[str]:
    """The exact commands that move an ``unconfirmed`` job on, one per choice."""
    base = ["gencritic", "generate", "resolve", row.job_id]
    if workdir is not None:
        base += ["--workdir", str(workdir)]
    cmd = " ".join(shlex.quote(a) for a in base)
    return [f"{cmd} --resubmit             (it is not there: send it again)",
            f"{cmd} --forget               (stop tracking it; nothing is sent)",
            f"{cmd} --adopt SESSION_ID     (it is there: track that session)"]


def problems(rows: Sequence[JobRow], workdir: Path | None = None) -> list[str]:
    """Lines for failed jobs (their error), jobs that need the user (with the commands that
    resolve them) and jobs waiting on a transient problem."""
    out = []
    for r in rows:
        if r.status == "failed":
            out.append(f"✗ {r.image_name} × {r.config}: {r.error}")
        elif r.status == "unconfirmed":
            out.append(f"? {r.image_name} × {r.config} (unconfirmed): {r.last_error or 'the submission may exist'}. "
                       f"Look for a session with metadata.gencritic_token = {r.token} (e.g. in your CSM "
                       f"dashboard), then run one of:")
            out.extend(f"    {line}" for line in resolve_commands(r, workdir))
        elif r.last_error:
            out.append(f"⚠ {r.image_name} × {r.config} ({r.status}): {r.last_error}")
    return out
