"""CPU encoder streams: same bits as one call on torch's threads, really parallel, bad settings stop early."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import pytest
import torch
from PIL import Image

from gencritic.errors import InputError
from gencritic.models.loader import ModelPool
from gencritic.models.streams import cpu_streams, map_in_streams, split_evenly


@pytest.mark.parametrize(("n", "size", "streams", "expected"), [
    (0, 16, 2, [0]),
    (1, 16, 2, [1]),
    (16, 16, 2, [8, 8]),  # one micro-batch would leave a core idle
    (24, 16, 2, [12, 12]),  # not 16 + 8
    (33, 16, 2, [9, 8, 8, 8]),
    (40, 16, 1, [14, 13, 13]),
    (5, 16, 4, [2, 1, 1, 1]),
    (3, 16, 4, [1, 1, 1]),
])
def test_split_evenly_balances_the_streams(n: int, size: int, streams: int, expected: list[int]) -> None:
    parts = split_evenly(n, size, streams)
    assert [p.stop - p.start for p in parts] == expected
    assert parts[0].start == 0 and parts[-1].stop == n
    assert all(a.stop == b.start for a, b in itertools.pairwise(parts))


def test_map_in_streams_keeps_order_and_gives_threads_back() -> None:
    before = torch.get_num_threads()
    seen: set[int] = set()
    barrier = threading.Barrier(2, timeout=10)

    def work(i: int) -> int:
        seen.add(threading.get_ident())
        if i < 2:
            barrier.wait()  # the first two chunks can only both pass if they run at the same time
        assert torch.is_inference_mode_enabled()
        return i * i

    assert map_in_streams(work, list(range(6)), 2) == [i * i for i in range(6)]
    assert len(seen) == 2 and threading.get_ident() not in seen
    assert torch.get_num_threads() == before
    assert map_in_streams(lambda i: i + 1, [1, 2], 1) == [2, 3]  # one stream: the plain loop


@pytest.mark.parametrize("family", ["hf", "open_clip"])
def test_streams_give_bit_identical_embeddings(family: str, tiny_clip_dir: Path, tiny_open_clip: tuple[str, Path],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    model = str(tiny_clip_dir) if family == "hf" else "open_clip:{}@{}".format(*tiny_open_clip)
    backbone = ModelPool("cpu", "auto").clip(model)
    shape = backbone.preprocess(Image.new("RGB", (40, 40))).shape
    pixels = torch.randn(37, *shape, generator=torch.Generator().manual_seed(0))
    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "1")
    alone = torch.cat([backbone.encode_images(pixels[i:i + 1]) for i in range(len(pixels))])
    one_call = backbone.encode_images(pixels)
    threads: set[str] = set()
    original = backbone._encode_pixels

    def spy(x: torch.Tensor) -> torch.Tensor:
        threads.add(threading.current_thread().name)
        return original(x)

    monkeypatch.setattr(backbone, "_encode_pixels", spy)
    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "3")
    streamed = backbone.encode_images(pixels)
    assert torch.equal(streamed, one_call)  # same micro-batches (13 + 12 + 12), other threads: same bits
    assert threads and all(t.startswith("gencritic-stream") for t in threads)  # (parallel: the barrier test)
    # another split (4 streams: 10 + 9 + 9 + 9) may move the last float32 bit, as any batch size may
    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "4")
    torch.testing.assert_close(backbone.encode_images(pixels), alone, rtol=0, atol=1e-6)


def test_a_bad_streams_variable_stops_a_run_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.scoring.schedule import resolve_prefetch

    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "auto")
    assert cpu_streams() == torch.get_num_threads()
    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "4")
    assert cpu_streams() == 4
    for bad in ("0", "two"):
        monkeypatch.setenv("GENCRITIC_CPU_STREAMS", bad)
        with pytest.raises(InputError, match="GENCRITIC_CPU_STREAMS"):
            resolve_prefetch(None, "cpu")  # what `score` and `toys4k` call before loading models


def test_texts_in_streams_and_sorted_batches_match_one_at_a_time(tiny_clip_dir: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from gencritic.cache import EmbeddingCache
    from gencritic.views import RunContext, encode_texts_cached

    pool = ModelPool("cpu", "auto")
    backbone = pool.clip(str(tiny_clip_dir))
    texts = ["a cat", "a small red wooden toy car with four wheels", "a dog on grass", "x", "a blue cube on a table"]
    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "1")
    alone = torch.cat([backbone.encode_texts([t]) for t in texts])
    monkeypatch.setenv("GENCRITIC_CPU_STREAMS", "3")
    torch.testing.assert_close(backbone.encode_texts(texts), alone, rtol=0, atol=1e-6)
    ctx = RunContext(pool=pool, cache=EmbeddingCache.in_dir(None), default_model=str(tiny_clip_dir))
    got = encode_texts_cached(backbone, ctx, [*texts, texts[1]], batch_size=2)  # sorted, in batches of 2
    torch.testing.assert_close(got, torch.cat([alone, alone[1:2]]), rtol=0, atol=1e-6)  # the caller's order
