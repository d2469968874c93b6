"""Atomic file writes whose permissions follow the umask: the one way gencritic replaces a file.

Readers never see half a file: the text goes to a temporary file beside the target, is flushed
(and fsynced, unless the caller says the file is a cache it can lose), then renamed over it.

Why not :func:`tempfile.mkstemp`: it creates its file with mode 0600 whatever the umask, so
renaming it into place made every result, report and Toys4k file readable by its writer only.
Here the temporary file is created with :func:`os.open` and the mode asked for (0666 for
outputs), which the kernel masks with the process umask as it does for any ordinary ``open``:
0644 under umask 022, 0640 under 027. Secrets (the API key file) ask for 0600. Reading the
umask itself (``os.umask`` sets it to read it) would race with other threads; letting the
kernel apply it does not.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

OUTPUT_MODE = 0o666  # outputs: what the umask leaves of rw for everyone, as open() gives
SECRET_MODE = 0o600  # secrets: the owner only, whatever the umask

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _create_beside(path: Path, mode: int, prefix: str | None, suffix: str) -> tuple[int, Path]:
    """A new, uniquely named file in ``path``'s folder, created with ``mode`` (umask applied)."""
    head = f".{path.name}." if prefix is None else prefix
    for _ in range(100):
        tmp = path.with_name(f"{head}{secrets.token_hex(6)}{suffix}")
        try:
            return os.open(tmp, _FLAGS, mode), tmp
        except FileExistsError:  # another writer drew the same name: draw again
            continue
    raise FileExistsError(f"could not create a temporary file beside {path}")


@contextmanager
def atomic_open(path: Path, binary: bool = False, *, mode: int = OUTPUT_MODE, prefix: str | None = None,
                suffix: str = ".tmp", fsync: bool = True, errors: str = "strict") -> Iterator[IO[Any]]:
    """Write ``path`` through a file handle; it appears complete, or not at all.

    ``mode`` is the permission asked of the kernel before the umask (``OUTPUT_MODE`` for
    outputs, ``SECRET_MODE`` for secrets). ``prefix``/``suffix`` name the temporary file
    (default ``.<name>.<random>.tmp``: hidden, and recognisable as a leftover if the process
    dies). ``fsync=False`` for caches, where losing a file to a crash only costs recomputing it.
    ``errors`` is the text encoder's: ``"surrogateescape"`` for CSVs, which write file names
    that are not UTF-8 as their bytes (``gencritic.io.fsnames``).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_beside(path, mode, prefix, suffix)
    try:
        if binary:
            fh: IO[Any] = os.fdopen(fd, "wb")
        else:
            fh = os.fdopen(fd, "w", encoding="utf-8", errors=errors, newline="")
        with fh:
            yield fh
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str, mode: int = OUTPUT_MODE, errors: str = "strict") -> None:
    """Write ``text`` (UTF-8, newlines as given) to ``path`` atomically; permissions follow the umask.
    ``errors``: as :func:`atomic_open`'s (``"surrogateescape"`` for CSVs)."""
    with atomic_open(path, mode=mode, errors=errors) as fh:
        fh.write(text)


def atomic_write_bytes(path: Path, data: bytes, mode: int = OUTPUT_MODE) -> None:
    """Write ``data`` to ``path`` atomically; permissions follow the umask."""
    with atomic_open(path, binary=True, mode=mode) as fh:
        fh.write(data)
