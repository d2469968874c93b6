"""``.blend`` files, read through the user's Blender: converted once to GLB, cached by content.

Why: Toys4k, the set TRELLIS reports CLIP scores on, ships as ``.blend`` files
(``toys4k_blend_files/``), and converting 3,229 of them by hand before a run is where people make
mistakes. gencritic runs Blender (:mod:`gencritic.blender`) on them with
``mesh/blend_worker.py``, which checks what the exporter would lose without a word (missing
textures and libraries fail the file; shaders other than Principled BSDF are rewired so their
colour survives) and writes a GLB that the rasteriser then loads like any other.

Cache: ``<cache>/blend/<key[:2]>/<key>.glb`` and ``<key>.json`` (the manifest: external files
with their sha256, the worker's notes), ``key = sha256(.blend bytes, converter version, Blender
version)``. A hit is checked against the external files' hashes, so an edited texture converts
again; files beside the .blend are recorded relative to it, so a copy of the .blend elsewhere
is checked against its own textures (a copy without them converts again, and fails). The asset's hash (what render and embedding caches key on) covers the .blend, its
external files and the converter, so a cached render is never reused across Blender versions.

Batching: :func:`convert_blend_files` runs several files per Blender start (a start costs ~1 s,
a small file ~0.1 s to convert), in parallel processes; a crash or timeout fails the file in
flight and the rest go on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from gencritic.atomic import atomic_open
from gencritic.blender import BlenderMissing, blender_command, blender_version, last_line
from gencritic.cache import default_cache_dir
from gencritic.errors import ItemError
from gencritic.hashing import sha256_file
from gencritic.jsonio import dumps_strict

log = logging.getLogger(__name__)

WORKER = Path(__file__).with_name("blend_worker.py")
# bump when the worker's output changes; blend-2: notes carry their warning kind, Emission shaders are noted
CONVERTER_VERSION = "blend-2"
FILES_PER_START = 16
TIMEOUT_PER_FILE_S = float(os.environ.get("GENCRITIC_BLEND_TIMEOUT", "300"))


@dataclass(frozen=True)
class ConvertedBlend:
    """A .blend converted to GLB: where the GLB is, what outside files it read, what it noted."""

    glb: Path
    externals: tuple[Path, ...]
    notes: tuple[str, ...]
    converter: str  # converter and Blender version: part of the asset's hash
    sha256s: tuple[str, ...]  # of the .blend, then of each external file (checked when found)


def conversion_cache_dir() -> Path:
    return default_cache_dir() / "blend"


def _converter_id() -> str:
    return f"{CONVERTER_VERSION}/blender-{blender_version()}"


def _key(blend_sha256: str, converter: str) -> str:
    return hashlib.sha256(f"{blend_sha256}|{converter}".encode()).hexdigest()


def _entry(key: str) -> tuple[Path, Path]:
    folder = conversion_cache_dir() / key[:2]
    return folder / f"{key}.glb", folder / f"{key}.json"


def cached_conversion(path: Path, converter: str | None = None) -> ConvertedBlend | None:
    """The cached conversion of ``path`` if it is there and its external files are unchanged."""
    converter = converter or _converter_id()
    blend_sha256 = sha256_file(path)
    glb, manifest_path = _entry(_key(blend_sha256, converter))
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return None
    if not glb.is_file():
        return None
    externals, hashes = [], [blend_sha256]
    for ext in manifest.get("externals", []):
        # beside the .blend (Blender's "//" paths): looked for beside *this* copy of the file
        ext_path = path.parent / ext["relative"] if "relative" in ext else Path(ext["path"])
        try:
            if sha256_file(ext_path) != ext["sha256"]:
                return None
        except OSError:
            return None
        externals.append(ext_path)
        hashes.append(ext["sha256"])
    return ConvertedBlend(glb, tuple(externals), tuple(manifest.get("notes", [])), converter, tuple(hashes))


def _store(path: Path, converter: str, produced: Path, status: dict) -> ConvertedBlend:
    blend_sha256 = sha256_file(path)
    key = _key(blend_sha256, converter)
    glb, manifest_path = _entry(key)
    glb.parent.mkdir(parents=True, exist_ok=True)
    externals = [Path(p) for p in status.get("externals", [])]
    folder = path.parent.resolve()
    recorded = []
    for ext in externals:
        entry = {"path": str(ext), "sha256": sha256_file(ext)}
        if ext.resolve().is_relative_to(folder):  # a copy of the .blend reads its own copy of these
            entry["relative"] = ext.resolve().relative_to(folder).as_posix()
        recorded.append(entry)
    manifest = {"source": str(path), "converter": converter, "objects": status.get("objects"),
                "externals": recorded, "notes": status.get("notes", [])}
    os.replace(produced, glb)  # the GLB first: a manifest always names a complete file
    with atomic_open(manifest_path, prefix=f".{key}.", fsync=False) as fh:  # a cache entry: no fsync
        fh.write(dumps_strict(manifest, indent=1))
    return ConvertedBlend(glb, tuple(externals), tuple(manifest["notes"]), converter,
                          (blend_sha256, *(entry["sha256"] for entry in recorded)))


def _run_blender(command: list[str], job: Path, status: Path, log_path: Path, timeout_s: float) -> str | None:
    """Run one worker over a job; None when it exits cleanly, else why it stopped. The time
    limit is per file: it restarts each time the worker reports a file done."""
    import time

    with log_path.open("w") as log_file:
        proc = subprocess.Popen([*command, str(job)], stdout=log_file, stderr=subprocess.STDOUT)
        reported, deadline = 0, time.monotonic() + timeout_s
        while proc.poll() is None:
            lines = status.read_text(encoding="utf-8").count("\n") if status.exists() else 0
            if lines != reported:
                reported, deadline = lines, time.monotonic() + timeout_s
            elif time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                return (f"Blender did not finish converting it within {timeout_s:.0f} s "
                        f"(GENCRITIC_BLEND_TIMEOUT sets the limit)")
            time.sleep(0.05)
    if proc.returncode != 0:
        output = log_path.read_text(errors="replace") if log_path.exists() else ""
        return f"Blender stopped (exit {proc.returncode}) converting it: {last_line(output)}"
    return None


def _run_chunk(chunk: list[Path], converter: str, timeout_s: float) -> dict[Path, ConvertedBlend | str]:
    """Convert ``chunk`` in one Blender process; a crash or hang fails the file in flight and the
    files after it are run again in a fresh process."""
    results: dict[Path, ConvertedBlend | str] = {}
    remaining = list(chunk)
    command = blender_command(WORKER)
    staging_root = conversion_cache_dir()
    staging_root.mkdir(parents=True, exist_ok=True)
    while remaining:
        with tempfile.TemporaryDirectory(prefix=".staging-", dir=staging_root) as tmp:
            folder = Path(tmp)
            outputs = [folder / f"{i}.glb" for i in range(len(remaining))]
            job, status_path = folder / "job.json", folder / "status.jsonl"
            files = [{"src": str(p), "dst": str(o)} for p, o in zip(remaining, outputs, strict=True)]
            job.write_text(json.dumps({"files": files, "status": str(status_path)}))
            problem = _run_blender(command, job, status_path, folder / "blender.log", timeout_s)
            lines = status_path.read_text(encoding="utf-8").splitlines() if status_path.exists() else []
            statuses = []
            for line in lines:
                try:
                    statuses.append(json.loads(line))
                except ValueError:  # a line cut short by a crash: that file was in flight
                    break
            for src, output, status in zip(remaining, outputs, statuses, strict=False):
                if status.get("ok"):
                    results[src] = _store(src, converter, output, status)
                else:
                    results[src] = f"{src.name}: {status.get('error')}"
            finished = len(statuses)
            if finished < len(remaining):
                in_flight = remaining[finished]
                results[in_flight] = f"{in_flight.name}: {problem or 'Blender gave no result for it'}"
                finished += 1
            remaining = remaining[finished:]
    return results


def convert_blend_files(paths: Sequence[Path], jobs: int | None = None,
                        on_done: Callable[[int], None] | None = None) -> dict[Path, ConvertedBlend | str]:
    """Convert every ``.blend`` in ``paths`` that is not cached; return each file's conversion
    or the reason it failed. ``jobs`` Blender processes run at once (default: one per core, up
    to 8); ``on_done(n)`` is told as files finish (progress). Raises :class:`BlenderMissing`
    when there is no Blender at all (a run-level problem, said once)."""
    converter = _converter_id()
    results: dict[Path, ConvertedBlend | str] = {}
    todo: list[Path] = []
    for path in dict.fromkeys(Path(p) for p in paths):
        try:
            hit = cached_conversion(path, converter)
        except OSError as exc:
            results[path] = f"cannot read {path}: {exc.strerror or exc}"
            continue
        if hit is not None:
            results[path] = hit
        else:
            todo.append(path)
    if on_done and len(results):
        on_done(len(results))
    if not todo:
        return results
    jobs = max(1, min(jobs or min(os.cpu_count() or 1, 8), len(todo)))
    per_chunk = max(1, min(FILES_PER_START, math.ceil(len(todo) / jobs)))
    chunks = [todo[i:i + per_chunk] for i in range(0, len(todo), per_chunk)]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for chunk_results in pool.map(lambda c: _run_chunk(c, converter, TIMEOUT_PER_FILE_S), chunks):
            results.update(chunk_results)
            if on_done:
                on_done(len(chunk_results))
    return results


_warned: set[str] = set()


def converted_blend(path: Path) -> ConvertedBlend:
    """The GLB of a ``.blend`` (cached, or converted now); :class:`ItemError` with the reason when
    the file cannot be converted faithfully or there is no Blender."""
    path = Path(path)
    try:
        converter = _converter_id()
        hit = cached_conversion(path, converter)
        if hit is None:
            outcome = convert_blend_files([path], jobs=1)[path]
            if isinstance(outcome, str):
                raise ItemError(outcome)
            hit = outcome
    except BlenderMissing as exc:
        raise ItemError(f"{path.name}: reading .blend files needs Blender; {exc}") from None
    except OSError as exc:
        raise ItemError(f"cannot read {path}: {exc.strerror or exc}") from None
    if hit.notes and str(path) not in _warned:
        _warned.add(str(path))
        for note in hit.notes:
            log.warning("%s (converted by Blender): %s", path.name, note)
    return hit


def require_blender(paths: Sequence[Path]) -> None:
    """One line before any work when ``paths`` hold .blend files and there is no Blender."""
    from gencritic.errors import InputError

    paths = [Path(p) for p in paths if Path(p).suffix.lower() == ".blend"]
    if not paths:
        return
    try:
        blender_version()
    except BlenderMissing as exc:
        raise InputError(f"{len(paths)} .blend file(s) (e.g. {paths[0]}) need Blender to be read; {exc}") from None


def convert_with_progress(paths: Sequence[Path], show_progress: bool = True) -> dict[Path, ConvertedBlend | str]:
    """Before a run: convert every uncached ``.blend`` among ``paths`` in batches (a progress bar
    on a terminal); each file's conversion, or why it failed.

    Why up front: one Blender start per file would cost ~1 s each; batched, a small file costs
    ~0.1 s. No Blender at all stops the run here with one line (an :class:`InputError`)."""
    blends = list(dict.fromkeys(Path(p) for p in paths if Path(p).suffix.lower() == ".blend"))
    if not blends:
        return {}
    require_blender(blends)
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]converting .blend"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), disable=not show_progress or not sys.stderr.isatty())
    with bar:
        task = bar.add_task("convert", total=len(blends))
        return convert_blend_files(blends, on_done=lambda n: bar.advance(task, n))


def prepare_blend_files(paths: Sequence[Path], show_progress: bool = True) -> dict[Path, str]:
    """:func:`convert_with_progress`, keeping the failures (path -> reason) for the run to write
    as failed rows."""
    return {path: outcome for path, outcome in convert_with_progress(paths, show_progress).items()
            if isinstance(outcome, str)}


@dataclass(frozen=True)
class ExportReport:
    """One .blend of :func:`export_glbs`: where its GLB went, or why there is none."""

    source: Path
    glb: Path | None
    error: str | None
    notes: tuple[str, ...] = ()


def export_glbs(source: Path, out: Path, show_progress: bool = True) -> list[ExportReport]:
    """Convert ``source`` (a .blend, or a folder searched recursively) into ``out``, keeping the
    folder layout (``a/b.blend`` -> ``out/a/b.glb``), for tools that read GLB.

    The same conversion as scoring uses (and its cache): what a run would draw is what is written."""
    from gencritic.errors import InputError

    source = Path(source)
    if source.is_file():
        if source.suffix.lower() != ".blend":
            raise InputError(f"{source} is not a .blend file: give a .blend or a folder of them")
        blends, base = [source], source.parent
    elif source.is_dir():
        blends = sorted(p for p in source.rglob("*.blend") if p.is_file()
                        and not any(part.startswith(".") for part in p.relative_to(source).parts))
        base = source
        if not blends:
            raise InputError(f"no .blend files under {source}")
    else:
        raise InputError(f"input not found: {source} (give a .blend file or a folder of them)")
    outcomes = convert_with_progress(blends, show_progress)
    reports = []
    for blend in blends:
        converted = outcomes[blend]
        if isinstance(converted, str):
            reports.append(ExportReport(blend, None, converted))
            continue
        target = Path(out) / blend.relative_to(base).with_suffix(".glb")
        with atomic_open(target, binary=True) as fh, open(converted.glb, "rb") as src:  # an output: umask applies
            shutil.copyfileobj(src, fh)
        reports.append(ExportReport(blend, target, None, converted.notes))
    return reports
