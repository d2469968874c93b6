"""A local generator as a backend: any program that takes an image path and writes a mesh.

This is how local models (TRELLIS, InstantMesh, a research checkpoint) are judged with the
same tracker, leaderboard and evaluation as hosted APIs. The matrix gives an argv list with
``{image}`` and ``{output}`` placeholders (and ``{name}``, the original file's stem); no shell is involved, so paths with spaces or
quotes are safe. The run is synchronous: ``submit`` returns when the program exits. A
non-zero exit, a timeout or a missing/empty output fails the job with the program's own
last lines of stderr; nothing is retried, because a local failure repeats.

There is no remote state, so ``find_by_token`` answers None and a crash mid-run simply
runs the program again on resume (the output is written to a temp name first, so a half
file is never taken for a result).
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from gencritic.generate.backends.base import RemoteOutput, RemoteState, StageRequest
from gencritic.remote.retry import ApiError


class CommandBackend:
    """Run ``config.command`` once per job."""

    name = "command"

    def __init__(self, env: dict[str, str] | None = None) -> None:
        self.env = env

    def close(self) -> None:
        return None

    def submit(self, request: StageRequest) -> str:
        config = request.config
        request.output_dir.mkdir(parents=True, exist_ok=True)
        final = request.output_dir / "mesh.glb"
        tmp = request.output_dir / f".mesh.{request.token}.glb"
        name = Path(request.image_name).stem
        argv = [a.replace("{image}", str(request.image_path)).replace("{output}", str(tmp)).replace("{name}", name)
                for a in config.command]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=config.timeout_s, check=False,
                                  env=None if self.env is None else {**os.environ, **self.env})
        except FileNotFoundError:
            raise ApiError(f"command not found: {argv[0]!r} (fix 'command' in the matrix for {config.name})") from None
        except subprocess.TimeoutExpired:
            tmp.unlink(missing_ok=True)
            raise ApiError(f"the command ran longer than timeout_s={config.timeout_s:g} s and was stopped") from None
        if proc.returncode != 0:
            tmp.unlink(missing_ok=True)
            tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-5:])
            raise ApiError(f"the command exited with status {proc.returncode}: {tail or 'no output'}")
        if not tmp.is_file() or tmp.stat().st_size == 0:
            tmp.unlink(missing_ok=True)
            raise ApiError(f"the command exited 0 but wrote nothing to {{output}} ({tmp.name})")
        os.replace(tmp, final)
        return f"local:{final}"

    def find_by_token(self, token: str) -> str | None:
        return None

    def poll(self, session_id: str, stage: str) -> RemoteState:
        path = Path(session_id.removeprefix("local:"))
        if not path.is_file() or path.stat().st_size == 0:
            return RemoteState("failed", "missing", error=f"the local result {path} is missing; clean and re-run")
        return RemoteState("complete", "complete", (RemoteOutput("mesh", 0, {}, str(path)),))
