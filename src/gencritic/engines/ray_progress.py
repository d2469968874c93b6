"""What the driver of a Ray run has seen: items per node, object fetches per node, throughput.

Why its own object: on a cluster the question while a run goes is "are all my nodes working, and
how fast", and after it "which node did what, and what did it download" (a node that fetched
nothing was idle or read a stale cache). The same counts feed the progress line and the
``engine`` entry of ``summary.json``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class NodeCounts:
    """One node's share of a run, as its chunks reported it."""

    chunks: int = 0
    items: int = 0
    seconds: float = 0.0  # time its actors spent in chunks
    fetch: dict[str, int] = field(default_factory=dict)  # objects downloaded, bytes, cache hits, checks

    def as_dict(self) -> dict[str, Any]:
        return {"chunks": self.chunks, "items": self.items, "busy_s": round(self.seconds, 3), "fetch": dict(self.fetch)}


class RayProgress:
    """Counts chunks as they arrive; a progress bar on a terminal (rich), silent otherwise."""

    def __init__(self, total: int, done: int, enabled: bool, clock: Callable[[], float] = time.perf_counter) -> None:
        self.total = total
        self.done = done  # finished before this run (resumed) or in it
        self.scored = 0  # finished in this run
        self.duplicates = 0
        self.nodes: dict[str, NodeCounts] = {}
        self.clock = clock
        self.started = clock()
        self.first_result: float | None = None
        self.start_wall: float | None = None  # time.time() when the engine handed Ray its work
        self.first_ready_wall: float | None = None  # the first actor ready to score (time.time())
        self.enabled = enabled
        self._bar: Any = None
        self._task: Any = None

    def mark_start(self) -> None:
        """The engine hands Ray its work now (after connecting): actor start-up is counted from here."""
        self.start_wall = time.time()

    def chunk(self, node: str, items: int, duplicates: int, seconds: float, fetch: dict[str, int],
              ready_at: float | None = None) -> None:
        """A chunk's result reached the driver: ``items`` new records, ``duplicates`` already journaled;
        ``ready_at``: when the actor that scored it had its models loaded (``time.time()``)."""
        if self.first_result is None:
            self.first_result = self.clock()
        if ready_at is not None and (self.first_ready_wall is None or ready_at < self.first_ready_wall):
            self.first_ready_wall = float(ready_at)
        counts = self.nodes.setdefault(node, NodeCounts())
        counts.chunks += 1
        counts.items += items
        counts.seconds += seconds
        for key, value in fetch.items():
            counts.fetch[key] = counts.fetch.get(key, 0) + int(value)
        self.scored += items
        self.done += items
        self.duplicates += duplicates
        if self._bar is not None:
            self._bar.update(self._task, completed=self.done, description=self.describe())

    def rate(self) -> float | None:
        """Items per second scored in this run, since the engine started its work."""
        elapsed = self.clock() - self.started
        return self.scored / elapsed if self.scored and elapsed > 0 else None

    def describe(self) -> str:
        rate = self.rate()
        speed = f", {rate:.1f} items/s" if rate else ""
        return f"ray: {len(self.nodes)} node(s){speed}"

    def summary(self) -> dict[str, Any]:
        """The ``engine`` entry's share: per node, throughput, time to the first result."""
        rate = self.rate()
        return {
            "nodes": {node[:12]: c.as_dict() for node, c in sorted(self.nodes.items())},
            "items_per_s": None if rate is None else round(rate, 3),
            "first_result_s": None if self.first_result is None else round(self.first_result - self.started, 3),
            # Ray's start-up: actor processes, imports and model loads until the first actor could score
            "actor_startup_s": None if self.first_ready_wall is None or self.start_wall is None
            else round(max(0.0, self.first_ready_wall - self.start_wall), 3),
            "duplicates_dropped": self.duplicates,
        }

    def __enter__(self) -> RayProgress:
        self.started = self.clock()
        if self.enabled and sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True))
            self._bar.__enter__()
            self._task = self._bar.add_task(self.describe(), total=self.total, completed=self.done)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
