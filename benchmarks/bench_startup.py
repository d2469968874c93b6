"""Whole processes, as a user runs them: ``gencritic score`` cold and re-run warm against the
torchmetrics ``CLIPScore`` script a user would write (benchmarks/torchmetrics_clipscore.py).

Full-size ViT-B/32 with random weights (benchmarks/_models.py), N images of SIZE² with prompts.
Each contender is a fresh process, timed from start to exit (imports, model load, scoring,
writing): the torchmetrics script; ``gencritic score`` into a new output folder with an empty
embedding cache (cold); and ``gencritic score`` into another new output folder with that cache
warm (every embedding there: no model is loaded). Rounds alternate the three, since this VM's
speed drifts; medians are reported, with every round's figures.

    python benchmarks/bench_startup.py --n 384 --size 256 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._models import build_vit_b32
from benchmarks.bench_clip import make_inputs

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str]) -> float:
    """Wall seconds of one process, start to exit; a failure stops the benchmark with its output."""
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
    wall = time.perf_counter() - t
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=384)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        model = build_vit_b32(tmp / "vit-b32")
        (tmp / "imgs").mkdir()
        manifest, _ = make_inputs(tmp / "imgs", args.n, args.size)
        gencritic = [sys.executable, "-m", "gencritic.cli.main", "score", str(manifest), "--model", str(model),
                     "--device", "cpu", "--batch-size", str(args.batch), "--quiet"]
        figures: dict[str, list[float]] = {"torchmetrics": [], "cold": [], "warm": []}
        for rnd in range(args.rounds):
            cache = tmp / f"cache{rnd}"
            figures["torchmetrics"].append(timed([sys.executable, str(HERE / "torchmetrics_clipscore.py"),
                                                  str(model), str(manifest), "--batch", str(args.batch)]))
            figures["cold"].append(timed([*gencritic, "--out", str(tmp / f"cold{rnd}"), "--cache-dir", str(cache)]))
            figures["warm"].append(timed([*gencritic, "--out", str(tmp / f"warm{rnd}"), "--cache-dir", str(cache)]))
            print(f"round {rnd + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in figures.items()), flush=True)
        med = {k: statistics.median(v) for k, v in figures.items()}
        print(f"{args.n} images {args.size}^2, ViT-B/32 (random weights), batch {args.batch}, whole processes, "
              f"median of {args.rounds} alternating rounds")
        print(f"torchmetrics CLIPScore script : {med['torchmetrics']:7.2f} s")
        print(f"gencritic score, cold cache   : {med['cold']:7.2f} s  ratio {med['torchmetrics'] / med['cold']:.2f}x "
              f"(acceptance >= 1.3x)")
        print(f"gencritic score, warm re-run  : {med['warm']:7.2f} s  ratio {med['torchmetrics'] / med['warm']:.1f}x "
              f"(acceptance >= 10x)")


if __name__ == "__main__":
    main()
