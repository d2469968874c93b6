"""The service's folder of uploads in flight, and the removal of folders killed services left.

Why: an upload lives on disk while its request is scored and is deleted when the request
ends; a service killed with -9 (or by the OOM killer) runs no cleanup, so its folder stayed
in the temp directory for ever. Each folder carries its service's process id in its name
(``gencritic-serve-PID-XXXX``), and a starting service removes the folders of this user whose
process is gone. Folders of a live service, or another user's, are never touched.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from pathlib import Path

PREFIX = "gencritic-serve-"
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def stale_upload_dirs(temp_root: Path | None = None) -> list[Path]:
    """Upload folders of this user whose service process no longer runs."""
    root = Path(temp_root or tempfile.gettempdir())
    stale = []
    try:
        entries = list(root.iterdir())
    except OSError:
        return []
    for entry in entries:
        match = _NAME.match(entry.name)
        if match is None:
            continue
        try:
            st = entry.lstat()
        except OSError:
            continue
        if not entry.is_dir() or entry.is_symlink() or st.st_uid != os.getuid():
            continue
        if not _pid_alive(int(match.group(1))):
            stale.append(entry)
    return stale


class UploadDir:
    """A private temp folder for one service process; removes stale ones when created."""

    def __init__(self) -> None:
        for stale in stale_upload_dirs():
            shutil.rmtree(stale, ignore_errors=True)
        self.path = Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            shutil.rmtree(self.path)
