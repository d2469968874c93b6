"""When items are prepared and how they are grouped for the model: threads, bursts, batches.

The run's throughput lives here and nothing else does: items are decoded, rendered and
preprocessed in worker threads while (or between when) the model encodes, and grouped into
batches that never split an item's views.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import torch

from gencritic.errors import InputError
from gencritic.items import Item
from gencritic.models.device import resolve_device
from gencritic.prepare import PreparedItem


@dataclass(frozen=True)
class Prefetch:
    """How items are prepared (decoded, rendered, preprocessed) for the model.

    ``workers`` threads prepare items; ``overlap`` says whether they run *while* the model
    encodes (a GPU, or CPU cores torch does not use) or in bursts *between* encoder calls
    (a CPU whose cores torch already uses: running beside the encoder would take its cores).
    """

    workers: int
    overlap: bool


def resolve_prefetch(requested: int | None, device: str) -> Prefetch:
    """Pick the preparation threads by hardware; ``requested`` overrides the count.

    Measured on a 2-core CPU (benchmarks/bench_assets.py, ViT-B/32, 8 views/asset): threads
    preparing beside the encoder cost 8% per asset against preparing inline (649 vs 597 ms),
    because torch's threads lose their cores; two threads preparing in bursts while the encoder
    waits gained ~7% against inline, since loading, compositing and resizing are mostly
    single-threaded and otherwise leave a core idle.
    """
    if requested is not None and requested < 0:
        raise InputError("--workers must be 0 (prepare inline) or more")
    from gencritic.mesh.parallel import check_environment, load_processes
    from gencritic.models.streams import cpu_streams

    check_environment()  # a typo in the loader's variables is one line now, not a failed row per asset
    cpu_streams()  # the same for the encoder's
    spare = (os.cpu_count() or 1) - torch.get_num_threads()
    if resolve_device(device).type != "cpu":
        # each preparing thread waits on one mesh-loader process, so as many threads as
        # processes keep them all busy (not measured on a GPU machine yet: none was lent)
        auto, overlap = max(2, load_processes()), True
    elif spare > 0:
        auto, overlap = min(2, spare), True
    else:
        auto, overlap = torch.get_num_threads(), False
    return Prefetch(auto if requested is None else requested, overlap)


class Prefetcher:
    """Prepare items in worker threads, in order.

    Overlapping: a bounded window ahead of the scorer, while it encodes. Bursts: a group of
    items at once, all finished before the scorer gets any, so no preparation runs while the
    scorer encodes (the scorer only pulls items between encoder calls).
    """

    def __init__(self, items: Sequence[Item], prepare: Callable[[Item], PreparedItem], prefetch: Prefetch,
                 window: int) -> None:
        self.items = items
        self.prepare = prepare
        self.pool = (ThreadPoolExecutor(max_workers=prefetch.workers, thread_name_prefix="gencritic-load")
                     if prefetch.workers > 0 else None)
        self.overlap = prefetch.overlap
        self.burst = max(1, 2 * prefetch.workers)
        self.window = max(1, window)

    def _bursts(self, pool: ThreadPoolExecutor) -> Iterator[PreparedItem]:
        try:
            for start in range(0, len(self.items), self.burst):
                group = [pool.submit(self.prepare, item) for item in self.items[start:start + self.burst]]
                yield from [f.result() for f in group]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[PreparedItem]:
        if self.pool is None:  # inline
            for item in self.items:
                yield self.prepare(item)
            return
        if not self.overlap:
            yield from self._bursts(self.pool)
            return
        pending: list[Future[PreparedItem]] = []
        it = iter(self.items)
        try:
            for item in it:
                pending.append(self.pool.submit(self.prepare, item))
                if len(pending) >= self.window:
                    break
            while pending:
                done = pending.pop(0)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(self.pool.submit(self.prepare, nxt))
                yield done.result()
        finally:
            for f in pending:
                f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)


def batches(prepared: Iterator[PreparedItem], batch_size: int) -> Iterator[list[PreparedItem]]:
    """Group items so that a batch holds at least ``batch_size`` views (never splits an item)."""
    batch: list[PreparedItem] = []
    n_views = 0
    for p in prepared:
        batch.append(p)
        n_views += len(p.views)
        if n_views >= batch_size:
            yield batch
            batch, n_views = [], 0
    if batch:
        yield batch
