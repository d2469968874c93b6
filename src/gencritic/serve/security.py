"""What a request may touch and who may send it: path confinement, API keys, loopback rules.

Why a module of its own: the HTTP service and the MCP server take paths and keys from
strangers, and both must answer the same way. Everything here is a pure function or a tiny
value object, so the rules are tested without a server.

Rules:

* a path is resolved (symlinks followed, ``..`` collapsed) *before* it is compared with the
  allowed roots, so neither ``../`` nor a symlink pointing out of a root escapes;
* a service bound beyond loopback must have an API key; without one it refuses to start;
* with no key configured, only loopback clients are served (a proxy in front of a loopback
  bind would otherwise open the service to everyone); a request that a proxy says it forwards
  for someone (``Forwarded: for=``, ``X-Forwarded-For``, ``X-Real-IP`` and the like) is
  served only when every address named is loopback too;
* a path a client gave is echoed back as the client wrote it, cut when long.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gencritic.errors import InputError
from gencritic.serve.errors import AccessDenied, shown

__all__ = ["AccessDenied", "Roots", "check_bind", "check_client", "forwarded_clients", "is_loopback", "keys_match"]

LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
# Headers with which a reverse proxy names the client it forwards for (RFC 7239 and the usual
# non-standard ones). Any of them present means a proxy stands between the client and us.
FORWARDING_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip", "true-client-ip", "cf-connecting-ip",
                      "x-client-ip", "x-cluster-client-ip")
_FORWARDED_FOR = re.compile(r'(?:^|[;,\s])for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and the usual names of localhost; False for anything unknown."""
    if not host:
        return False
    host = _strip_port(host.strip().strip('"'))
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _strip_port(host: str) -> str:
    """``[::1]:4711`` -> ``::1``; ``127.0.0.1:80`` -> ``127.0.0.1``; a bare IPv6 address unchanged."""
    if host.startswith("["):
        return host[1:host.index("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        return host.split(":", 1)[0]
    return host


def forwarded_clients(headers: Mapping[str, str]) -> list[str]:
    """Every client address a proxy named in the request's headers (lower-case names), in order.

    ``Forwarded: for=unknown`` or an obfuscated ``for=_hidden`` is kept as written: it is no
    loopback address, so it counts as a remote client.
    """
    found: list[str] = []
    for name in FORWARDING_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        if name == "forwarded":
            found.extend(m.group(1).strip('"') for m in _FORWARDED_FOR.finditer(value))
            if not _FORWARDED_FOR.search(value):
                found.append(value)  # a Forwarded header without for=: a proxy, for someone unnamed
        else:
            found.extend(part.strip() for part in value.split(","))  # an empty value is nobody loopback
    return found


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
                raise AccessDenied(f"path {shown(raw)} is outside the allowed roots", 403) from None
            raise AccessDenied(f"path {shown(raw)} not found", 404) from None
        except (OSError, RuntimeError, ValueError):  # symlink loops, permission problems, names too long
            raise AccessDenied(f"path {shown(raw)} cannot be resolved", 400) from None
        if not any(real.is_relative_to(r) for r in self.paths):
            raise AccessDenied(f"path {shown(raw)} is outside the allowed roots", 403)
        return real


def _lexically_under(path: Path, root: Path) -> bool:
    import os

    return Path(os.path.normpath(path)).is_relative_to(root)


def keys_match(given: str | None, expected: str) -> bool:
    """Constant-time comparison, so response timing does not leak the key."""
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


def check_client(client_host: str | None, given_key: str | None, api_key: str | None,
                 forwarded: Sequence[str] = ()) -> None:
    """Authorise one request. Raise :class:`AccessDenied` (401/403) with the reason.

    ``forwarded``: the addresses proxies named (:func:`forwarded_clients`). Without a key, a
    request is served only when its peer and every forwarded address are loopback.
    """
    if api_key:
        if given_key is None:
            raise AccessDenied("missing API key: send it in the X-API-Key header (or Authorization: Bearer KEY)", 401)
        if not keys_match(given_key, api_key):
            raise AccessDenied("wrong API key", 401)
        return
    for host in (client_host, *forwarded):
        if not is_loopback(host):
            via = " (as forwarded by a proxy)" if host != client_host else ""
            raise AccessDenied(
                f"client {shown(host) if host else 'unknown'}{via} is not on loopback and this server has no "
                f"API key: start it with --api-key to serve remote clients", 403)


def request_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries: ``X-API-Key``, or ``Authorization: Bearer KEY`` (lower-case names)."""
    key = headers.get("x-api-key")
    auth = headers.get("authorization", "")
    if key is None and auth.lower().startswith("bearer "):
        key = auth[7:].strip()
    return key


def check_headers(client_host: str | None, headers: Mapping[str, str], api_key: str | None) -> None:
    """:func:`check_client` for a request's peer and headers (lower-case names)."""
    check_client(client_host, request_key(headers), api_key, forwarded_clients(headers))
