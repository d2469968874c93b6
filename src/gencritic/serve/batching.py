"""A micro-batcher: requests that arrive within a few milliseconds go to the model together.

Why: a CLIP forward pass on 32 images costs far less than 32 passes on one, and a service
under load receives many small requests at once. Each request waits at most ``window_s``
for company (or until ``max_batch`` are queued), then the whole group goes through one
call of ``process`` in a worker thread, so the event loop keeps accepting requests while
the model runs. Requests are grouped by a key (metrics + model), because only requests
with the same settings can share a scoring call.

The batcher knows nothing about scoring: ``process(key, requests) -> results`` is given.
If ``process`` raises, every request of that group gets the exception.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


@dataclass
class _Group(Generic[Req, Res]):
    requests: list[Req] = field(default_factory=list)
    futures: list[asyncio.Future[Res]] = field(default_factory=list)
    timer: asyncio.TimerHandle | None = None
    due: bool = False  # its window has passed; it goes as soon as the model is free


@dataclass
class BatchStats:
    """Counters the tests and /health read: how many calls served how many requests."""

    calls: int = 0
    requests: int = 0
    largest: int = 0


class MicroBatcher(Generic[Req, Res]):
    """Group concurrent ``submit`` calls into batched ``process`` calls, one call at a time.

    While a call runs, new requests keep joining the open group (up to ``max_batch``), so
    under load batches grow by themselves instead of queueing as many tiny calls.
    """

    def __init__(self, process: Callable[[Hashable, Sequence[Req]], Sequence[Res]], window_s: float = 0.005,
                 max_batch: int = 32) -> None:
        if window_s < 0 or max_batch < 1:
            raise ValueError("window must be >= 0 and max_batch >= 1")
        self.process = process
        self.window_s = window_s
        self.max_batch = max_batch
        self.stats = BatchStats()
        self._open: dict[Hashable, _Group[Req, Res]] = {}
        self._full: deque[tuple[Hashable, _Group[Req, Res]]] = deque()
        self._busy = False
        self._task: asyncio.Future[None] | None = None

    async def submit(self, key: Hashable, request: Req) -> Res:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Res] = loop.create_future()
        group = self._open.get(key)
        if group is None:
            group = _Group()
            self._open[key] = group
            group.timer = loop.call_later(self.window_s, self._mark_due, key, group)
        group.requests.append(request)
        group.futures.append(future)
        if len(group.requests) >= self.max_batch:
            del self._open[key]
            if group.timer is not None:
                group.timer.cancel()
            self._full.append((key, group))
        self._pump()
        return await future

    def _mark_due(self, key: Hashable, group: _Group[Req, Res]) -> None:
        group.due = True
        self._pump()

    def _pump(self) -> None:
        """Start the next group if the model is free: full groups first, then due ones."""
        if self._busy:
            return
        chosen: tuple[Hashable, _Group[Req, Res]] | None = None
        if self._full:
            chosen = self._full.popleft()
        else:
            for key, group in self._open.items():
                if group.due:
                    chosen = (key, group)
                    del self._open[key]
                    break
        if chosen is None:
            return
        self._busy = True
        self._task = asyncio.ensure_future(self._run(*chosen))  # a reference keeps it from GC

    async def _run(self, key: Hashable, group: _Group[Req, Res]) -> None:
        try:
            results = await asyncio.to_thread(self._call, key, group.requests)
            if len(results) != len(group.requests):
                raise RuntimeError(f"batch processor returned {len(results)} results for "
                                   f"{len(group.requests)} requests")
        except Exception as exc:  # hand the failure to every waiter, never swallow it
            for fut in group.futures:
                if not fut.done():
                    fut.set_exception(exc)
        else:
            for fut, res in zip(group.futures, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
        finally:
            self._busy = False
            self._pump()

    def _call(self, key: Hashable, requests: Sequence[Req]) -> Sequence[Res]:
        self.stats.calls += 1
        self.stats.requests += len(requests)
        self.stats.largest = max(self.stats.largest, len(requests))
        return self.process(key, requests)

    def snapshot(self) -> dict[str, Any]:
        return {"calls": self.stats.calls, "requests": self.stats.requests, "largest_batch": self.stats.largest,
                "window_ms": round(self.window_s * 1000, 3), "max_batch": self.max_batch}
