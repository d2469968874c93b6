"""The API key: where it comes from, where it is kept, and how it never leaks.

Order: ``CSM_API_KEY`` in the environment, else the file ``<config dir>/gencritic/csm_api_key``
(written once, 0600, after an interactive prompt). The config dir honours
``XDG_CONFIG_HOME`` so tests and CI can point it at a temporary folder.

Why :class:`ApiKey` wraps the string: a bare ``str`` ends up in a log line, an exception
or a ``repr`` sooner or later. The wrapper prints as ``ApiKey(****)``; only the HTTP layer
calls :meth:`ApiKey.reveal`. Every message that carries text from the server goes through
:func:`redact` too, since an API may echo the key back in an error.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from gencritic.atomic import SECRET_MODE, atomic_write_text
from gencritic.errors import InputError

ENV_VAR = "CSM_API_KEY"
KEY_FILE = "csm_api_key"
MASK = "****"


class ApiKey:
    """A secret string that refuses to show itself in str/repr/format."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        value = value.strip()
        if not value:
            raise InputError("the CSM API key is empty: set CSM_API_KEY or run `gencritic generate run` to be prompted")
        self._value = value

    def reveal(self) -> str:
        """The raw key, for the request header only."""
        return self._value

    def redact(self, text: str) -> str:
        return redact(text, self._value)

    def __repr__(self) -> str:
        return f"ApiKey({MASK})"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return repr(self)

    def __reduce__(self) -> str:  # never pickled into a cache or a worker by accident
        raise TypeError("ApiKey cannot be pickled")


def redact(text: str, secret: str | None) -> str:
    """Replace every occurrence of ``secret`` in ``text`` with ``****``."""
    if not secret:
        return text
    return text.replace(secret, MASK)


def config_dir() -> Path:
    """``$XDG_CONFIG_HOME/gencritic`` or ``~/.config/gencritic``."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "gencritic"


def key_path() -> Path:
    return config_dir() / KEY_FILE


def store_key(value: str, path: Path | None = None) -> Path:
    """Write the key with 0600 permissions (created so, never world-readable even briefly)."""
    path = path or key_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    # created 0600 (the umask can only take bits away), so the key is never readable by others, even briefly
    atomic_write_text(path, value.strip() + "\n", mode=SECRET_MODE)
    return path


def resolve_api_key(prompt: Callable[[], str] | None = None, environ: dict[str, str] | None = None) -> ApiKey:
    """Find the key (env, then stored file), else ask once via ``prompt`` and store it.

    Without a key and without a way to ask (``prompt`` is None: not a terminal), fail
    before any work with one line that says what to do.
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV_VAR, "").strip()
    if value:
        return ApiKey(value)
    path = key_path()
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise InputError(f"{path} is readable by other users (mode {mode:o}); run `chmod 600 {path}` and retry")
        stored = path.read_text(encoding="utf-8").strip()
        if stored:
            return ApiKey(stored)
    if prompt is None:
        raise InputError(f"no CSM API key: set {ENV_VAR}, or run this command in a terminal to be asked once "
                         f"(it is then kept in {path}, mode 600)")
    entered = prompt().strip()
    if not entered:
        raise InputError(f"no CSM API key entered: set {ENV_VAR} or enter the key from your CSM profile page")
    store_key(entered, path)
    return ApiKey(entered)
