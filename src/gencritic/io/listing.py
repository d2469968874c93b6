"""List a folder the one way every entry point does: natural order, bad entries reported.

Why one function: ``score``, ``temporal``, ``diagnose``, ``report``, the service, MCP and the
Ray engine all read folders of images, frames or views. When one of them sorted
lexicographically (``f0, f1, f10, f11, f2``) and another naturally (``f0, f1, f2 … f10``), the
same 13-frame folder gave a flicker index of 6.8 through one command and 0.0 through the other.
Every folder read goes through :func:`list_folder` (or :func:`walk_files` for a tree), so the
order and the rules below are the same everywhere.

Rules:

* **Order** is :func:`natural_key`: runs of ASCII digits compare as numbers (``f2`` before
  ``f10``, ``f002`` equal in rank to ``f2``), letters case-insensitively, the exact name breaks
  ties, so the order is total and the same on every file system.
* **Hidden** entries (names starting with ``.``: ``.DS_Store``, macOS ``._f1.png`` forks,
  ``.gencritic``) are skipped.
* **One bad entry never stops a listing.** A symlink loop, a broken symlink, an entry that
  cannot be examined or a FIFO/socket/device with a wanted suffix is returned in
  :attr:`Listing.bad` with its reason; the caller turns it into a failed row naming it (or,
  where the folder is one input, into one clear error). Nothing is dropped silently.
* **Any name survives.** Names are the ``str`` Python gives them (non-UTF-8 bytes as lone
  surrogates, ``os.fsencode`` turns them back into the bytes on disk); see
  :mod:`gencritic.io.fsnames` for how they are written to the journal, CSV and JSON.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

_DIGITS = re.compile(r"([0-9]+)")  # ASCII only: int() of other "digits" (e.g. '²') would fail


def natural_key(name: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key: digit runs as numbers, the rest case-folded, then the name itself for ties.

    ``re.split`` with a capturing group alternates text and digits starting with text, so two
    keys always hold the same type at the same position and never fail to compare.
    """
    parts = _DIGITS.split(name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def _path_key(rel: tuple[str, ...]) -> tuple[tuple[tuple[str | int, ...], str], ...]:
    return tuple(natural_key(part) for part in rel)


@dataclass(frozen=True)
class BadEntry:
    """An entry that could not be listed as a file or folder, and why (one line)."""

    path: Path
    reason: str

    def describe(self, folder: Path | None = None) -> str:
        """``name: reason``, the name relative to ``folder`` when given."""
        name = self.path.relative_to(folder).as_posix() if folder is not None else self.path.name
        return f"{name}: {self.reason}"


@dataclass
class Listing:
    """What a folder holds, in natural order: wanted files, sub-folders, and bad entries."""

    folder: Path
    files: list[Path] = field(default_factory=list)
    folders: list[Path] = field(default_factory=list)
    bad: list[BadEntry] = field(default_factory=list)

    def bad_summary(self) -> str:
        """One line naming every bad entry, for an error message."""
        return "; ".join(b.describe(self.folder) for b in self.bad)


class FolderError(Exception):
    """The folder itself cannot be listed (missing, not a folder, no permission); one line."""

    def __init__(self, folder: Path, reason: str) -> None:
        super().__init__(f"cannot list folder {folder}: {reason}")
        self.folder = folder
        self.reason = reason


def _kind_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _stat_failure(entry: os.DirEntry[str], exc: OSError) -> str:
    """Why ``stat`` (following links) failed, in words a user can act on."""
    if exc.errno == errno.ELOOP:
        return "symbolic link loop (the link leads back to itself); remove or fix the link"
    is_link = False
    with contextlib.suppress(OSError):
        is_link = entry.is_symlink()
    if is_link and exc.errno in (errno.ENOENT, errno.ENOTDIR):
        try:
            target = os.readlink(entry.path)
        except OSError:
            target = "?"
        return f"broken symbolic link (to {target!r}, which does not exist); remove or fix the link"
    return f"cannot be examined ({exc.strerror or exc})"


def _wanted(name: str, suffixes: Collection[str] | None) -> bool:
    return suffixes is None or os.path.splitext(name)[1].lower() in suffixes


def list_folder(folder: Path, suffixes: Collection[str] | None = None, *, folders: bool = False,
                hidden: bool = False) -> Listing:
    """Files of ``folder`` whose lower-case suffix is in ``suffixes`` (all when None), and with
    ``folders`` its sub-folders, each list in :func:`natural_key` order; symlinks are followed.

    An entry that cannot be examined is in ``bad`` when it could have been wanted: its suffix
    is wanted, or (with ``folders``) it has none, as a folder's name usually has not. Raises
    :class:`FolderError` only when ``folder`` itself cannot be listed.
    """
    try:
        with os.scandir(folder) as it:
            entries = list(it)
    except OSError as exc:
        raise FolderError(folder, str(exc.strerror or exc)) from None
    out = Listing(folder)
    for entry in entries:
        name = entry.name
        if name.startswith(".") and not hidden:
            continue
        path = folder / name
        could_be_folder = folders and not os.path.splitext(name)[1]
        try:
            mode = entry.stat().st_mode  # follows symlinks; ELOOP / ENOENT for bad links
        except OSError as exc:
            if _wanted(name, suffixes) or could_be_folder:
                out.bad.append(BadEntry(path, _stat_failure(entry, exc)))
            continue
        if stat.S_ISDIR(mode):
            if folders:
                out.folders.append(path)
        elif stat.S_ISREG(mode):
            if _wanted(name, suffixes):
                out.files.append(path)
        elif _wanted(name, suffixes):  # reading a FIFO would block for ever: name it instead
            out.bad.append(BadEntry(path, f"{_kind_name(mode)}, not a file; remove it or give a file"))
    for group in (out.files, out.folders):
        group.sort(key=lambda p: natural_key(p.name))
    out.bad.sort(key=lambda b: natural_key(b.path.name))
    return out


def walk_files(folder: Path, suffixes: Collection[str] | None = None, *, hidden: bool = False,
               above: Collection[Path] = ()) -> Listing:
    """Files under ``folder`` at any depth (suffix-filtered), in natural order of their relative
    paths; the same rules as :func:`list_folder`. Symlinked folders are followed, but one that
    leads back to ``folder``, a folder above it in the walk or one of ``above`` (the folders the
    caller walked to get here) is a bad entry, not a second copy or an endless walk; a sub-folder
    that cannot be listed is a bad entry too. ``folders`` of the result stays empty."""
    top = list_folder(folder, suffixes, folders=True, hidden=hidden)
    out = Listing(folder, files=list(top.files), bad=list(top.bad))
    ancestors = {_identity(folder)}
    for parent in above:
        with contextlib.suppress(OSError):
            ancestors.add(_identity(parent))
    _walk_into(top.folders, suffixes, hidden, ancestors, out)
    root_parts = len(folder.parts)
    out.files.sort(key=lambda p: _path_key(p.parts[root_parts:]))
    out.bad.sort(key=lambda b: _path_key(b.path.parts[root_parts:]))
    return out


def _identity(folder: Path) -> tuple[int, int]:
    st = os.stat(folder)
    return st.st_dev, st.st_ino


def _walk_into(subfolders: list[Path], suffixes: Collection[str] | None, hidden: bool,
               ancestors: set[tuple[int, int]], out: Listing) -> None:
    for sub in subfolders:
        try:
            ident = _identity(sub)
        except OSError as exc:  # vanished or unreadable between the listing and now
            out.bad.append(BadEntry(sub, f"cannot be examined ({exc.strerror or exc})"))
            continue
        if ident in ancestors:
            out.bad.append(BadEntry(sub, "symbolic link loop (leads back to a folder above it); remove or fix the link"))
            continue
        try:
            listing = list_folder(sub, suffixes, folders=True, hidden=hidden)
        except FolderError as exc:
            out.bad.append(BadEntry(sub, f"folder cannot be listed ({exc.reason})"))
            continue
        out.files.extend(listing.files)
        out.bad.extend(listing.bad)
        _walk_into(listing.folders, suffixes, hidden, ancestors | {ident}, out)
