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

* **No shared disk needed.** Items travel as their paths or addresses; each actor reads its
  items' media itself (``s3://``, ``gs://``, ``az://``, ``https://`` through fsspec, into its
  node's own cache by content: :mod:`gencritic.io.fetch`), so on a cluster (``ray_address``)
  only the driver reads the manifest and writes the output folder (or stages it to an address,
  :mod:`gencritic.io.staged_out`). Local paths must exist on every node, as before.
* **Node loss.** Ray Data restarts a dead actor and retries its chunk (actors are created with
  unlimited restarts and task retries); a chunk is journaled when its result reaches the driver,
  and a record that arrives twice (a retried chunk whose first result was already in) is
  journaled once, so the run ends with every item once.
* **Progress** names the nodes that returned chunks and the throughput
  (:class:`gencritic.engines.ray_progress.RayProgress`); ``summary.json``'s ``engine`` entry keeps
  per-node items, chunks and object fetches, Ray's start-up time and the scoring throughput.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.hashing import describe_settings
from gencritic.io.manifest import collect_items
from gencritic.io.urls import UrlPath, as_path, is_url
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
    return Item(item_id=d["item_id"], kind=d["kind"], path=as_path(d["path"]), prompt=d.get("prompt"),
                reference=None if d.get("reference") is None else as_path(d["reference"]),
                columns=d.get("columns") or {}, error=d.get("error"))


def options_to_json(opts: ScoreOptions) -> dict[str, Any]:
    d = {f.name: getattr(opts, f.name) for f in fields(opts)}
    d["render"] = opts.render.given()  # the options given: a copy has the same fingerprint
    return dict(to_jsonable(d, default=str))


def options_from_json(d: dict[str, Any]) -> ScoreOptions:
    d = dict(d)
    if d.get("cache_dir") is not None:
        d["cache_dir"] = Path(d["cache_dir"])
    if d.get("reference_dir") is not None:
        d["reference_dir"] = as_path(d["reference_dir"])
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

    def __init__(self, options: dict[str, Any], texts: list[str], torch_threads: int | None = None,
                 node_cache: bool = False) -> None:
        from gencritic.models.loader import ModelPool

        if torch_threads:  # CPU kernels split work by thread count, and the split moves the last float bit
            import torch

            torch.set_num_threads(torch_threads)

        opts = replace(options_from_json(options), progress=False, overwrite=True, formats=("csv",))
        if node_cache and opts.cache_dir is not None:
            # on a cluster the driver's cache folder is not this node's: use the node's own
            # (its GENCRITIC_CACHE_DIR, else ~/.cache/gencritic), as a local run there would
            from gencritic.cache import default_cache_dir

            opts = replace(opts, cache_dir=default_cache_dir())
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
            # ready to score: process started, imports done, metrics set up (models load here
            # unless the cache already answers for them); what Ray's start-up adds to a run: the
            # prompts below are encoded by a local run as well
            self.ready_at = time.time()
            metric_set.encode_prompts(ctx, texts)
        finally:
            cache.close()

    def __del__(self) -> None:
        if getattr(self, "_private_cache", None) is not None:
            shutil.rmtree(str(self._private_cache), ignore_errors=True)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list[Any]]:
        import ray

        from gencritic.io.fetch import STATS, stats_delta

        node = ray.get_runtime_context().get_node_id()
        out: dict[str, list[Any]] = {"chunk": [], "records": [], "summary": []}
        for chunk_id, payload in zip(batch["chunk"], batch["items"], strict=True):
            items = [item_from_json(d) for d in json.loads(str(payload))]
            tmp = Path(tempfile.mkdtemp(prefix="gencritic-ray-"))
            fetched = STATS.snapshot()
            started = time.perf_counter()
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
                                                "runtime": {k: settings.get(k) for k in RUNTIME_KEYS},
                                                "node": node, "seconds": time.perf_counter() - started,
                                                "ready_at": self.ready_at,
                                                "fetch": stats_delta(fetched, STATS.snapshot())}, default=str))
        return out


