"""`gencritic serve` as a real process: stopping it (SIGTERM, or kill -9) takes its mesh loader
workers with it, frees its port for a restart, and leaves no upload folder behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.report_helpers import CUBE_OBJ

STARTUP_S = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    """Live (not zombie) processes whose parent is ``pid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def _wait_gone(pids: list[int], timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [p for p in pids if _alive(p)]
        if not left:
            return []
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


class Serve:
    """One `gencritic serve` process on a given port."""

    def __init__(self, port: int, root: Path, model: Path, tmp: Path) -> None:
        env = dict(os.environ, GENCRITIC_LOAD_PROCESSES="2", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
                   TMPDIR=str(tmp), PYTHONUNBUFFERED="1")
        self.port = port
        self.log = tmp / f"serve-{port}-{time.monotonic_ns()}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gencritic.cli.main", "serve", "--port", str(port), "--root", str(root),
             "--model", str(model), "--device", "cpu", "--dtype", "fp32", "--no-cache", "--resolution", "32"],
            env=env, stdout=self.log.open("w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_S
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError(f"serve did not answer within {STARTUP_S} s: {self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def score_mesh(self) -> list[int]:
        """Score a mesh (which forks the loader workers); return the workers' pids."""
        resp = httpx.post(f"{self.url}/v1/score/asset", json={"path": "box.obj", "prompt": "a box"}, timeout=120)
        if resp.status_code == 501:
            pytest.skip(f"mesh rendering not installed: {resp.json()['detail']}")
        assert resp.status_code == 200, resp.text
        workers = _children(self.proc.pid)
        assert workers, "no mesh loader worker was forked"
        return workers

    def stop(self, sig: int) -> int:
        os.kill(self.proc.pid, sig)
        return self.proc.wait(timeout=60)


@pytest.fixture()
def setup(tmp_path: Path, tiny_clip_dir: Path) -> Iterator[tuple[Path, Path, Path]]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "box.obj").write_text(CUBE_OBJ)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    yield root, tiny_clip_dir, tmp


def test_workers_die_with_the_service_and_the_port_restarts(setup: tuple[Path, Path, Path]) -> None:
    root, model, tmp = setup
    port = _free_port()
    first = Serve(port, root, model, tmp)
    try:
        workers = first.score_mesh()
        status = first.stop(signal.SIGTERM)
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
    left = _wait_gone(workers)
    for pid in left:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert left == [], "mesh workers outlived a SIGTERM-ed service"
    assert status == 0, f"SIGTERM should stop the service cleanly, as Ctrl-C does; exit status {status}"

    second = Serve(port, root, model, tmp)  # the same port: nothing holds it
    try:
        workers = second.score_mesh()
        second.stop(signal.SIGKILL)
    finally:
        if second.proc.poll() is None:
            second.proc.kill()
    left = _wait_gone(workers)
    for pid in left:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert left == [], "mesh workers outlived a kill -9 of the service"

    third = Serve(port, root, model, tmp)
    try:
        assert httpx.get(f"{third.url}/health", timeout=5).status_code == 200
        # the upload folder the killed service left is removed by the next start
        assert not [p for p in tmp.iterdir() if p.name.startswith("gencritic-serve-") and
                    f"-{second.proc.pid}-" in p.name]
        assert third.stop(signal.SIGTERM) == 0
    finally:
        if third.proc.poll() is None:
            third.proc.kill()
    assert not [p for p in tmp.iterdir() if p.name.startswith("gencritic-serve-")], "upload folders left at exit"


def test_mcp_stdio_stops_cleanly_on_sigterm_with_its_client_still_attached(setup: tuple[Path, Path, Path]) -> None:
    """SIGTERM killed the stdio server before any cleanup (upload folder, workers); handled like
    Ctrl-C, it then waited for ever on the stdin its client still held."""
    root, model, tmp = setup
    env = dict(os.environ, GENCRITIC_LOAD_PROCESSES="2", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1",
               TMPDIR=str(tmp))
    proc = subprocess.Popen([sys.executable, "-m", "gencritic.cli.main", "mcp", "--root", str(root), "--model",
                             str(model), "--device", "cpu", "--dtype", "fp32", "--no-cache"],
                            env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdin is not None and proc.stdout is not None
        hello = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                 "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                            "clientInfo": {"name": "test", "version": "0"}}}
        proc.stdin.write((json.dumps(hello) + "\n").encode())
        proc.stdin.flush()
        answer = json.loads(proc.stdout.readline())  # the server is in its stdio loop now
        assert answer.get("id") == 1 and "result" in answer, answer
        assert any(p.name.startswith(f"gencritic-serve-{proc.pid}-") for p in tmp.iterdir())
        workers = _children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=60)  # stdin is still open: the client has not gone
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdin:
            proc.stdin.close()
    left = _wait_gone(workers)
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert status == 0
    assert left == []
    assert not [p for p in tmp.iterdir() if p.name.startswith("gencritic-serve-")]
