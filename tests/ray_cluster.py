"""A multi-node Ray cluster on one machine with nothing shared between nodes but the network.

Built with Ray's own test utilities (:class:`ray.cluster_utils.Cluster`): each node is a real
raylet with its own worker processes, started in its own working folder with its own temporary
folder and caches (``GENCRITIC_CACHE_DIR``, ``XDG_CACHE_HOME``), so a file one node writes is never
found by another's lookup. Removing a node kills its raylet and workers, as a lost machine would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class NodeDirs:
    """One node's private folders."""

    root: Path

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    def env(self) -> dict[str, str]:
        # every cache of its own (XDG_CACHE_HOME covers Hugging Face's and pip's too); HOME stays,
        # since Ray keeps its cluster's authentication token there
        return {"GENCRITIC_CACHE_DIR": str(self.cache), "TMPDIR": str(self.tmp),
                "XDG_CACHE_HOME": str(self.root / "xdg-cache"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class LocalCluster:
    cluster: Any
    head: Any
    workers: list[Any]
    dirs: dict[str, NodeDirs] = field(default_factory=dict)  # node id -> its folders

    @property
    def address(self) -> str:
        return str(self.cluster.address)


@contextlib.contextmanager
def _cwd(folder: Path) -> Iterator[None]:
    """Start a node's processes in its own working folder (they inherit it)."""
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def _node_dirs(base: Path, name: str) -> NodeDirs:
    dirs = NodeDirs(base / name)
    for sub in (dirs.cache, dirs.tmp, dirs.root / "xdg-cache", dirs.root / "work"):
        sub.mkdir(parents=True, exist_ok=True)
    return dirs


@contextlib.contextmanager
def local_cluster(base: Path, head_cpus: int = 2, worker_cpus: tuple[int, ...] = (1,)) -> Iterator[LocalCluster]:
    """A head node and worker nodes, each with its own folders under ``base``; the driver (this
    process) connected to it. Shut down and disconnected on exit."""
    import ray
    from ray.cluster_utils import Cluster

    dirs = {"head": _node_dirs(base, "head")}
    # Ray's socket paths must stay short: its own session folders go in a short temporary folder each
    ray_tmp = {"head": tempfile.mkdtemp(prefix="gcr-h-")}
    cluster = None
    try:
        with _cwd(dirs["head"].root / "work"):
            cluster = Cluster(initialize_head=True, head_node_args={
                "num_cpus": head_cpus, "env_vars": dirs["head"].env(), "include_dashboard": False,
                "temp_dir": ray_tmp["head"],
                # a lost node is declared dead after ~2 s instead of Ray's default ~30 s
                "_system_config": {"health_check_initial_delay_ms": 0, "health_check_period_ms": 500,
                                   "health_check_failure_threshold": 4}})
        workers = []
        for i, cpus in enumerate(worker_cpus):
            name = f"worker{i}"
            dirs[name] = _node_dirs(base, name)
            ray_tmp[name] = tempfile.mkdtemp(prefix=f"gcr-w{i}-")
            with _cwd(dirs[name].root / "work"):
                workers.append(cluster.add_node(num_cpus=cpus, env_vars=dirs[name].env(), temp_dir=ray_tmp[name]))
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False, include_dashboard=False)
        by_id = {cluster.head_node.node_id: dirs["head"]}
        for i, node in enumerate(workers):
            by_id[node.node_id] = dirs[f"worker{i}"]
        yield LocalCluster(cluster=cluster, head=cluster.head_node, workers=workers, dirs=by_id)
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()
        for folder in ray_tmp.values():
            shutil.rmtree(folder, ignore_errors=True)
