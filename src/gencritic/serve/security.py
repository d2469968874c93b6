"""What a request may touch and who may send it: path confinement, API keys, loopback rules.

Why a module of its own: the HTTP service and the MCP server take paths and keys from
strangers, and both must answer the same way. Everything here is a pure function or a tiny
value object, so the rules are tested without a server.

Rules:

* a path is resolved (symlinks followed, ``..`` collapsed) *before* it is compared with the
  allowed roots, so neither ``../`` nor a symlink pointing out of a root escapes;
* a service bound beyond loopback must have an API key; without one it refuses to start;
* with no key configured, only loopback clients are served (a proxy in front of a loopback
  bind would otherwise open the service to everyone).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gencritic.errors import InputError

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})


class AccessDenied(Exception):
    """A request asks for something outside what is allowed; ``status`` is the HTTP code."""

    def __init__(self, message: str, status: int = 403) -> None:
        super().__init__(message)
        self.status = status


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names of localhost; False for anything unknown."""
    if not host:
        return False
    host = host.strip().strip("[]")
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to serve beyond loopback without a key: an open scoring service is a free GPU."""
    if not is_loopback(host) and not api_key:
        raise InputError(
            f"refusing to bind {host}: binding beyond loopback needs an API key "
            f"(--api-key KEY or GENCRITIC_API_KEY), or bind 127.0.0.1"
        )


@dataclass(frozen=True)
class Roots:
    """The folders a request may read from (resolved once, at start)."""

    paths: tuple[Path, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, roots: Sequence[str | Path]) -> Roots:
        resolved = []
        for r in roots:
            p = Path(r).expanduser()
            if not p.is_dir():
                raise InputError(f"--root {r} is not a folder")
            resolved.append(p.resolve(strict=True))
        return cls(tuple(resolved))

    def confine(self, raw: str) -> Path:
        """The real path of ``raw`` if it lies under an allowed root, else :class:`AccessDenied`.

        Relative paths are taken relative to the first root. ``raw`` is resolved with
        symlinks followed, so a link inside a root pointing outside is refused too.
        """
        if not self.paths:
            raise AccessDenied("this server reads no paths: start it with --root DIR to allow paths under DIR, "
                               "or upload the file", 403)
        if not raw or "\x00" in raw:
            raise AccessDenied("empty or invalid path", 400)
        candidate = Path(raw).expanduser()
        if not candidate.is_absolute():
            candidate = self.paths[0] / candidate
        try:
            real = candidate.resolve(strict=True)
        except (FileNotFoundError, NotADirectoryError):
            # do not say whether something exists outside the roots
            if not any(_lexically_under(candidate, r) for r in self.paths):
                raise AccessDenied(f"path {raw!r} is outside the allowed roots", 403) from None
            raise AccessDenied(f"path {raw!r} not found", 404) from None
        except (OSError, RuntimeError):  # symlink loops, permission problems
            raise AccessDenied(f"path {raw!r} cannot be resolved", 400) from None
        if not any(real.is_relative_to(r) for r in self.paths):
            raise AccessDenied(f"path {raw!r} is outside the allowed roots", 403)
        return real


def _lexically_under(path: Path, root: Path) -> bool:
    import os

    return Path(os.path.normpath(path)).is_relative_to(root)


def keys_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the key."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_client(client_host: str | None, given_key: str | None, api_key: str | None) -> None:
    """Authorise one request. Raise :class:`AccessDenied` (401/403) with the reason."""
    if api_key:
        if given_key is None:
            raise AccessDenied("missing API key: send it in the X-API-Key header (or Authorization: Bearer KEY)", 401)
        if not keys_match(given_key, api_key):
            raise AccessDenied("wrong API key", 401)
        return
    if not is_loopback(client_host):
        raise AccessDenied(
            f"client {client_host or 'unknown'} is not on loopback and this server has no API key: "
            f"start it with --api-key to serve remote clients", 403)
