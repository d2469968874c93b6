"""Which failures are worth retrying, and how long to wait between tries.

Hosted generators rate-limit hard (HTTP 429) and have bad minutes (5xx, resets, timeouts).
Those are retried: exponential backoff with jitter (2, 4, 8 ... s, capped at 30 s), at most
three retries per call, and a server's ``Retry-After`` wins over our own schedule. Anything
else (400, 401, 403, 404, validation errors) is the caller's mistake or a real refusal: it
fails at once with the API's own message, because retrying cannot fix it and only burns
quota. The schedule is a pure function and the waiting goes through an injected
:class:`~gencritic.remote.clock.Clock`, so tests assert the exact delays without sleeping.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from gencritic.remote.clock import Clock

log = logging.getLogger("gencritic.generate")

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429})


def response_message(response: Any, keys: Sequence[str] = ("message", "error", "detail", "errors")) -> str:
    """``HTTP <status>: <text>`` of a refused request, the text being the API's own: the first of
    ``keys`` its JSON body has (an ``{"error": {"message": ...}}`` object gives its message), else
    the start of the body, else the reason phrase; on one line, at most 500 characters."""
    try:
        data = response.json()
    except ValueError:  # json.JSONDecodeError is a ValueError
        data = None
    text = ""
    if isinstance(data, dict):
        for key in keys:
            value = data.get(key)
            if isinstance(value, dict) and isinstance(value.get("message"), str):
                value = value["message"]
            if value:
                text = value if isinstance(value, str) else json.dumps(value)
                break
    if not text:
        text = response.text.strip()[:300] or response.reason_phrase
    return f"HTTP {response.status_code}: {' '.join(text.split())[:500]}"


class ApiError(Exception):
    """A definitive refusal from the API (4xx other than 429, or a malformed answer).

    ``message`` is the API's own text (already redacted); the job fails with it.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class RetryableError(Exception):
    """A failure that may pass: 429, 5xx, timeout, connection reset.

    ``retry_after`` is the server's ``Retry-After`` in seconds when it sent one.
    """

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status


class Unconfirmed(Exception):
    """A submission may have reached the API (its answer was lost) and cannot be checked now.

    The job keeps its ``submitting`` state and token; the next pass looks it up again
    before anything is re-sent. Failing it instead could hide a session that exists.
    """


class RetriesExhausted(Exception):
    """Every try of a call failed with a retryable error; ``last`` is the final one."""

    def __init__(self, what: str, attempts: int, last: RetryableError) -> None:
        super().__init__(f"{what}: gave up after {attempts} attempts: {last}")
        self.attempts = attempts
        self.last = last


def is_retryable_status(status: int) -> bool:
    """429 and friends, and every 5xx; never other 4xx."""
    return status in RETRYABLE_STATUS or 500 <= status <= 599


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff settings. Defaults are the issue's contract: 2, 4, 8 s, cap 30 s, 3 retries."""

    base_s: float = 2.0
    cap_s: float = 30.0
    max_retries: int = 3
    jitter_s: float = 1.0  # uniform extra in [0, jitter_s): spreads many clients apart
    max_retry_after_s: float = 300.0  # a server asking for longer than this is not waited for

    def delay(self, retry_index: int, rand: float) -> float:
        """Wait before retry number ``retry_index`` (0-based): min(cap, base·2^i + jitter)."""
        return min(self.cap_s, self.base_s * (2.0 ** retry_index) + self.jitter_s * rand)


def parse_retry_after(value: str | None, now: float) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date; None if absent/garbled."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - now)


def call_with_retry(attempt: Callable[[], T], *, what: str, clock: Clock, policy: RetryPolicy | None = None,
                    rng: random.Random | None = None) -> T:
    """Run ``attempt`` until it returns, raises a non-retryable error, or retries run out.

    ``attempt`` signals a transient failure by raising :class:`RetryableError`; any other
    exception (notably :class:`ApiError`) propagates at once.
    """
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    retries = 0
    while True:
        try:
            return attempt()
        except RetryableError as exc:
            if retries >= policy.max_retries:
                raise RetriesExhausted(what, retries + 1, exc) from None
            if exc.retry_after is not None:
                if exc.retry_after > policy.max_retry_after_s:
                    raise RetriesExhausted(what, retries + 1, RetryableError(
                        f"{exc} (server asked to wait {exc.retry_after:.0f} s; run the command again later)",
                        exc.retry_after, exc.status)) from None
                wait = exc.retry_after
            else:
                wait = policy.delay(retries, rng.random())
            log.info("%s: %s; retry %d/%d in %.1f s", what, exc, retries + 1, policy.max_retries, wait)
            clock.sleep(wait)
            retries += 1
