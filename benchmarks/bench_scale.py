"""Scale-out on this machine: the local engine vs ``--engine ray`` with 1, 2 and 4 workers, media in S3.

Run:  python benchmarks/bench_scale.py [--items 200] [--workers 1,2,4] [--rounds 2] [--batch-size 32]

The run of the acceptance test at benchmark size: full-size ViT-B/32 with random weights
(benchmarks/_models.py, needs ../shared/data/clip-vit-b32-tokenizer), 224² PNGs served by an
S3-compatible server on loopback (moto's server mode in its own process; `pip install
'moto[server]' s3fs`), their local copies deleted after upload, results written locally. No embedding cache anywhere, so every
run downloads and encodes every image.

What is timed, and what is left out of the ratio:

* **local engine**: ``score()`` in this process with the models already loaded (a first, cold
  run loads them; its wall time is printed too). So the local figure excludes model loading.
* **Ray**: ``ray.init`` of a local cluster (once, printed), then per worker count a
  ``score_with_ray`` call whose *start-up* — actor processes, imports and model loads until the
  first actor can score (``summary.json``'s ``engine.actor_startup_s``) — is printed and
  subtracted. What remains (prompt encoding, downloads, encoding, Ray Data scheduling, journaling
  on the driver, the final write) is compared with the local engine's time.

Runs are interleaved (local, 1, 2, 4 workers, then again) and the median of the rounds is used.
Each Ray run's files are checked byte-identical to the local engine's.

On a 2-core machine the workers share the same two cores, so the 1 -> 2 -> 4 curve measures Ray's
overhead, not scaling; docs/scale.md puts the scaling of a real cluster on paper.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._models import build_vit_b32  # noqa: E402


def start_s3() -> tuple[subprocess.Popen[bytes], object]:
    """moto's S3 server in a process of its own on 127.0.0.1 (not a thread of this one: serving
    requests would take this process's GIL from the local engine it times), and an s3fs file system
    on it through the standard AWS variables."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise SystemExit("moto's S3 server did not start (pip install 'moto[server]')") from None
            time.sleep(0.2)
    os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                      AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    return server, s3fs.S3FileSystem()


