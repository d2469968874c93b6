"""How long does the command line take to start: ``gencritic --help`` and the light commands?

Each command runs in a fresh interpreter (as a user's shell starts it), ``--runs`` times; the
table gives the best and the median wall time and the median CPU time (user + system, which a
busy shared machine inflates far less than wall time: on a quiet machine the two agree), beside
two floors: an empty Python and Python importing Typer (whose rich help formatting the command
line uses). ``--ref PATH`` also times
another checkout's ``src`` (e.g. the main branch) in the same run, so both are measured under
the same load. Issue 18 asks for ``--help`` and light commands in 0.5 s or less on this CPU;
before lazy imports ``--help`` took 1.5 s on a quiet machine (torch and transformers loaded to
print help). ``hyperfine`` gives the same figure with more statistics:

    hyperfine -w 2 'gencritic --help'

    python benchmarks/bench_help_startup.py [--runs 10] [--ref /path/to/other/checkout]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN = "from gencritic.cli.main import main; main()"  # what the console script runs


def commands(cache: str) -> list[tuple[str, list[str]]]:
    return [
        ("python (empty)", ["-c", "pass"]),
        ("python + typer", ["-c", "import typer, typer.rich_utils"]),
        ("gencritic --help", ["-c", MAIN, "--help"]),
        ("gencritic score --help", ["-c", MAIN, "score", "--help"]),
        ("gencritic metrics", ["-c", MAIN, "metrics"]),
        ("gencritic metrics --json", ["-c", MAIN, "metrics", "--json"]),
        ("gencritic profiles", ["-c", MAIN, "profiles"]),
        ("gencritic cache info", ["-c", MAIN, "cache", "info", "--cache-dir", cache]),
    ]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def time_command(args: list[str], src: Path, runs: int) -> tuple[list[float], list[float]]:
    """(wall times, CPU times) of ``runs`` fresh processes, after one untimed run."""
    env = {**os.environ, "PYTHONPATH": str(src), "COLUMNS": "120"}
    subprocess.run([sys.executable, *args], capture_output=True, env=env, check=True)  # warm the file cache
    walls, cpus = [], []
    for _ in range(runs):
        cpu, start = _children_cpu(), time.perf_counter()
        subprocess.run([sys.executable, *args], capture_output=True, env=env, check=True)
        walls.append(time.perf_counter() - start)
        cpus.append(_children_cpu() - cpu)
    return walls, cpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--ref", type=Path, default=None, help="another checkout to time beside this one")
    args = parser.parse_args()
    sources = [("this checkout", ROOT / "src")]
    if args.ref is not None:
        sources.append((f"ref {args.ref}", args.ref / "src"))
    with tempfile.TemporaryDirectory() as cache:
        print(f"{'command':<26}" + "".join(f"{label[:34]:>36}" for label, _ in sources))
        print(f"{'':<26}" + "".join(f"{'wall best / median, CPU (s)':>36}" for _ in sources))
        for name, argv in commands(cache):
            cells = []
            for _, src in sources:
                walls, cpus = time_command(argv, src, args.runs)
                cells.append(f"{min(walls):>17.3f} / {statistics.median(walls):.3f}, {statistics.median(cpus):.3f}")
            print(f"{name:<26}" + "".join(cells))
    print(f"({args.runs} runs each, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f})")


if __name__ == "__main__":
    main()