def _init_ray(address: str | None, num_cpus: int | None) -> Any:
    """Connect to ``address`` (or start a local cluster); a driver already connected stays so."""
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
    source: str | Path | UrlPath | Sequence[Item],
    out: str | Path | UrlPath,
    prompt: str | None = None,
    options: ScoreOptions | None = None,
    ray_address: str | None = None,
    num_actors: int | None = None,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float | None = None,
    num_cpus: int | None = None,
    torch_threads: int | None = None,
    on_chunk: Callable[[str, int], None] | None = None,
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

    ``out`` may be an address (``s3://bucket/run/``): see :mod:`gencritic.io.staged_out`.
    ``on_chunk(node_id, items)`` is called on the driver as each chunk's result is journaled.
    """
    try:
        import ray.data  # noqa: F401
    except ImportError:
        raise InputError("--engine ray needs Ray Data: pip install 'gencritic[ray]' (ray[data])") from None
    opts = options or ScoreOptions()
    if opts.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    if num_actors is not None and num_actors < 1:
        raise InputError("--ray-actors must be at least 1")

    def run_into(folder: Path, run_options: ScoreOptions) -> ScoreRun:
        return _score_with_ray(source, folder, prompt, run_options, ray_address, num_actors, cpus_per_actor,
                               gpus_per_actor, num_cpus, torch_threads, on_chunk)
    if is_url(out):  # the driver writes a local folder kept in step with the address
        from gencritic.io.journal import JOURNAL, STATE_DIR
        from gencritic.io.staged_out import StagedOutput

        url = UrlPath(str(out))
        staged = StagedOutput(url, STATE_DIR, JOURNAL, overwrite=opts.overwrite)
        with staged as local:
            try:
                run = run_into(local, replace(opts, overwrite=False))
            except InputError as exc:
                raise InputError(staged.name(str(exc))) from None
        run.out_dir = url
        return run
    return run_into(Path(str(out)), opts)


def _score_with_ray(source: str | Path | UrlPath | Sequence[Item], out_dir: Path, prompt: str | None, options: ScoreOptions,
                    ray_address: str | None, num_actors: int | None, cpus_per_actor: float,
                    gpus_per_actor: float | None, num_cpus: int | None, torch_threads: int | None,
                    on_chunk: Callable[[str, int], None] | None) -> ScoreRun:
    from gencritic.engines.ray_progress import RayProgress
    from gencritic.io.fetch import require_backends
    from gencritic.scoring.plan import remote_files

    opts = replace(options, progress=False)
    started = time.perf_counter()
    items = list(source) if isinstance(source, Sequence) and not isinstance(source, str) \
        else collect_items(as_path(source), prompt)
    if not items:
        raise InputError("nothing to score")
    require_backends(remote_files(items))
    # The same fingerprint the local pipeline writes, so local and Ray runs resume each other.
    has_meshes = any(i.kind == "mesh" for i in items)
    store = ResultsStore(out_dir, describe_settings(opts.numeric_settings(has_meshes)), opts.overwrite)
    resumed = len(store.done_ids & {i.item_id for i in items})
    pending = [i for i in items if i.item_id not in store.done_ids]

    cache = {"hits": 0, "misses": 0}
    unavailable: dict[str, str] = {}
    runtimes: list[dict[str, Any]] = []
    actors = 0
    ray_start_s = 0.0
    progress = RayProgress(len(items), resumed, options.progress)
    if torch_threads is None and not ray_address:
        import torch

        torch_threads = torch.get_num_threads()
    if pending:
        ray_started = time.perf_counter()
        ray = _init_ray(ray_address, num_cpus)
        ray_start_s = time.perf_counter() - ray_started
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
        progress.mark_start()
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        pool = ray.data.ActorPoolStrategy(size=num_actors)  # fixed size: each actor loads the models once
        scored = ds.map_batches(ScoreActor, batch_size=1, batch_format="numpy", compute=pool,
                                num_cpus=cpus_per_actor, num_gpus=gpus_per_actor or None,
                                fn_constructor_kwargs={"options": options_to_json(opts), "texts": texts,
                                                       "torch_threads": torch_threads,
                                                       "node_cache": bool(ray_address)})
        with progress:
            for row in scored.iter_rows():
                records = [ItemRecord.from_journal(parse_journal_line(line))
                           for line in str(row["records"]).splitlines() if line.strip()]
                done = store.done_ids
                fresh = [r for r in records if r.item_id not in done]  # a retried chunk's second copy
                store.append(fresh)
                info = json.loads(row["summary"])
                runtimes.append(info.get("runtime") or {})
                cache["hits"] += int(info["cache"].get("hits", 0))
                cache["misses"] += int(info["cache"].get("misses", 0))
                unavailable.update(info.get("unavailable") or {})
                node = str(info.get("node") or "?")
                progress.chunk(node, len(fresh), len(records) - len(fresh), float(info.get("seconds") or 0.0),
                               info.get("fetch") or {}, ready_at=info.get("ready_at"))
                if on_chunk is not None:
                    on_chunk(node, len(fresh))
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
                   "torch_threads": torch_threads, "ray_start_s": round(ray_start_s, 3), **progress.summary()},
    })
    if unavailable:
        run.summary["unavailable_metrics"] = unavailable
    if runtimes:  # the actors scored, not the driver: their device, dtype and threads are what ran
        run.summary["settings"].update(actor_runtime(runtimes))
    if any(isinstance(i.path, UrlPath) or isinstance(i.reference, UrlPath) for i in items):
        fetched: dict[str, int] = {}
        for counts in progress.nodes.values():
            for key, value in counts.fetch.items():
                fetched[key] = fetched.get(key, 0) + value
        run.summary["remote"] = {**fetched, "cache": "each node's own"}
    write_json(out_dir / "summary.json", run.summary, default=str)
    return run
