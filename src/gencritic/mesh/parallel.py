"""Load meshes in worker processes, so that two assets really load at once.

Why processes: parsing a mesh file (trimesh's OBJ/PLY readers) is mostly Python string work
that holds the GIL. Measured on a 2-core CPU: 8 real meshes took 220 ms one after another,
296 ms on two threads (slower: the threads fight over the GIL) and 154 ms on two processes;
four 100k-face OBJ files 1420 / 1745 / 780 ms. Every scoring run of 3D assets loads each
file once, so this is time taken straight off a run (a 100k-face OBJ costs about as much to
parse as ViT-B/32 takes to encode its 8 views on that CPU).

The pool forks (as PyTorch's DataLoader workers do on Linux): children start in
milliseconds, need no ``if __name__ == "__main__"`` guard in users' scripts, and only run
numpy/trimesh code, never torch or GL. Where fork is not available (macOS, Windows) or
``GENCRITIC_LOAD_PROCESSES=0``, files are loaded in the calling thread, with identical results.
Errors cross the process boundary as :class:`~gencritic.errors.ItemError` with their text.

Workers die with their parent. A forked child inherits every open descriptor (a service's
listening socket and its clients' connections) and every signal handler (uvicorn's SIGTERM
handler only sets a flag in the copy), so a killed service used to leave workers that held
its port and ignored SIGTERM. Each worker therefore asks the kernel for SIGKILL when its
parent goes (``PR_SET_PDEATHSIG``, Linux), takes the default SIGTERM action back, moves to its
own process group (a terminal's Ctrl-C is the parent's to handle), and closes the sockets it
inherited. The parent-death signal fires when the *thread* that forked the child ends, so
workers are forked by one thread that lives as long as the process (:func:`_in_launcher`),
never by a request's or a run's short-lived thread.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import logging
import multiprocessing
import os
import queue
import signal
import stat
import sys
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout  # a builtin alias only from 3.11
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from gencritic.errors import InputError, ItemError
from gencritic.mesh.data import MeshData
from gencritic.mesh.loaders import load_asset

logger = logging.getLogger(__name__)
_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def load_timeout_s() -> float:
    """Seconds one file may take in a worker (``GENCRITIC_LOAD_TIMEOUT_S``, default 600).

    Why a limit: a worker that never answers (a reader stuck on a pathological file) would
    otherwise stall an unattended run forever. Minutes are generous: a 100k-face OBJ parses in
    about a third of a second.
    """
    env = os.environ.get("GENCRITIC_LOAD_TIMEOUT_S", "600")
    try:
        value = float(env)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise InputError(f"GENCRITIC_LOAD_TIMEOUT_S must be a positive number of seconds, got {env!r}")
    return value


def load_processes() -> int:
    """Worker processes for mesh loading: ``GENCRITIC_LOAD_PROCESSES``, else one per core up to 8.

    Why up to 8: a 100k-face OBJ with uvs and normals (6.7 MB) takes ~270 ms to parse here, so
    four processes would cap a GPU machine at ~15 such assets/s, near the 10/s it is asked for;
    eight leave headroom on a 16-core GPU host. (Not yet measured on one: none was lent.)"""
    env = os.environ.get("GENCRITIC_LOAD_PROCESSES")
    if env is not None:
        try:
            return max(0, int(env))
        except ValueError:
            raise InputError(f"GENCRITIC_LOAD_PROCESSES must be a whole number (0 = load in the calling "
                             f"thread), got {env!r}") from None
    cores = os.cpu_count() or 1
    if not sys.platform.startswith("linux") or cores == 1:
        return 0
    return min(8, cores)


def check_environment() -> None:
    """Parse the loader's environment variables now: callers do this before any work, so a
    typo is one clear line instead of a failed row for every asset."""
    load_processes()
    load_timeout_s()


def _init_worker(parent_pid: int | None) -> None:
    # Ctrl-C is the parent's to handle (it saves finished work and shuts the pool down);
    # children dying of it mid-load would only add tracebacks to the terminal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the parent's handler (uvicorn's sets a flag)
    _die_with_parent(parent_pid)
    with contextlib.suppress(OSError, AttributeError):
        os.setpgid(0, 0)
    _close_inherited_sockets()
    from gencritic.mesh import sidefiles

    sidefiles.warn_in_this_process = False  # the parent says it once, when it hashes the asset


def _die_with_parent(parent_pid: int | None) -> None:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux), and exit now if the
    parent is already gone (it may have died between the fork and this call). ``parent_pid``
    is None under a fork server, which is the parent and itself dies with the caller."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(0)


def _close_inherited_sockets() -> None:
    """Close every socket the fork copied (a listening port, clients' connections): a worker
    needs none (its pool talks through pipes), and holding them kept a dead service's port."""
    fd_dir = "/proc/self/fd"
    if not os.path.isdir(fd_dir):
        return
    for name in os.listdir(fd_dir):
        fd = int(name)
        if fd <= 2:
            continue
        with contextlib.suppress(OSError, AttributeError):
            if stat.S_ISSOCK(os.fstat(fd).st_mode):
                os.close(fd)


_launch_requests: queue.SimpleQueue[tuple[Callable[[], object], Future[object]]] = queue.SimpleQueue()
_launcher: threading.Thread | None = None


def _launcher_loop() -> None:
    while True:
        job, future = _launch_requests.get()
        try:
            future.set_result(job())
        except BaseException as exc:  # handed to the caller, never lost
            future.set_exception(exc)


def _in_launcher(job: Callable[[], ProcessPoolExecutor]) -> ProcessPoolExecutor:
    """Run ``job`` on the process's long-lived launcher thread (started once) and return its result."""
    global _launcher
    if _launcher is None or not _launcher.is_alive():
        _launcher = threading.Thread(target=_launcher_loop, name="gencritic-mesh-launcher", daemon=True)
        _launcher.start()
    future: Future[object] = Future()
    _launch_requests.put((job, future))
    pool = future.result()
    assert isinstance(pool, ProcessPoolExecutor)
    return pool


def _noop() -> None:
    return None


def _write_warmup_assets(folder: Path) -> list[Path]:
    """Tiny files of each format the readers handle, with what they read beside them (a textured
    OBJ with its MTL and PNG, a vertex-coloured PLY, an STL, a textured GLB)."""
    import numpy as np
    import trimesh
    from PIL import Image

    texture = Image.fromarray(np.full((4, 4, 3), 200, np.uint8), "RGB")
    uv = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    quad = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]], [[0, 1, 2], [1, 3, 2]], process=False,
                           visual=trimesh.visual.TextureVisuals(
                               uv=uv, material=trimesh.visual.material.PBRMaterial(baseColorTexture=texture)))
    coloured = trimesh.Trimesh(quad.vertices, quad.faces, process=False,
                               vertex_colors=np.tile(np.array([[255, 0, 0, 255]], np.uint8), (4, 1)))
    paths = [folder / "t.obj", folder / "c.ply", folder / "s.stl", folder / "t.glb"]
    quad.export(paths[0])
    coloured.export(paths[1])
    coloured.export(paths[2])
    quad.export(paths[3])
    return paths


