"""What a failed request says, the same way over HTTP and MCP: one status, one line.

Why a module of its own: the HTTP service answered 500 (and the MCP server "Error executing
tool diagnose", with no reason) for failures it knew the cause of, and its messages carried
the server's own temp paths and echoed 5,000-character names back. Every failure now goes
through :func:`describe`, which gives the status and the one line both transports send, and
every name a client gave is shown as the client wrote it (:func:`shown`, cut when long),
never as the file the server made of it (:func:`scrub`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress

from gencritic.errors import GencriticError, InputError, ItemError, ModelUnavailableError

MAX_NAME_CHARS = 120
MAX_LINE_CHARS = 1000
NAMES_ATTR = "gencritic_client_names"


class NotAvailable(Exception):
    """A feature whose module is not installed (or not built yet); HTTP 501."""


class UnsupportedMedia(InputError):
    """An upload or path that is not an image (or asset) this server reads; HTTP 415."""


class TooLarge(InputError):
    """A body, file, image or animation over the configured limits; HTTP 413."""


class AccessDenied(Exception):
    """A request asks for something outside what is allowed; ``status`` is the HTTP code
    (400 for a path that is no path, 401/403 for who may ask and what, 404 under a root)."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def label(name: str) -> str:
    """A client's name for something, cut when long (a 5,000-character path is not worth sending
    back; its start and its length say which one it was)."""
    if len(name) <= MAX_NAME_CHARS:
        return name
    return f"{name[:MAX_NAME_CHARS]}... ({len(name)} characters)"


def shown(name: str) -> str:
    """:func:`label`, quoted, for a message."""
    if len(name) <= MAX_NAME_CHARS:
        return repr(name)
    return f"{name[:MAX_NAME_CHARS]!r}... ({len(name)} characters)"


def scrub(text: str, names: Mapping[str, str]) -> str:
    """``text`` with every server path in ``names`` replaced by the client's name for it."""
    for server, client in sorted(names.items(), key=lambda kv: -len(kv[0])):
        if server:
            text = text.replace(server, client)
    return text


@contextmanager
def client_names(names: Mapping[str, str]) -> Iterator[None]:
    """Failures raised inside carry ``names`` (server path -> the client's name), so that
    :func:`describe` tells the client about its own names, never the server's files."""
    try:
        yield
    except Exception as exc:
        known = getattr(exc, NAMES_ATTR, None) or {}
        with suppress(AttributeError, TypeError):
            setattr(exc, NAMES_ATTR, {**names, **known})
        raise


def one_line(text: str) -> str:
    """Whitespace collapsed, capped: what a client (or an agent) reads."""
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "..."


# Order matters: subclasses before their bases.
STATUS_FOR: tuple[tuple[type[BaseException], int], ...] = (
    (TooLarge, 413), (UnsupportedMedia, 415), (ModelUnavailableError, 503), (ItemError, 422), (InputError, 400),
    (GencriticError, 400), (NotAvailable, 501),
)


def describe(exc: BaseException, names: Mapping[str, str] | None = None) -> tuple[int, str]:
    """(HTTP status, one line) for any failure; 500 only for what nobody anticipated, and then
    with its type and text, so the caller can report it."""
    status = getattr(exc, "status", None) if isinstance(exc, AccessDenied) else None
    if status is None:
        status = next((code for cls, code in STATUS_FOR if isinstance(exc, cls)), 500)
    text = str(exc) or type(exc).__name__
    if status == 500:
        text = f"internal error: {type(exc).__name__}: {text}"
    return int(status), one_line(scrub(text, {**getattr(exc, NAMES_ATTR, {}), **(names or {})}))
