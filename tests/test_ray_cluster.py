"""``--engine ray`` on a real multi-node cluster without a shared disk, losing a node mid-run.

Two Ray nodes on this machine (tests/ray_cluster.py), each with its own working, temporary and
cache folders; the media only in the S3 server on loopback (tests/s3_server.py), their local
copies deleted after upload. The worker node is killed as soon as the driver has journaled one
chunk from it. The run must still end with every item once and the local engine's bytes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gencritic.scoring import ScoreOptions, score
from tests.conftest import make_image
from tests.s3_server import S3Server, s3  # noqa: F401 (fixture)

pytest.importorskip("ray")
pytest.importorskip("ray.data")
pytest.importorskip("s3fs")

N_ITEMS = 200


def _options(model: Path, cache: Path | None) -> ScoreOptions:
    return ScoreOptions(model=str(model), device="cpu", dtype="fp32", cache_dir=cache, progress=False, batch_size=8,
                        metrics=["clip", "clip_torchmetrics"])


@pytest.mark.slow
def test_two_nodes_without_shared_disk_lose_one_and_match_the_local_engine(
        s3: S3Server, tiny_clip_dir: Path, tmp_path: Path) -> None:  # noqa: F811
    import torch

    from gencritic.engines.ray_engine import score_with_ray
    from tests.ray_cluster import local_cluster

    media = tmp_path / "media"
    lines = ["image,prompt"]
    for i in range(N_ITEMS):
        make_image(media / f"i{i:03d}.png", ((37 * i) % 256, (91 * i) % 256, (53 * i + 40) % 256), size=32)
        lines.append(f"i{i:03d}.png,picture number {i % 17}")
    (media / "manifest.csv").write_text("\n".join(lines) + "\n")
    bucket = s3.bucket()
    s3.upload(media, f"s3://{bucket}/set")
    local = score(media / "manifest.csv", out=tmp_path / "local", options=_options(tiny_clip_dir, None))
    shutil.rmtree(media)  # from here on the media exist only in the bucket

    chunks: dict[str, int] = {}
    killed: list[str] = []
    with local_cluster(tmp_path / "nodes", head_cpus=2, worker_cpus=(1,)) as cluster:
        worker = cluster.workers[0]

        def on_chunk(node: str, items: int) -> None:
            chunks[node] = chunks.get(node, 0) + 1
            if node == worker.node_id and not killed:  # it finished a task: lose it now
                cluster.cluster.remove_node(worker, allow_graceful=False)
                killed.append(node)

        run = score_with_ray(f"s3://{bucket}/set/manifest.csv", out=f"s3://{bucket}/out/",
                             options=_options(tiny_clip_dir, tmp_path / "driver_cache"), ray_address=cluster.address,
                             num_actors=2, torch_threads=torch.get_num_threads(), on_chunk=on_chunk)
        node_dirs = dict(cluster.dirs)

    assert killed == [worker.node_id] and chunks[worker.node_id] >= 1
    assert sum(chunks.values()) > chunks[worker.node_id]  # the run went on after the loss
    # identical results, nothing lost, nothing twice
    for name in ("results.csv", "views.csv"):
        assert s3.fs.cat_file(f"{bucket}/out/{name}") == (tmp_path / "local" / name).read_bytes(), name
    assert run.rows == local.rows
    journal = [json.loads(line)["item"]["item_id"]
               for line in s3.fs.cat_file(f"{bucket}/out/.gencritic/journal.jsonl").decode().splitlines()]
    assert sorted(journal) == sorted(f"i{i:03d}.png" for i in range(N_ITEMS))
    summary = json.loads(s3.fs.cat_file(f"{bucket}/out/summary.json"))
    assert summary["count"] == N_ITEMS and summary["failures"] == 0
    # each node read its media itself, from S3, into its own cache; the driver read only the manifest
    nodes = summary["engine"]["nodes"]
    assert set(nodes) == {cluster.head.node_id[:12], worker.node_id[:12]}
    assert all(n["fetch"]["fetches"] > 0 for n in nodes.values())
    assert sum(n["items"] for n in nodes.values()) == N_ITEMS
    for node_id, dirs in node_dirs.items():
        fetched = [p for p in (dirs.cache / "remote" / "objects").rglob("*.png")]
        assert len(fetched) >= nodes[node_id[:12]]["fetch"]["fetches"] > 0, node_id
    assert not (tmp_path / "driver_cache" / "remote").exists()
    assert summary["engine"]["items_per_s"] > 0 and summary["engine"]["duplicates_dropped"] >= 0


def test_progress_names_nodes_and_throughput() -> None:
    """What a terminal shows while a Ray run goes, and what summary.json keeps per node."""
    from gencritic.engines.ray_progress import RayProgress

    now = [100.0]
    progress = RayProgress(total=40, done=8, enabled=False, clock=lambda: now[0])
    with progress:
        now[0] = 102.0
        progress.chunk("a" * 56, 8, 0, 1.5, {"fetches": 8, "bytes": 800})
        now[0] = 104.0
        progress.chunk("b" * 56, 8, 2, 1.0, {"fetches": 6, "hits": 2})
    assert progress.describe() == "ray: 2 node(s), 4.0 items/s"  # 16 items in 4 s
    assert progress.done == 24
    summary = progress.summary()
    assert summary["nodes"]["bbbbbbbbbbbb"] == {"chunks": 1, "items": 8, "busy_s": 1.0,
                                                 "fetch": {"fetches": 6, "hits": 2}}
    assert summary["first_result_s"] == 2.0 and summary["duplicates_dropped"] == 2
