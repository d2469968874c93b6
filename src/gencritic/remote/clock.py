"""Time as an injected object, so retries and polling loops are testable without sleeping.

Everything in ``generate`` that waits or stamps a time goes through a :class:`Clock`. The
real one wraps ``time``; tests pass a fake that advances instantly and records each sleep,
which is how the backoff schedule (2, 4, 8 ... s) is asserted exactly.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Protocol


class Clock(Protocol):
    """Wall-clock seconds since the epoch, and a way to wait."""

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


def iso(ts: float | None) -> str | None:
    """Seconds since the epoch as an ISO-8601 UTC string (what the tracker stores)."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat(timespec="seconds")
