"""Local engine vs ``--engine ray`` on the same manifest, in one process: what Ray costs.

Run:  python benchmarks/bench_ray.py --items 256 --actors 2 [--model DIR] [--batch-size 32]

Without --model a tiny random CLIP is built (like the tests), so the figures measure the
engine's overhead (process start-up, actor model loads, Ray Data scheduling, the final
write pass) rather than the encoder. Both runs use no embedding cache, so each encodes
everything. Prints the wall time of each, the ratio, and whether the files are identical.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_manifest(folder: Path, n: int) -> Path:
    from tests.conftest import make_image

    lines = ["image,prompt"]
    for i in range(n):
        make_image(folder / f"img{i:05d}.png", ((37 * i) % 256, (91 * i) % 256, (53 * i + 40) % 256), size=64)
        lines.append(f"img{i:05d}.png,a generated picture number {i % 50}")
    (folder / "manifest.csv").write_text("\n".join(lines) + "\n")
    return folder / "manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--actors", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--model", default=None, help="CLIP model (default: a tiny random one)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray cluster")
    args = parser.parse_args()

    import ray

    from gencritic.engines.ray_engine import score_with_ray
    from gencritic.scoring import ScoreOptions, score

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        if args.model is None:
            from tests.conftest import build_tiny_hf_clip

            model = str(build_tiny_hf_clip(work / "model"))
        else:
            model = args.model
        manifest = make_manifest(work / "media", args.items)

        def opts() -> ScoreOptions:
            return ScoreOptions(model=model, device="cpu", dtype="fp32", cache_dir=None, progress=False,
                                batch_size=args.batch_size)

        t = time.perf_counter()
        score(manifest, out=work / "local", options=opts())
        local_s = time.perf_counter() - t

        t = time.perf_counter()
        ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, configure_logging=False)
        init_s = time.perf_counter() - t
        t = time.perf_counter()
        score_with_ray(manifest, out=work / "ray", options=opts(), num_actors=args.actors)
        ray_s = time.perf_counter() - t
        ray.shutdown()

        same = all((work / "ray" / f).read_bytes() == (work / "local" / f).read_bytes()
                   for f in ("results.csv", "views.csv"))
        result = {"items": args.items, "batch_size": args.batch_size, "actors": args.actors, "cluster_cpus": args.cpus,
                  "model": "tiny-random-clip" if args.model is None else model,
                  "local_engine_s": round(local_s, 2), "ray_init_s": round(init_s, 2),
                  "ray_engine_s": round(ray_s, 2), "ray_over_local": round(ray_s / local_s, 2),
                  "ray_incl_init_over_local": round((ray_s + init_s) / local_s, 2), "files_identical": same}
        print(f"local engine : {local_s:8.2f} s  ({args.items / local_s:.1f} items/s)")
        print(f"ray init     : {init_s:8.2f} s")
        print(f"ray engine   : {ray_s:8.2f} s  ({args.items / ray_s:.1f} items/s), {args.actors} actors")
        print(f"ratio ray/local: {ray_s / local_s:.2f}x (with init {(ray_s + init_s) / local_s:.2f}x); "
              f"files identical: {same}")
        print(json.dumps(result))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
