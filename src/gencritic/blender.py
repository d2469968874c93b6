"""Finding and running the user's Blender, which lives outside gencritic's environment.

Two features need Blender: reading ``.blend`` files (:mod:`gencritic.mesh.blend`, the format
Toys4k ships in) and the optional path tracer (:mod:`gencritic.render.pathtrace`). Why a separate
process: ``bpy`` (the PyPI build of Blender) pins numpy 1.26 and ships its own libraries, so
installing it beside gencritic downgrades numpy under pandas and torch (tried). It lives in its
own virtual environment, or is a ``blender`` binary, and gencritic runs a worker script in it
and talks to it through files.

Set-up (once)::

    bash scripts/setup.sh --with-blender     # bpy into .venv-blender (CPython 3.11)
    export GENCRITIC_BLENDER=$PWD/.venv-blender/bin/python     # or a blender binary

Nothing falls back: without Blender, what needs it fails with :data:`SETUP_HINT`.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path

SETUP_HINT = ("this needs Blender in its own environment: python3.11 -m venv ~/.gencritic-blender "
              "&& ~/.gencritic-blender/bin/pip install bpy, then export GENCRITIC_BLENDER=~/.gencritic-blender/bin/python "
              "(or a blender binary; in a checkout, bash scripts/setup.sh --with-blender)")


class BlenderMissing(RuntimeError):
    """No usable Blender: what the user must install, in one line."""


def _executable() -> str:
    configured = os.environ.get("GENCRITIC_BLENDER")
    exe = os.path.expanduser(configured) if configured else shutil.which("blender")
    if not exe:
        raise BlenderMissing(SETUP_HINT)
    if not (os.path.isfile(exe) and os.access(exe, os.X_OK)):
        raise BlenderMissing(f"GENCRITIC_BLENDER={configured!r} is not an executable file; {SETUP_HINT}")
    return exe


def blender_command(worker: Path) -> list[str]:
    """The command that runs ``worker`` (a script) in Blender: ``GENCRITIC_BLENDER`` (a Python with
    bpy, or a blender binary), else a ``blender`` binary on PATH. Arguments go after it."""
    exe = _executable()
    if Path(exe).name.startswith("blender"):
        return [exe, "-b", "--factory-startup", "--python", str(worker), "--"]
    return [exe, str(worker)]


@functools.lru_cache(maxsize=4)
def _version_of(exe: str) -> str:
    probe = ([exe, "--version"] if Path(exe).name.startswith("blender")
             else [exe, "-c", "import bpy; print('Blender', bpy.app.version_string)"])
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=120, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BlenderMissing(f"cannot run {exe}: {exc}; {SETUP_HINT}") from None
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("Blender")]
    if done.returncode != 0 or not lines:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise BlenderMissing(f"{exe} has no working bpy ({last}); {SETUP_HINT}")
    return lines[0].split()[1]


def blender_version() -> str:
    """Blender's version: part of every cache key built from Blender's output (its pixels and its
    glTF export change between versions)."""
    return _version_of(_executable())


def last_line(*outputs: str) -> str:
    """The last non-empty line of a subprocess's output: what failed, for a one-line error."""
    lines = [ln for out in outputs for ln in out.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[:200]