def _warm_imports() -> None:
    """Import, in this process, every module a worker's readers import, before forking it.

    Why: a fork copies a module lock as it is at that instant. Workers are forked while other
    threads run (a run's render and prefetch threads, the main thread importing transformers),
    and the readers import ~900 modules lazily on first use (trimesh's exchange and scipy,
    networkx, PIL's plugins ...). A worker forked while another thread was half-way through
    importing one of them waited forever on that module's lock in the child — seen as
    "loading ball_001.glb took over 600 s" under load. Reading one tiny file of each format here
    (the launcher thread waits for any import in progress elsewhere to finish) leaves the children
    nothing to import. A failure here is only logged: the real load reports its own errors."""
    import tempfile

    from PIL import Image

    Image.init()  # every image plugin, for textures of any format
    try:
        with tempfile.TemporaryDirectory(prefix="gencritic-warm-") as tmp:
            for path in _write_warmup_assets(Path(tmp)):
                load_asset(path)
    except Exception as exc:  # a warm-up: each real file reports its own errors
        logger.debug("mesh loader warm-up: %s", exc)


def _new_pool(n: int) -> ProcessPoolExecutor:
    """A pool whose processes are forked now, by the calling (launcher) thread: with the fork
    context they start at the first submit, in the submitting thread. The modules the workers
    need are imported first (:func:`_warm_imports`), so no child inherits a held import lock."""
    _warm_imports()
    pool = ProcessPoolExecutor(max_workers=n, mp_context=multiprocessing.get_context("fork"),
                               initializer=_init_worker, initargs=(os.getpid(),))
    pool.submit(_noop).result()
    return pool


@functools.cache
def _register_exit_once() -> None:
    atexit.register(shutdown)


_most_processes: int | None = None  # a service's cap, set by prestart()


def _get_pool() -> ProcessPoolExecutor | None:
    global _pool
    with _lock:
        if _pool is None:
            n = load_processes()
            if _most_processes is not None:
                n = min(n, _most_processes)
            if n == 0:
                return None
            _pool = _in_launcher(functools.partial(_new_pool, n))
            _register_exit_once()
        return _pool


def prestart(processes: int) -> bool:
    """Fork at most ``processes`` workers now (a long-lived service, before it loads its models).

    Why: a forked child shares its parent's pages only until either writes them, and a service
    writes its heap as it serves, so each worker ends up holding a private copy of what the parent
    held when it was forked. Forked before the models load and before any request, that copy is
    small; and a service that runs one heavy job at a time needs one worker, not one per core
    (measured: two workers forked after requests held 460 MB between them). Later pools (after a
    stuck or crashed worker) keep the cap. Returns whether there are worker processes."""
    global _most_processes
    with _lock:
        _most_processes = max(1, processes)
    return _get_pool() is not None


def shutdown(kill: bool = False) -> None:
    """Stop the worker processes (at exit, to free their memory, or ``kill`` a stuck one)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    if kill:  # shutdown() alone would wait for the stuck worker forever
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
    pool.shutdown(wait=not kill, cancel_futures=True)


def load_asset_in_worker(path: Path, allow_untextured: bool = False) -> MeshData:
    """:func:`~gencritic.mesh.loaders.load_asset` in a worker process (or here when there is none)."""
    timeout = load_timeout_s()
    # the keyword only when set: load_asset(path) is the call every worker has always made
    load = functools.partial(load_asset, allow_untextured=True) if allow_untextured else load_asset
    for _attempt in range(2):
        pool = _get_pool()
        if pool is None:
            return load(path)
        try:
            return pool.submit(load, Path(path)).result(timeout=timeout)
        except FutureTimeout:
            shutdown(kill=True)  # files in flight beside this one are retried in a fresh pool
            raise ItemError(f"loading {Path(path).name} took over {timeout:g} s in its worker process and was "
                            f"stopped (set GENCRITIC_LOAD_TIMEOUT_S to allow longer)") from None
        except BrokenProcessPool:
            # A worker died (the OOM killer, or a crash in a native reader). Every file in
            # flight sees this, not only the culprit: each is tried once more in a fresh pool,
            # and a file that kills its worker twice is failed.
            shutdown()
    raise ItemError(f"loading {Path(path).name} crashed its worker process twice (out of memory, or a "
                    f"crash in the mesh reader on this file)")