def upload_media(fs: object, work: Path, n: int) -> str:
    """``n`` 224² images and a manifest (20 distinct prompts) in a bucket; local copies deleted."""
    from tests.conftest import make_image

    media = work / "media"
    lines = ["image,prompt"]
    for i in range(n):
        make_image(media / f"img{i:04d}.png", ((37 * i) % 256, (91 * i) % 256, (53 * i + 40) % 256), size=224)
        lines.append(f"img{i:04d}.png,a generated picture number {i % 20}")
    (media / "manifest.csv").write_text("\n".join(lines) + "\n")
    fs.mkdir("bench")  # type: ignore[attr-defined]
    for f in sorted(media.iterdir()):
        fs.put_file(str(f), f"bench/set/{f.name}")  # type: ignore[attr-defined]
    shutil.rmtree(media)
    return "s3://bench/set/manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model-dir", type=Path, default=Path(tempfile.gettempdir()) / "gencritic-bench-vit-b32")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",") if w.strip()]

    import ray
    import torch

    from gencritic.engines.ray_engine import score_with_ray
    from gencritic.models.loader import ModelPool
    from gencritic.scoring import ScoreOptions, score

    model = str(build_vit_b32(args.model_dir))
    work = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    server, fs = start_s3()
    try:
        manifest = upload_media(fs, work, args.items)

        def opts() -> ScoreOptions:
            return ScoreOptions(model=model, device="cpu", dtype="fp32", cache_dir=None, progress=False,
                                batch_size=args.batch_size)

        pool = ModelPool("cpu", "fp32")
        t = time.perf_counter()
        score(manifest, out=work / "cold", options=opts(), pool=pool)
        cold_s = time.perf_counter() - t
        reference = (work / "cold" / "results.csv").read_bytes()

        t = time.perf_counter()
        ray.init(num_cpus=max(workers), include_dashboard=False, log_to_driver=False, configure_logging=False)
        init_s = time.perf_counter() - t
        local: list[float] = []
        ray_runs: dict[int, list[dict[str, float]]] = {w: [] for w in workers}
        identical = True
        for r in range(args.rounds):
            out = work / f"local{r}"
            t = time.perf_counter()
            score(manifest, out=out, options=opts(), pool=pool)
            local.append(time.perf_counter() - t)
            identical &= (out / "results.csv").read_bytes() == reference
            for w in workers:
                out = work / f"ray{w}_{r}"
                t = time.perf_counter()
                run = score_with_ray(manifest, out=out, options=opts(), num_actors=w,
                                     torch_threads=torch.get_num_threads())
                wall = time.perf_counter() - t
                startup = float(run.summary["engine"]["actor_startup_s"] or 0.0)
                ray_runs[w].append({"wall": wall, "startup": startup, "scoring": wall - startup})
                identical &= (out / "results.csv").read_bytes() == reference
                print(f"round {r + 1}: {w} worker(s) {wall:.1f} s (start-up {startup:.1f} s)", flush=True)
            print(f"round {r + 1}: local {local[-1]:.1f} s", flush=True)
        ray.shutdown()

        local_s = statistics.median(local)
        print(f"\n{args.items} items, ViT-B/32 fp32 (random weights), 224² PNGs from S3 on loopback, "
              f"batch {args.batch_size}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}")
        print(f"local engine, cold (model load included): {cold_s:.2f} s; ray.init: {init_s:.2f} s")
        print("| engine | wall s | start-up s (excluded) | scoring s | items/s | time vs local | efficiency |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        print(f"| local engine (models loaded) | {local_s:.2f} | - | {local_s:.2f} | {args.items / local_s:.2f} "
              f"| 1.00 | - |")
        result: dict[str, object] = {"items": args.items, "batch_size": args.batch_size, "cpus": os.cpu_count(),
                                     "torch_threads": torch.get_num_threads(), "local_cold_s": round(cold_s, 3),
                                     "local_s": round(local_s, 3), "ray_init_s": round(init_s, 3),
                                     "rounds": args.rounds, "files_identical": identical, "ray": {}}
        one = statistics.median(x["scoring"] for x in ray_runs[min(workers)]) * min(workers)
        for w in workers:
            wall = statistics.median(x["wall"] for x in ray_runs[w])
            startup = statistics.median(x["startup"] for x in ray_runs[w])
            scoring = statistics.median(x["scoring"] for x in ray_runs[w])
            ratio = scoring / local_s
            efficiency = one / (w * scoring)  # throughput per worker against the fewest workers' (1.0 = linear)
            print(f"| ray, {w} worker(s) | {wall:.2f} | {startup:.2f} | {scoring:.2f} | {args.items / scoring:.2f} "
                  f"| {ratio:.2f} | {efficiency:.2f} |")
            result["ray"][w] = {"wall_s": round(wall, 3), "startup_s": round(startup, 3),  # type: ignore[index]
                                "scoring_s": round(scoring, 3), "items_per_s": round(args.items / scoring, 3),
                                "time_vs_local": round(ratio, 3), "efficiency": round(efficiency, 3)}
        if 1 in ray_runs:
            over = statistics.median(x["scoring"] for x in ray_runs[1]) / local_s - 1
            print(f"\nRay's overhead at 1 worker (start-up excluded): {100 * over:+.1f} % (target <= 15 %)")
            result["overhead_1_worker"] = round(over, 4)
        if (os.cpu_count() or 1) <= max(workers):
            print(f"On {os.cpu_count()} cores the workers share the same cores: the 1->{max(workers)} curve "
                  f"measures Ray's overhead, not scaling.")
        print(f"files identical to the local engine's: {identical}")
        print(json.dumps(result))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
