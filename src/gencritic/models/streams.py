"""Run a model's micro-batches on CPU in parallel streams: one thread per core, each running
whole forward passes, instead of every operator split across all cores.

Why: torch parallelises *inside* each operator and synchronises its threads after every one.
For a small vision transformer at 16 images per call (ViT-B/32: 800 tokens of width 768) the
splitting and the barriers cost a sizeable share of the time. Measured on a 2-core CPU,
5 interleaved rounds of 64 images: torch's 2 threads 9.9 images/s (median), two
single-threaded streams 11.4 (+15%); micro-batches of 8 per stream gave 11.8. This is the
"throughput mode" CPU inference servers use (one instance per core).

The numbers do not depend on the threads: a micro-batch gives bit-identical embeddings in a
stream or on all of torch's threads (``tests/test_streams.py``, HF and open_clip models). How
the images are split into micro-batches is fixed by their count and the number of streams
(:func:`split_evenly`), so a run is reproducible; a different split may move the last float32
bit, as any change of batch size may (for full-size ViT-B/32 it did not: 8 vs 16 images gave
identical rows).

Texts go the same way: a batch of texts is split evenly over the streams (+9% texts/s on 512
captions with ViT-B/32's text tower), each part padded to its own longest text.

``GENCRITIC_CPU_STREAMS``: ``auto`` (default: one stream per torch thread), or a whole number
(``1`` turns streams off: every call uses all of torch's threads).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import torch

from gencritic.errors import InputError

T = TypeVar("T")
R = TypeVar("R")

_lock = threading.Lock()
_pools: dict[int, ThreadPoolExecutor] = {}


def cpu_streams() -> int:
    """Streams a CPU encoder may use (``GENCRITIC_CPU_STREAMS``; default one per torch thread)."""
    env = os.environ.get("GENCRITIC_CPU_STREAMS", "auto").strip().lower()
    if env == "auto":
        return max(1, torch.get_num_threads())
    try:
        value = int(env)
    except ValueError:
        value = 0
    if value < 1:
        raise InputError(f"GENCRITIC_CPU_STREAMS must be 'auto' or a whole number of at least 1 (1 = off), "
                         f"got {os.environ.get('GENCRITIC_CPU_STREAMS')!r}")
    return value


def _pool(size: int) -> ThreadPoolExecutor:
    """Long-lived stream threads (per size): a thread keeps its OpenMP team and MKL buffers warm."""
    with _lock:
        pool = _pools.get(size)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="gencritic-stream")
            _pools[size] = pool
        return pool


def map_in_streams(fn: Callable[[T], R], chunks: Sequence[T], streams: int) -> list[R]:
    """``[fn(c) for c in chunks]``, computed on up to ``streams`` threads, results in order.

    Torch's threads are shared out between the streams (at least one each), so the machine is
    never oversubscribed. Each stream runs under ``torch.inference_mode`` (it is thread-local).
    With one stream or one chunk this is the plain loop on the calling thread.
    """
    n = min(streams, len(chunks))
    if n <= 1:
        return [fn(c) for c in chunks]
    total = torch.get_num_threads()
    per_stream = max(1, total // n)

    def job(chunk: T) -> R:
        torch.set_num_threads(per_stream)  # OpenMP's and MKL's thread counts are per calling thread
        with torch.inference_mode():
            return fn(chunk)

    try:
        return list(_pool(n).map(job, chunks))
    finally:
        # set_num_threads also records the count new threads start with: give it back
        torch.set_num_threads(total)


def split_evenly(n: int, max_size: int, streams: int) -> list[slice]:
    """Slices of ``range(n)`` of at most ``max_size`` items, as even as possible, and (when there
    are enough items) a multiple of ``streams`` of them, so no stream idles while another
    finishes a larger share: 24 images on 2 streams are 12 + 12, not 16 + 8."""
    if n <= 0:
        return [slice(0, 0)]
    count = -(-n // max(1, max_size))
    if streams > 1:  # at least one slice per stream, then a whole number of rounds
        count = min(n, -(-max(count, streams) // streams) * streams)
    base, extra = divmod(n, count)
    bounds = [0]
    for i in range(count):
        bounds.append(bounds[-1] + base + (1 if i < extra else 0))
    return [slice(a, b) for a, b in itertools.pairwise(bounds)]
