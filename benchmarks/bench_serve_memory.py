"""Memory of `gencritic serve` under hostile clients: how far its process tree grows over idle.

Run:  python benchmarks/bench_serve_memory.py [--clients 4] [--rounds 2] [--model DIR]

Starts `gencritic serve` with the default limits (a tiny random CLIP unless --model), waits
until it idles, then has several clients send the worst inputs of issue 17 at once: PNG
headers of 12000² and 20000², an animated GIF with corrupt frames, an image, an animation
and a folder of frames right at the pixel limit (by path and uploaded), a body over the byte
limit, metric options naming models outside the roots, and a mesh (which forks the loader
workers). Samples the tree (the service and its mesh workers) every 50 ms and prints:

* the peak of the tree's PSS (proportional set size: pages shared by the forked workers and
  their parent counted once, split between them): the memory the tree really holds;
* the peak of the sum of RSS (shared pages counted in every process that maps them, so a
  freshly forked worker "weighs" its parent: an overestimate);
* the service process's own high-water mark (VmHWM, exact).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GB = 1024**3


def _tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if fields[0] != "Z":
                parents[int(entry)] = int(fields[1])
    tree, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, parent in parents.items() if parent in frontier]
        tree.extend(frontier)
    return tree


def _kib(path: str, key: str) -> int:
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sampler:
    """Peak PSS and RSS sums over a process tree, sampled on a thread."""

    pid: int
    interval: float = 0.05
    peak_pss: int = 0
    peak_rss: int = 0
    peak_service_pss: int = 0
    peak_workers_pss: int = 0
    max_processes: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)

    def sample(self) -> tuple[int, int, int]:
        pids = _tree(self.pid)
        each = {p: _kib(f"/proc/{p}/smaps_rollup", "Pss:") * 1024 for p in pids}
        pss = sum(each.values())
        rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids) * 1024
        self.peak_service_pss = max(self.peak_service_pss, each.get(self.pid, 0))
        self.peak_workers_pss = max(self.peak_workers_pss, pss - each.get(self.pid, 0))
        return pss, rss, len(pids)

    def run(self) -> None:
        while not self._stop.is_set():
            pss, rss, n = self.sample()
            self.peak_pss, self.peak_rss = max(self.peak_pss, pss), max(self.peak_rss, rss)
            self.max_processes = max(self.max_processes, n)
            time.sleep(self.interval)

    def start(self) -> threading.Thread:
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def _png(width: int, height: int) -> bytes:
    """Noise: incompressible, so the file is as large as its pixels make it."""
    import numpy as np
    from PIL import Image

    arr = np.random.default_rng(0).integers(0, 255, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def png_zeros(width: int, height: int) -> bytes:
    """A real, black ``width`` x ``height`` PNG, compressed row by row (12000² is ~420 KB on disk
    and 432 MB decoded: the decompression bomb of issue 17), without holding its pixels."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    packer = zlib.compressobj(9)
    row = b"\0" * (1 + 3 * width)  # filter byte + RGB
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def make_inputs(root: Path) -> None:
    """The worst inputs of issue 17, and inputs right at the default limits."""
    import numpy as np
    from PIL import Image

    from gencritic.serve.limits import DEFAULT_MAX_FRAMES, DEFAULT_MAX_PIXELS
    from tests.report_helpers import CUBE_OBJ
    from tests.test_serve_limits import corrupt_gif, png_header_only

    root.mkdir(parents=True, exist_ok=True)
    (root / "bomb.png").write_bytes(png_zeros(12000, 12000))
    (root / "huge_header.png").write_bytes(png_header_only(20000, 20000))
    (root / "corrupt.gif").write_bytes(corrupt_gif())
    side = int(DEFAULT_MAX_PIXELS ** 0.5)
    (root / "limit.png").write_bytes(_png(side, side))  # a still right at the pixel limit
    frames, size = 64, int((DEFAULT_MAX_PIXELS / 64) ** 0.5)  # an animation right at the pixel limit
    rng = np.random.default_rng(1)
    images = [Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)) for _ in range(frames)]
    images[0].save(root / "limit_anim.gif", save_all=True, append_images=images[1:], duration=40)
    many = min(DEFAULT_MAX_FRAMES, 1000)  # the frame limit, each frame small enough to stay within the pixels
    small = int((DEFAULT_MAX_PIXELS / many) ** 0.5)
    tiny = [Image.new("RGB", (small, small), (i % 255, 80, 200)) for i in range(many)]
    tiny[0].save(root / "many_frames.gif", save_all=True, append_images=tiny[1:], duration=40)
    (root / "frames").mkdir(exist_ok=True)
    for i in range(16):  # a folder of frames right at the pixel limit: 16 x (2 size)^2
        (root / "frames" / f"{i:03d}.png").write_bytes(_png(size * 2, size * 2))
    (root / "box.obj").write_text(CUBE_OBJ)


