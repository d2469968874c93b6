"""``--engine ray``: the scoring pipeline on a Ray cluster (Ray Data ``map_batches`` + model actors).

Why it is built this way:

* **Same numbers.** Each actor runs :func:`gencritic.scoring.score` itself on a chunk of
  items, so render -> encode -> score is the local pipeline's code, not a copy. Chunks are
  cut on the driver at the local engine's batch boundaries (``batch_size`` items), so the
  encoder sees the same batches as a local run would.
* **Same files.** Finished chunks go into the output folder's journal as they arrive (a
  crashed Ray run resumes like a local one); at the end the driver lets the local pipeline
  write ``results.csv``/``views.csv``/``summary.json`` from that journal, which makes the
  formats identical by construction. ``summary.json`` then gets the real wall time, the
  actors' cache counters and an ``engine`` entry.
* **Models load once per actor**, not per chunk (each actor keeps a :class:`ModelPool`).

Paths must be readable on the workers: on one machine they are; on a remote cluster
(``ray_address``) put media on storage every node mounts at the same path.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.hashing import describe_settings
from gencritic.io.manifest import collect_items
from gencritic.items import Item
from gencritic.jsonio import dumps_strict, journal_line, parse_journal_line, to_jsonable, write_json
from gencritic.scoring import ScoreOptions, ScoreRun, score
from gencritic.scoring.journal import ResultsStore, read_records
from gencritic.scoring.records import ItemRecord

log = logging.getLogger("gencritic")


def item_to_json(item: Item) -> dict[str, Any]:
    return {"item_id": item.item_id, "kind": item.kind, "path": str(item.path), "prompt": item.prompt,
            "reference": None if item.reference is None else str(item.reference), "columns": item.columns,
            "error": item.error}


def item_from_json(d: dict[str, Any]) -> Item:
    return Item(item_id=d["item_id"], kind=d["kind"], path=Path(d["path"]), prompt=d.get("prompt"),
                reference=None if d.get("reference") is None else Path(d["reference"]), columns=d.get("columns") or {},
                error=d.get("error"))


def options_to_json(opts: ScoreOptions) -> dict[str, Any]:
    d = {f.name: getattr(opts, f.name) for f in fields(opts)}
    d["render"] = opts.render.given()  # the options given: a copy has the same fingerprint
    return dict(to_jsonable(d, default=str))


def options_from_json(d: dict[str, Any]) -> ScoreOptions:
    d = dict(d)
    for key in ("cache_dir", "reference_dir"):
        if d.get(key) is not None:
            d[key] = Path(d[key])
    known = set(ScoreOptions.__dataclass_fields__)
    return ScoreOptions(**{k: v for k, v in d.items() if k in known})


RUNTIME_KEYS = ("device", "dtype", "torch_threads")


def actor_runtime(runtimes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The actors' device, dtype and threads: one value when they agree, else the sorted distinct ones."""
    out: dict[str, Any] = {}
    for key in RUNTIME_KEYS:
        values = sorted(dict.fromkeys(r.get(key) for r in runtimes), key=str)
        out[key] = values[0] if len(values) == 1 else values
    return out


def chunk_items(items: Sequence[Item], size: int) -> list[list[Item]]:
    """Cut at the local engine's batch boundaries: ``size`` items per chunk, in input order."""
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def default_gpus_per_actor(device: str, cluster_gpus: float) -> float:
    """One GPU per actor when the run asks for CUDA (or ``auto`` on a cluster that has GPUs).

    Ray hides GPUs from actors that did not reserve one, so without this ``--device cuda``
    would fail on the workers and ``auto`` would quietly run on their CPUs.
    """
    if device.startswith("cuda"):
        if cluster_gpus < 1:
            raise InputError(f"--device {device} but the Ray cluster has no GPU: use --device cpu or a GPU cluster")
        return 1.0
    if device == "auto" and cluster_gpus >= 1:
        return 1.0
    return 0.0


