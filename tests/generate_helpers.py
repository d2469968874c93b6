"""Shared pieces of the generation tests: a fake clock that records sleeps, and a runner
wired to the fake CSM server with short timeouts."""

from __future__ import annotations

import random
from pathlib import Path

from gencritic.generate.keys import ApiKey
from gencritic.generate.retry import RetryPolicy
from gencritic.generate.runner import GenerateSettings, Runner, backend_factory


class FakeClock:
    """Advances instantly; ``sleeps`` is the exact schedule the code asked for."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.t = start
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds


class ZeroRandom(random.Random):
    """rng.random() == 0: backoff without jitter, so the schedule is exactly 2, 4, 8."""

    def random(self) -> float:
        return 0.0


def make_runner(workdir: Path, api_url: str, key: str, clock: FakeClock, timeout_s: float = 0.5,
                formats: tuple[str, ...] = ("glb",)) -> Runner:
    settings = GenerateSettings(workdir=workdir, api_url=api_url, request_timeout_s=timeout_s,
                                download_timeout_s=timeout_s, poll_interval_s=30.0, formats=formats,
                                policy=RetryPolicy())
    return Runner(settings, clock, backend_factory(settings, clock, lambda: ApiKey(key), ZeroRandom()))
