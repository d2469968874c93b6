"""Object-storage and web addresses where a path goes: ``s3://``, ``gs://``, ``az://``, ``https://``.

Why a type of its own: ``Path("s3://bucket/a.png")`` silently becomes ``s3:/bucket/a.png``, a
local path that does not exist. :class:`UrlPath` keeps the address whole and answers the few
questions the rest of gencritic asks of a path without touching the network (``name``,
``suffix``, ``parent``, ``/``), so a manifest's relative ``img/1.png`` resolves against
``s3://bucket/set/`` exactly as it does against a local folder. It deliberately has no
``__fspath__``: handing it to ``open`` is a bug that fails loudly, never a read of some local
file. Reading is :mod:`gencritic.io.fetch` (through fsspec, into a local cache by content).

Credentials are never part of an address gencritic builds or writes: each store's own standard
chain supplies them (AWS environment/profile/instance role, with ``AWS_ENDPOINT_URL`` for
S3-compatible stores; Google application-default credentials; Azure's environment or
``DefaultAzureCredential``). What a user writes into an address themselves (a presigned URL's
signature, ``user:password@``) is cut by :func:`redact` before it reaches a message or a log.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, unquote, urlsplit, urlunsplit

# scheme -> the fsspec implementation's package (what to install when it is missing)
SCHEMES: dict[str, str] = {
    "s3": "s3fs", "s3a": "s3fs",
    "gs": "gcsfs", "gcs": "gcsfs",
    "az": "adlfs", "abfs": "adlfs", "abfss": "adlfs",
    "http": "aiohttp", "https": "aiohttp",
}
# stores whose single PUT creates an object atomically (readers see all of it or none)
OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"})
READ_ONLY = frozenset({"http", "https"})


def is_url(value: object) -> bool:
    """Whether ``value`` is an address gencritic reads through fsspec (a known scheme + ``://``)."""
    if isinstance(value, UrlPath):
        return True
    if not isinstance(value, str):
        return False
    head, sep, _ = value.partition("://")
    return bool(sep) and head.lower() in SCHEMES


class UrlPath:
    """An object-store or web address with the path operations a run needs, and no I/O.

    Immutable and hashable; equal when the address text is equal. A trailing ``/`` (a
    "folder" prefix) is dropped, except on a bare bucket/host. The query string of an
    ``https`` address is kept (it may select the object) but is not part of ``name``/``suffix``
    and is dropped by ``parent``.
    """

    __slots__ = ("_parts",)

    def __init__(self, url: str | UrlPath) -> None:
        if isinstance(url, UrlPath):
            self._parts: SplitResult = url._parts
            return
        if not is_url(url):
            raise ValueError(f"not an object-store or web address: {url!r}")
        parts = urlsplit(url)
        self._parts = parts._replace(scheme=parts.scheme.lower(), path=_folder_free(parts.path))

    # --- what the address is -------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return self._parts.scheme

    @property
    def netloc(self) -> str:
        """Bucket, container or host."""
        return self._parts.netloc

    @property
    def key(self) -> str:
        """The path inside the bucket/host, without its leading ``/`` (percent-decoded for https)."""
        path = self._parts.path.lstrip("/")
        return unquote(path) if self.scheme in READ_ONLY else path

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def suffix(self) -> str:
        return Path(self.name).suffix if self.name else ""

    @property
    def suffixes(self) -> list[str]:
        return Path(self.name).suffixes if self.name else []

    @property
    def stem(self) -> str:
        return Path(self.name).stem if self.name else ""

    @property
    def parent(self) -> UrlPath:
        return self._with(self._parts._replace(path=posixpath.dirname(self._parts.path), query="", fragment=""))

    @property
    def parts(self) -> tuple[str, ...]:
        """``('s3://bucket', 'dir', 'a.png')``: the root, then each path segment."""
        root = f"{self.scheme}://{self.netloc}"
        return (root, *[p for p in self.key.split("/") if p])

    # --- making other addresses ----------------------------------------------------------
    def joinpath(self, *others: str | Path | UrlPath) -> UrlPath:
        out = self
        for other in others:
            out = out / other
        return out

    def __truediv__(self, other: str | Path | UrlPath) -> UrlPath:
        """Resolve ``other`` against this address as a folder: a full address wins; ``/x`` is
        from the bucket/host root; ``..`` and ``.`` are folded (no ``..`` above the root)."""
        if isinstance(other, UrlPath):
            return other
        text = str(other) if not isinstance(other, Path) else other.as_posix()
        if is_url(text):
            return UrlPath(text)
        joined = posixpath.normpath(posixpath.join("/" + self._parts.path.lstrip("/"), text))
        while joined.startswith("/.."):
            joined = joined[3:] or "/"
        return self._with(self._parts._replace(path=joined, query="", fragment=""))

    def with_name(self, name: str) -> UrlPath:
        return self.parent / name

    def with_suffix(self, suffix: str) -> UrlPath:
        return self.parent / (self.stem + suffix)

    def _with(self, parts: SplitResult) -> UrlPath:
        new = object.__new__(UrlPath)
        new._parts = parts._replace(path=_folder_free(parts.path))
        return new

    # --- Path-like answers ----------------------------------------------------------------
    def is_absolute(self) -> bool:
        return True

    def as_posix(self) -> str:
        return str(self)

    def resolve(self) -> UrlPath:
        return self

    def expanduser(self) -> UrlPath:
        return self

    def relative_to(self, other: UrlPath) -> str:
        """The part of this address below ``other`` (a folder prefix of it)."""
        mine, theirs = self.key, other.key
        if self.scheme != other.scheme or self.netloc != other.netloc or not (
                theirs == "" or mine == theirs or mine.startswith(theirs.rstrip("/") + "/")):
            raise ValueError(f"{redact(str(self))} is not under {redact(str(other))}")
        return mine[len(theirs):].lstrip("/")

    def __str__(self) -> str:
        return urlunsplit(self._parts)

    def __repr__(self) -> str:
        return f"UrlPath({redact(str(self))!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, UrlPath) and str(self) == str(other)

    def __lt__(self, other: UrlPath) -> bool:
        return str(self) < str(other)

    def __hash__(self) -> int:
        return hash(("UrlPath", str(self)))

    def __reduce__(self) -> tuple[Any, ...]:
        return (UrlPath, (str(self),))


def _folder_free(path: str) -> str:
    """A path without trailing ``/`` (``s3://b/run/`` is ``s3://b/run``); the root is empty."""
    path = path.rstrip("/")
    return "" if path in ("", ".") else path


def as_path(value: str | Path | UrlPath) -> Path | UrlPath:
    """A manifest cell, an argument or a journal field as a path: :class:`UrlPath` for an address
    with a known scheme, else a local :class:`~pathlib.Path`."""
    if isinstance(value, (Path, UrlPath)):
        return value
    return UrlPath(value) if is_url(value) else Path(value)


_SECRET_QUERY_KEYS = ("sig", "signature", "credential", "token", "key", "secret", "password", "auth", "sas")


def redact(text: str) -> str:
    """``text`` with any address's password and secret-looking query parameters replaced by
    ``***`` (presigned S3/GCS URLs and Azure SAS tokens carry credentials in the query), for
    messages and logs. Text without such an address comes back unchanged."""
    import re

    def one(match: re.Match[str]) -> str:
        url = match.group(0)
        parts = urlsplit(url)
        netloc = parts.netloc
        user, at, host = netloc.rpartition("@")
        if at and ":" in user:  # user:password@
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
        elif at and parts.scheme.lower() in READ_ONLY:  # https://TOKEN@host: a bare token is a secret too
            netloc = f"***@{host}"  # (abfs://container@account names a container: it stays)
        query = parts.query
        if query:
            kept = []
            for pair in query.split("&"):
                k, eq, _v = pair.partition("=")
                secret = any(s in k.lower() for s in _SECRET_QUERY_KEYS)
                kept.append(f"{k}{eq}***" if secret and eq else pair)
            query = "&".join(kept)
        return urlunsplit(parts._replace(netloc=netloc, query=query))

    return re.sub(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+", one, text)


def local_path(path: Path | UrlPath, what: str = "this step") -> Path:
    """``path`` where only a local file will do; an address is an :class:`ItemError` saying so
    (scoring fetches addresses first; a few commands read local files only)."""
    if isinstance(path, UrlPath):
        from gencritic.errors import ItemError

        raise ItemError(f"{what} reads local files: {redact(str(path))} is an address (copy it locally first)")
    return path
