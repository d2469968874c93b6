"""Start-up cost of the command line (issue 18, item 5).

``gencritic --help`` took 1.5 s on a quiet machine and 3 s on a busy one because torch and
transformers were imported to build help text. Help, the metric and profile listings and the
other light commands must not import the heavy stacks: each is run in a fresh interpreter and
the heavy modules it left in ``sys.modules`` are named. benchmarks/bench_help_startup.py times them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# numpy, PIL and pydantic are allowed (metric metadata and option schemas use them); these are not.
HEAVY = ("torch", "transformers", "open_clip", "pandas", "scipy", "trimesh", "moderngl", "fastapi", "uvicorn",
         "ray", "cv2", "matplotlib", "huggingface_hub")

# Runs each command line in this interpreter, one after the other, and prints which heavy module
# each one imported first (a module imported by an earlier command is charged to that one, and
# what importing the command line itself costs is charged to the first).
_PROBE = r"""
import json, sys
heavy = json.loads(sys.argv[1])
commands = json.loads(sys.argv[2])
seen = {m for m in heavy if m in sys.modules}
import typer.main
from gencritic.cli.main import app, main

def leaves(group, prefix):
    for name, cmd in sorted(group.commands.items()):
        path = [*prefix, name]
        yield [*path, "--help"]
        if hasattr(cmd, "commands"):
            yield from leaves(cmd, path)

if commands == "ALL_HELP":
    commands = [["--help"], *leaves(typer.main.get_command(app), [])]
charged = {}
for argv in commands:
    sys.argv = ["gencritic", *argv]
    try:
        main()
    except SystemExit:
        pass
    charged[" ".join(argv)] = sorted(m for m in heavy if m in sys.modules and m not in seen)
    seen |= set(charged[" ".join(argv)])
print("PROBE " + json.dumps(charged), file=sys.stderr)
"""


def _probe(commands: list[list[str]] | str, env: dict[str, str] | None = None) -> dict[str, list[str]]:
    run = subprocess.run([sys.executable, "-c", _PROBE, json.dumps(HEAVY), json.dumps(commands)],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "COLUMNS": "200", **(env or {})})
    lines = [ln for ln in run.stderr.splitlines() if ln.startswith("PROBE ")]
    assert run.returncode == 0 and lines, run.stderr[-2000:]
    return json.loads(lines[-1].removeprefix("PROBE "))  # type: ignore[no-any-return]


def test_help_of_every_command_imports_no_heavy_module() -> None:
    charged = _probe("ALL_HELP")
    assert "--help" in charged and "score --help" in charged and "generate eval --help" in charged, sorted(charged)
    assert len(charged) > 20, sorted(charged)  # every command and sub-command was asked for its help
    heavy = {argv: mods for argv, mods in charged.items() if mods}
    assert heavy == {}, f"help imported heavy modules: {heavy}"


def test_listing_commands_import_no_heavy_module(tmp_path: Path) -> None:
    commands = [["--version"], ["metrics"], ["metrics", "--json"], ["profiles"], ["profiles", "--json"],
                ["profiles", "--show", "explosion"], ["cache", "info", "--cache-dir", str(tmp_path)],
                ["cache", "prune", "--dry-run", "--cache-dir", str(tmp_path)]]
    charged = _probe(commands)
    heavy = {argv: mods for argv, mods in charged.items() if mods}
    assert heavy == {}, f"light commands imported heavy modules: {heavy}"


def test_metric_listing_is_complete_without_torch() -> None:
    """The registry's metadata (names, columns, option schemas) is read with torch absent."""
    code = ("import json, sys; sys.modules['torch'] = None; sys.modules['scipy'] = None\n"
            "from gencritic.metrics.registry import all_metrics\n"
            "print(json.dumps(sorted(all_metrics())))")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    names = json.loads(run.stdout)
    from gencritic.metrics.registry import all_metrics

    assert names == sorted(all_metrics())  # the same registry as with torch importable
    assert {"clip", "lpips", "ssim", "dino", "pickscore", "hpsv2", "imagereward", "aesthetic", "niqe", "brisque",
            "learned", "ladder", "flicker"} <= set(names)


def test_help_starts_quickly() -> None:
    """Generous bound (the machine is shared); the quiet-machine figure is in benchmarks/bench_help_startup.py."""
    times = []
    for _ in range(5):
        start = time.perf_counter()
        run = subprocess.run([sys.executable, "-c", "from gencritic.cli.main import main; main()", "--help"],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
        times.append(time.perf_counter() - start)
        assert run.returncode == 0 and "Usage" in run.stdout, run.stderr[-2000:]
    print(f"gencritic --help: best {min(times):.3f} s of {len(times)} (all: {', '.join(f'{t:.2f}' for t in times)})")
    assert min(times) < 1.0, times


def test_a_hub_warning_is_printed_once(tmp_path: Path) -> None:
    """huggingface_hub has its own stderr handler and propagates to the root logger the CLI sets
    up: an offline machine's retry warnings came out twice each."""
    code = ("import logging, sys\n"
            "from gencritic.cli.main import app\n"
            f"app(['cache', 'info', '--cache-dir', {str(tmp_path)!r}], standalone_mode=False)\n"
            "import huggingface_hub.utils.logging as hl\n"
            "hl.get_logger('huggingface_hub.file_download').warning('hub retry 1/5')\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("hub retry 1/5") == 1, res.stderr
