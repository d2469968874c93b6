"""The service's small parts on their own: the micro-batcher and the path/key rules."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable, Sequence
from pathlib import Path

import pytest

from gencritic.serve.batching import MicroBatcher
from gencritic.serve.security import AccessDenied, Roots, check_client, is_loopback


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.calls: list[tuple[Hashable, list[int]]] = []
        self.delay = delay
        self.fail = fail
        self.threads: set[str] = set()

    def __call__(self, key: Hashable, reqs: Sequence[int]) -> list[int]:
        self.calls.append((key, list(reqs)))
        self.threads.add(threading.current_thread().name)
        if self.delay:
            time.sleep(self.delay)
        if self.fail:
            raise ValueError("model exploded")
        return [r * 10 for r in reqs]


def test_concurrent_requests_share_one_call() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, window_s=0.02, max_batch=64)

    async def run() -> list[int]:
        return await asyncio.gather(*(batcher.submit("k", i) for i in range(10)))

    assert asyncio.run(run()) == [i * 10 for i in range(10)]
    assert rec.calls == [("k", list(range(10)))]
    assert "MainThread" not in rec.threads  # the model runs off the event loop


def test_max_batch_and_keys_split_groups() -> None:
    rec = Recorder()
    batcher = MicroBatcher(rec, window_s=0.02, max_batch=4)

    async def run() -> list[int]:
        return await asyncio.gather(*(batcher.submit("a" if i % 2 else "b", i) for i in range(12)))

    assert asyncio.run(run()) == [i * 10 for i in range(12)]
    assert all(len(reqs) <= 4 for _, reqs in rec.calls)
    assert all(all((r % 2 == 1) == (key == "a") for r in reqs) for key, reqs in rec.calls)
    assert sorted(r for _, reqs in rec.calls for r in reqs) == list(range(12))


def test_arrivals_during_a_call_join_the_next_batch() -> None:
    rec = Recorder(delay=0.2)
    batcher = MicroBatcher(rec, window_s=0.001, max_batch=100)

    async def run() -> None:
        first = asyncio.ensure_future(batcher.submit("k", 0))
        await asyncio.sleep(0.05)  # the first call is running now
        rest = [asyncio.ensure_future(batcher.submit("k", i)) for i in range(1, 9)]
        await asyncio.gather(first, *rest)

    asyncio.run(run())
    assert [reqs for _, reqs in rec.calls] == [[0], list(range(1, 9))]


def test_failure_reaches_every_waiter() -> None:
    batcher = MicroBatcher(Recorder(fail=True), window_s=0.01)

    async def run() -> list[object]:
        return await asyncio.gather(*(batcher.submit("k", i) for i in range(3)), return_exceptions=True)

    results = asyncio.run(run())
    assert all(isinstance(r, ValueError) and "exploded" in str(r) for r in results)


def test_roots_confine(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.png").write_bytes(b"x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "s.png").write_bytes(b"x")
    (root / "linkdir").symlink_to(outside, target_is_directory=True)
    roots = Roots.of([root])
    assert roots.confine("sub/a.png") == (root / "sub" / "a.png").resolve()
    assert roots.confine("sub/../sub/a.png") == (root / "sub" / "a.png").resolve()
    assert roots.confine(str(root / "sub" / "a.png")) == (root / "sub" / "a.png").resolve()
    for bad, status in [("../outside/s.png", 403), ("linkdir/s.png", 403), (str(outside / "s.png"), 403),
                        ("../outside/nothing.png", 403), ("sub/nothing.png", 404), ("a\x00b", 400), ("", 400)]:
        with pytest.raises(AccessDenied) as info:
            roots.confine(bad)
        assert info.value.status == status, bad
    with pytest.raises(AccessDenied, match="--root"):
        Roots.of([]).confine("sub/a.png")


def test_loopback_and_keys() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost") and is_loopback("127.8.9.1")
    assert not is_loopback("10.0.0.1") and not is_loopback("testclient") and not is_loopback(None)
    check_client("127.0.0.1", None, None)
    with pytest.raises(AccessDenied) as info:
        check_client("192.168.1.4", None, None)
    assert info.value.status == 403
    with pytest.raises(AccessDenied) as info:
        check_client("127.0.0.1", None, "key")  # a configured key binds loopback clients too
    assert info.value.status == 401
    check_client("192.168.1.4", "key", "key")