class ScoreActor:
    """A Ray actor: holds the models, scores one chunk per call with the local pipeline.

    Text embeddings depend (in the last float32 bit) on which prompts share an encoder
    batch, and the local engine encodes every prompt of the run together, up front. So the
    actor does the same at start (into its embedding cache) and each chunk's ``score`` then
    reads those exact vectors back: identical numbers, not merely close ones.
    """

    def __init__(self, options: dict[str, Any], texts: list[str], torch_threads: int | None = None) -> None:
        from gencritic.models.loader import ModelPool

        if torch_threads:  # CPU kernels split work by thread count, and the split moves the last float bit
            import torch

            torch.set_num_threads(torch_threads)

        opts = replace(options_from_json(options), progress=False, overwrite=True, formats=("csv",))
        self._private_cache: Path | None = None
        if opts.cache_dir is None:  # the run asked for no shared cache: keep one for this actor only
            self._private_cache = Path(tempfile.mkdtemp(prefix="gencritic-ray-cache-"))
            opts = replace(opts, cache_dir=self._private_cache)
        self.options = opts
        self.pool = ModelPool(opts.device, opts.dtype)
        self._encode_prompts(texts)

    def _encode_prompts(self, texts: list[str]) -> None:
        """Load the models and encode the run's prompts as the local pipeline's up-front pass does."""
        from gencritic.cache import EmbeddingCache
        from gencritic.scoring.metric_set import MetricSet
        from gencritic.views import RunContext

        cache = EmbeddingCache.in_dir(self.options.cache_dir)
        try:
            ctx = RunContext(pool=self.pool, cache=cache, default_model=self.options.model)
            metric_set = MetricSet.build(self.options.metrics, self.options.model)
            metric_set.setup(ctx)
            metric_set.encode_prompts(ctx, texts)
        finally:
            cache.close()

    def __del__(self) -> None:
        if getattr(self, "_private_cache", None) is not None:
            shutil.rmtree(str(self._private_cache), ignore_errors=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {"chunk": [], "records": [], "summary": []}
        for chunk_id, payload in zip(batch["chunk"], batch["items"], strict=True):
            items = [item_from_json(d) for d in json.loads(str(payload))]
            tmp = Path(tempfile.mkdtemp(prefix="gencritic-ray-"))
            try:
                run = score(items, out=tmp, options=replace(self.options), pool=self.pool)
                records = read_records(tmp)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            out["chunk"].append(int(chunk_id))
            out["records"].append("".join(journal_line(r.to_journal()) + "\n" for r in records))  # lossless, as the journal
            settings = run.summary.get("settings", {})
            out["summary"].append(dumps_strict({"cache": run.summary.get("cache", {}),
                                                "unavailable": run.summary.get("unavailable_metrics", {}),
                                                "runtime": {k: settings.get(k) for k in RUNTIME_KEYS}}, default=str))
        return out


def _init_ray(address: str | None, num_cpus: int | None) -> Any:
    import ray

    if ray.is_initialized():
        return ray
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address:
        kwargs["address"] = address
    elif num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    ray.init(**kwargs)
    return ray


def score_with_ray(
    source: str | Path | Sequence[Item],
    out: str | Path,
    prompt: str | None = None,
    options: ScoreOptions | None = None,
    ray_address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float | None = None,
    num_cpus: int | None = None,
    torch_threads: int | None = None,
) -> ScoreRun:
    """Score like :func:`gencritic.scoring.score`, with the work spread over Ray actors.

    ``ray_address`` joins a running cluster (``ray://host:10001`` or ``auto``); without it a
    local cluster starts (``num_cpus`` caps it). ``num_actors`` defaults to what the cluster
    can hold at ``cpus_per_actor``/``gpus_per_actor`` each. Writes the same files as a local
    run into ``out`` and returns the same :class:`ScoreRun`.

    ``gpus_per_actor``: default one per actor when ``options.device`` is CUDA, or ``auto`` and the
    cluster has GPUs; otherwise none.

    ``torch_threads``: CPU threads per actor. On a local cluster it defaults to the driver's
    own torch thread count, because CPU kernels partition work by thread count and that moves
    the last float32 bit; with it, a local Ray run is byte-identical to a local-engine run.
    (A remote cluster on other CPUs can match only to float32 precision.)
    """
    try:
        import ray.data
    except ImportError:
        raise InputError("--engine ray needs Ray Data: pip install 'gencritic[ray]' (ray[data])") from None
    opts = replace(options or ScoreOptions(), progress=False)
    if opts.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if num_actors is not None and num_actors < 1:
        raise InputError("--ray-actors must be at least 1")
    started = time.perf_counter()
    items = list(source) if isinstance(source, Sequence) and not isinstance(source, str) \
        else collect_items(Path(source), prompt)
    if not items:
        raise InputError("nothing to score")
    out_dir = Path(out)
    # The same fingerprint the local pipeline writes, so local and Ray runs resume each other.
    has_meshes = any(i.kind == "mesh" for i in items)
    store = ResultsStore(out_dir, describe_settings(opts.numeric_settings(has_meshes)), opts.overwrite)
    resumed = len(store.done_ids & {i.item_id for i in items})
    pending = [i for i in items if i.item_id not in store.done_ids]

    cache = {"hits": 0, "misses": 0}
    unavailable: dict[str, str] = {}
    runtimes: list[dict[str, Any]] = []
    actors = 0
    if torch_threads is None and not ray_address:
        import torch

        torch_threads = torch.get_num_threads()
    if pending:
        ray = _init_ray(ray_address, num_cpus)
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        chunks = chunk_items(pending, opts.batch_size)
        if gpus_per_actor is None:
            gpus_per_actor = default_gpus_per_actor(opts.device, float(ray.cluster_resources().get("GPU", 0.0)))
        if num_actors is None:
            cpus = float(ray.cluster_resources().get("CPU", 1.0))
            gpus = float(ray.cluster_resources().get("GPU", 0.0))
            fit = int(cpus // cpus_per_actor) if cpus_per_actor else len(chunks)
            if gpus_per_actor:
                fit = min(fit, int(gpus // gpus_per_actor))
            num_actors = max(1, min(fit, len(chunks)))
        actors = num_actors
        texts = sorted({i.prompt for i in pending if i.prompt and i.prompt.strip()})  # as the local engine
        rows = [{"chunk": i, "items": json.dumps([item_to_json(it) for it in chunk])} for i, chunk in enumerate(chunks)]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        pool = ray.data.ActorPoolStrategy(size=num_actors)  # fixed size: each actor loads the models once
        scored = ds.map_batches(ScoreActor, batch_size=1, batch_format="numpy", compute=pool,
                                num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None,
                                fn_constructor_kwargs={"options": options_to_json(opts), "texts": texts,
                                                       "torch_threads": torch_threads})
        for row in scored.iter_rows():
            records = [ItemRecord.from_journal(parse_journal_line(line))
                       for line in str(row["records"]).splitlines() if line.strip()]
            store.append(records)
            info = json.loads(row["summary"])
            runtimes.append(info.get("runtime") or {})
            cache["hits"] += int(info["cache"].get("hits", 0))
            cache["misses"] += int(info["cache"].get("misses", 0))
            unavailable.update(info.get("unavailable") or {})
    missing = [i.item_id for i in pending if i.item_id not in store.done_ids]
    if missing:
        raise InputError(f"the Ray run returned no result for {len(missing)} item(s) (e.g. {missing[0]}); "
                         f"run the same command again to resume")
    # Every item is in the journal now: the local pipeline writes the outputs (nothing left to score).
    run = score(items, out=out_dir, options=replace(opts, overwrite=False))
    if run.summary.get("resumed_items") != len(items):
        raise InputError("the local pipeline re-scored items the Ray run had finished: settings differ between them")
    run.summary.update({
        "wall_time_s": round(time.perf_counter() - started, 3),
        "cache": {**cache, "path": run.summary.get("cache", {}).get("path")},
        "resumed_items": resumed,
        "engine": {"name": "ray", "address": ray_address or "local", "actors": actors,
                   "cpus_per_actor": cpus_per_actor, "gpus_per_actor": gpus_per_actor,
                   "torch_threads": torch_threads},
    })
    if unavailable:
        run.summary["unavailable_metrics"] = unavailable
    if runtimes:  # the actors scored, not the driver: their device, dtype and threads are what ran
        run.summary["settings"].update(actor_runtime(runtimes))
    write_json(out_dir / "summary.json", run.summary, default=str)
    return run
