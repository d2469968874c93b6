"""One HTTP exchange with a remote API, classified for :func:`~gencritic.remote.retry.call_with_retry`.

Why one function: the generation backends and the VLM endpoints must agree on what is worth
retrying and what is the caller's to fix, and on never letting a key into a message.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import httpx

from gencritic.remote.clock import Clock
from gencritic.remote.retry import (
    ApiError,
    RetryableError,
    is_retryable_status,
    parse_retry_after,
    response_message,
)


def exchange(http: httpx.Client, method: str, path: str, *, clock: Clock, redact: Callable[[str], str],
             refused: Callable[[str, int], Exception], server: str = "the API",
             message_keys: Sequence[str] = ("message", "error", "detail", "errors"), **kwargs: Any) -> Any:
    """One request. 2xx: its JSON. A timeout, a transport error or a retryable status (429, 5xx, ...):
    :class:`RetryableError` (with the server's ``Retry-After``). 401/403: ``refused(message, status)``.
    Anything else, or 2xx without JSON: :class:`ApiError` with the server's own message, redacted."""
    try:
        response = http.request(method, path, **kwargs)
    except httpx.TimeoutException as exc:
        raise RetryableError(f"{method} {path}: timed out ({type(exc).__name__})") from None
    except httpx.TransportError as exc:  # connect errors, resets, protocol errors
        raise RetryableError(redact(f"{method} {path}: connection error: {exc or type(exc).__name__}")) from None
    if response.is_success:
        try:
            return response.json()
        except ValueError:  # json.JSONDecodeError is a ValueError
            raise ApiError(f"{method} {path}: {server} answered {response.status_code} with non-JSON content") \
                from None
    message = redact(response_message(response, message_keys))
    if is_retryable_status(response.status_code):
        raise RetryableError(message, parse_retry_after(response.headers.get("Retry-After"), clock.now()),
                             response.status_code)
    if response.status_code in (401, 403):
        raise refused(message, response.status_code)
    raise ApiError(message, response.status_code)