def requests_plan(root: Path) -> list[tuple[str, dict[str, Any]]]:
    limit = (root / "limit.png").read_bytes()
    return [
        ("/v1/diagnose", {"data": {"path": "bomb.png"}}),
        ("/v1/diagnose", {"data": {"path": "huge_header.png"}}),
        ("/v1/diagnose", {"data": {"path": "corrupt.gif"}}),
        ("/v1/diagnose", {"data": {"path": "limit.png", "prompt": "a fireball"}}),
        ("/v1/diagnose", {"files": {"file": ("limit.png", limit, "image/png")}}),
        ("/v1/diagnose", {"data": {"path": "limit_anim.gif"}}),
        ("/v1/diagnose", {"data": {"path": "many_frames.gif"}}),
        ("/v1/diagnose", {"data": {"path": "frames"}}),
        ("/v1/score/image", {"data": {"path": "limit.png", "prompt": "noise"}}),
        ("/v1/score/image", {"files": {"file": ("limit.png", limit, "image/png")}, "data": {"prompt": "noise"}}),
        ("/v1/score/image", {"data": {"path": "bomb.png", "prompt": "x"}}),
        ("/v1/score/image", {"data": {"path": "limit.png", "prompt": "x", "metrics": "clip:model=/etc/hostname"}}),
        ("/v1/score/image", {"data": {"path": "limit.png", "prompt": "x", "metrics": "learned:/tmp"}}),
        ("/v1/score/image", {"data": {"path": "limit.png", "prompt": "x",
                                      "metrics": "clip:model=openai/clip-vit-large-patch14"}}),
        ("/v1/score/image", {"content": b"\0" * (25 * 1024 * 1024),
                             "headers": {"content-type": "application/octet-stream"}}),
        ("/v1/score/asset", {"json": {"path": "box.obj", "prompt": "a box"}}),
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def measure(model: Path, workdir: Path, clients: int = 4, rounds: int = 2, seed: int = 0,
            only: str | None = None, extra_args: tuple[str, ...] = ()) -> dict[str, Any]:
    """Start the service, measure idle, run the clients, return the figures (bytes) and statuses."""
    import httpx

    root = workdir / "root"
    make_inputs(root)
    port = _free_port()
    log = (workdir / "serve.log").open("w")
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "gencritic.cli.main", "serve", "--port", str(port), "--root",
                             str(root), "--model", str(model), "--device", "cpu", "--dtype", "fp32", "--no-cache",
                             *extra_args],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(workdir / 'serve.log').read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not start")
            time.sleep(0.2)
        time.sleep(2.0)
        sampler = Sampler(proc.pid)
        idle_pss, idle_rss, _ = sampler.sample()
        idle_hwm = _kib(f"/proc/{proc.pid}/status", "VmHWM:") * 1024
        thread = sampler.start()
        plan = [(path, kw) for path, kw in requests_plan(root) if only is None or only in f"{path} {kw.get('data')}"
                f" {kw.get('json')} {'upload' if 'files' in kw else ''}"]
        statuses: dict[str, dict[int, int]] = {}
        lock = threading.Lock()

        def client(k: int) -> None:
            rng = random.Random(seed * 1000 + k)
            with httpx.Client(base_url=url, timeout=600) as http:
                for _ in range(rounds):
                    order = list(plan)
                    rng.shuffle(order)
                    for path, kwargs in order:
                        what = f"{path} {json.dumps(kwargs.get('data') or kwargs.get('json') or {}, sort_keys=True)}"
                        if "files" in kwargs:
                            what += " (upload)"
                        try:
                            status = http.post(path, **kwargs).status_code
                        except httpx.HTTPError:
                            status = -1  # the server dropped the connection (a 413 before the body was read)
                        with lock:
                            statuses.setdefault(what, {}).setdefault(status, 0)
                            statuses[what][status] += 1

        started = time.monotonic()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.monotonic() - started
        sampler.stop()
        thread.join()
        hwm = _kib(f"/proc/{proc.pid}/status", "VmHWM:") * 1024
        return {"idle_pss": idle_pss, "idle_rss": idle_rss, "peak_pss": sampler.peak_pss,
                "peak_rss": sampler.peak_rss, "pss_growth": sampler.peak_pss - idle_pss,
                "rss_growth": sampler.peak_rss - idle_rss, "service_hwm_growth": hwm - idle_hwm,
                "max_processes": sampler.max_processes, "peak_service_pss": sampler.peak_service_pss,
                "peak_workers_pss": sampler.peak_workers_pss, "clients": clients, "rounds": rounds, "wall_s": wall,
                "statuses": statuses}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def report(figures: dict[str, Any]) -> str:
    mb = 1024 * 1024
    lines = [f"{figures['clients']} clients x {figures['rounds']} rounds of {len(figures['statuses'])} worst inputs, "
             f"{figures['wall_s']:.0f} s, up to {figures['max_processes']} processes",
             f"tree PSS: idle {figures['idle_pss'] / mb:.0f} MB, peak {figures['peak_pss'] / mb:.0f} MB, "
             f"growth {figures['pss_growth'] / mb:.0f} MB (peaks: service {figures['peak_service_pss'] / mb:.0f} MB, "
             f"mesh workers {figures['peak_workers_pss'] / mb:.0f} MB)",
             f"tree RSS sum (shared pages counted per process): idle {figures['idle_rss'] / mb:.0f} MB, peak "
             f"{figures['peak_rss'] / mb:.0f} MB, growth {figures['rss_growth'] / mb:.0f} MB",
             f"service process high-water mark growth: {figures['service_hwm_growth'] / mb:.0f} MB"]
    lines += [f"  {what}: {codes}" for what, codes in sorted(figures["statuses"].items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model", type=Path, default=None, help="CLIP model folder (default: a tiny random one)")
    parser.add_argument("--only", default=None, help="Only the requests whose endpoint or fields contain this text")
    parser.add_argument("--serve-args", default="", help="Extra arguments for `gencritic serve` (e.g. limits)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = args.model
        if model is None:
            from tests.conftest import build_tiny_hf_clip

            model = build_tiny_hf_clip(work / "tiny_clip")
        print(report(measure(model, work, args.clients, args.rounds, only=args.only,
                             extra_args=tuple(args.serve_args.split()))))


if __name__ == "__main__":
    main()
