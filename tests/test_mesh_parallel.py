"""Meshes loaded in worker processes are the same meshes, and a dying worker fails one file."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import InputError, ItemError
from gencritic.mesh import MeshData, load_asset, parallel
from tests.conftest import MESHES_WITHOUT_THEIR_MTL, shared_data


@pytest.fixture
def two_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    parallel.shutdown()
    monkeypatch.setenv("GENCRITIC_LOAD_PROCESSES", "2")
    yield
    parallel.shutdown()


def _assert_same(a: MeshData, b: MeshData) -> None:
    assert len(a.primitives) == len(b.primitives)
    for pa, pb in zip(a.primitives, b.primitives, strict=True):
        for f in fields(pa):
            va, vb = getattr(pa, f.name), getattr(pb, f.name)
            if isinstance(va, np.ndarray) or isinstance(vb, np.ndarray):
                assert va is not None and vb is not None and va.dtype == vb.dtype, f.name
                assert np.array_equal(va, vb), f.name
            else:
                assert va == vb, f.name


def test_worker_processes_load_the_same_arrays(tmp_path: Path, two_processes: None) -> None:
    folder = shared_data("meshes-small")
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".glb", ".obj", ".ply", ".stl"})
    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([200, 30, 30, 255], (len(box.vertices), 1)).astype(np.uint8)
    box.export(tmp_path / "box.ply")
    for path in [tmp_path / "box.ply", *paths]:
        allow = path.name in MESHES_WITHOUT_THEIR_MTL  # the option reaches the worker process
        _assert_same(parallel.load_asset_in_worker(path, allow_untextured=allow), load_asset(path, allow_untextured=allow))
    assert parallel._pool is not None  # the work did go to the worker processes


@pytest.mark.parametrize(("content", "reason"), [(b"not a gltf file at all" * 10, "cannot read mesh"),
                                                 (b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "zero area")])
def test_errors_cross_the_process_boundary_with_their_text(tmp_path: Path, two_processes: None,
                                                           content: bytes, reason: str) -> None:
    path = tmp_path / ("bad.glb" if content.startswith(b"not") else "flat.obj")
    path.write_bytes(content)
    with pytest.raises(ItemError, match=reason):
        parallel.load_asset_in_worker(path)


def _die_on_poison(path: Path) -> MeshData:
    if path.name == "poison.obj":
        os._exit(3)  # what a segfault in a native reader or the OOM killer looks like to the pool
    return load_asset(path)


def test_a_file_that_kills_its_worker_fails_alone(tmp_path: Path, two_processes: None,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "load_asset", _die_on_poison)  # forked children inherit it
    good = tmp_path / "good.ply"
    trimesh.creation.box().export(good)
    poison = tmp_path / "poison.obj"
    poison.write_bytes(b"v 0 0 0\n")
    with pytest.raises(ItemError, match="crashed its worker process twice"):
        parallel.load_asset_in_worker(poison)
    assert parallel.load_asset_in_worker(good).num_faces == 12  # a fresh pool serves the next file


def test_zero_processes_loads_in_the_calling_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parallel.shutdown()
    monkeypatch.setenv("GENCRITIC_LOAD_PROCESSES", "0")
    trimesh.creation.box().export(tmp_path / "b.ply")
    assert parallel.load_asset_in_worker(tmp_path / "b.ply").num_faces == 12
    assert parallel._pool is None
    monkeypatch.setenv("GENCRITIC_LOAD_PROCESSES", "many")
    with pytest.raises(InputError, match="GENCRITIC_LOAD_PROCESSES must be a whole number"):
        parallel.load_asset_in_worker(tmp_path / "b.ply")


@pytest.mark.parametrize(("name", "value"), [("GENCRITIC_LOAD_PROCESSES", "many"), ("GENCRITIC_LOAD_TIMEOUT_S", "-5")])
def test_a_bad_loader_variable_stops_a_run_before_any_work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           name: str, value: str) -> None:
    from gencritic.render.api import render_to_folder
    from gencritic.scoring.schedule import resolve_prefetch

    monkeypatch.setenv(name, value)
    with pytest.raises(InputError, match=name):
        resolve_prefetch(None, "cpu")  # what `score` and `toys4k` call before loading models
    trimesh.creation.box().export(tmp_path / "b.ply")
    with pytest.raises(InputError, match=name):
        render_to_folder(tmp_path / "b.ply", tmp_path / "views")
    assert not (tmp_path / "views").exists()


def _hang_on_slow(path: Path) -> MeshData:
    if path.name == "slow.obj":
        import time

        time.sleep(3600)  # a reader stuck on a pathological file
    return load_asset(path)


def test_a_stuck_worker_is_stopped_and_fails_its_file(tmp_path: Path, two_processes: None,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(parallel, "load_asset", _hang_on_slow)
    monkeypatch.setenv("GENCRITIC_LOAD_TIMEOUT_S", "1")
    good = tmp_path / "good.ply"
    trimesh.creation.box().export(good)
    slow = tmp_path / "slow.obj"
    slow.write_bytes(b"v 0 0 0\n")
    started = time.monotonic()
    with pytest.raises(ItemError, match="took over 1 s in its worker process"):
        parallel.load_asset_in_worker(slow)
    assert time.monotonic() - started < 20
    assert parallel.load_asset_in_worker(good).num_faces == 12


def _import_then_load(path: Path) -> MeshData:
    import gencritic_test_slow_import  # noqa: F401  (what a reader imports on first use)

    return load_asset(path)


def test_a_worker_forked_during_another_threads_import_does_not_hang(
        tmp_path: Path, two_processes: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers are forked while other threads run. A fork copies a module's import lock as it is:
    a child forked while another thread was half-way through importing a module its reader needs
    used to wait on that lock forever (seen as 'took over 600 s' in test_toys4k under load). The
    pool imports what its readers use before forking, so the load finishes."""
    import sys
    import threading
    import time

    (tmp_path / "gencritic_test_slow_import.py").write_text(
        "import pathlib, time\n"
        f"pathlib.Path({str(tmp_path / 'importing')!r}).touch()\n"
        "time.sleep(2.0)  # a long import: another thread holds this module's lock meanwhile\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "gencritic_test_slow_import", raising=False)
    monkeypatch.setattr(parallel, "load_asset", _import_then_load)
    monkeypatch.setenv("GENCRITIC_LOAD_TIMEOUT_S", "15")
    box = tmp_path / "box.ply"
    trimesh.creation.box().export(box)

    importer = threading.Thread(target=lambda: __import__("gencritic_test_slow_import"))
    importer.start()
    deadline = time.monotonic() + 10
    while not (tmp_path / "importing").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert (tmp_path / "importing").exists()
    started = time.monotonic()
    try:
        assert parallel.load_asset_in_worker(box).num_faces == 12  # the pool is forked now, mid-import
    finally:
        importer.join()
    assert time.monotonic() - started < 12
