"""plan -> load -> (render) -> embed -> score -> write, with resume and progress.

No metric maths here. The run's job is throughput and bookkeeping: decode and render in worker
threads while the model runs (:mod:`.schedule`), keep an item's views in one batch, record each
finished batch durably (:mod:`.journal`), skip what an earlier run already finished, and never
write a number that did not come from a metric (:mod:`.aggregate`).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.cache import EmbeddingCache
from gencritic.errors import InputError, ItemError
from gencritic.hashing import describe_settings
from gencritic.io.fetch import STATS as FETCH_STATS
from gencritic.io.fetch import ObjectCache, stats_delta
from gencritic.io.images import parse_background
from gencritic.io.urls import UrlPath, is_url
from gencritic.items import Item
from gencritic.models.clip import ClipBackbone
from gencritic.models.device import describe_runtime
from gencritic.models.loader import ModelPool
from gencritic.prepare import PreparedItem, prepare_item
from gencritic.row_warnings import summarise as summarise_warnings
from gencritic.scoring.aggregate import score_batch, set_features
from gencritic.scoring.journal import ResultsStore
from gencritic.scoring.metric_set import MetricSet
from gencritic.scoring.options import ScoreOptions
from gencritic.scoring.outputs import ScoreRun, item_row, output_columns, summarise, view_rows, write_outputs
from gencritic.scoring.plan import check_meshes, convert_blends, gather_items, remote_files
from gencritic.scoring.records import ItemRecord
from gencritic.scoring.schedule import Prefetcher, batches, resolve_prefetch
from gencritic.views import RunContext

log = logging.getLogger("gencritic")


def score(
    source: str | Path | UrlPath | Sequence[Item],
    out: str | Path | UrlPath | None = None,
    prompt: str | None = None,
    options: ScoreOptions | None = None,
    pool: ModelPool | None = None,
    **overrides: Any,
) -> ScoreRun:
    """Score images, meshes or folders of views; the Python API behind ``gencritic score``.

    ``source`` is a path (image, mesh, folder, manifest) or a list of :class:`Item`; a path may be
    an address (``s3://``, ``gs://``, ``az://``, ``https://``), read through fsspec.
    With ``out`` set, results are written there incrementally and a re-run resumes; ``out`` may
    be an address of object storage (:mod:`gencritic.io.staged_out`).
    Returns the rows (also as ``.to_pandas()``) and the summary.
    """
    opts = (options or ScoreOptions()).with_overrides(overrides).checked()
    if out is not None and is_url(out):  # written locally, kept in step with the address
        return _score_to_address(UrlPath(str(out)), source, prompt, opts, pool)
    started = time.perf_counter()
    try:
        background = parse_background(opts.background)
    except ValueError as exc:
        raise InputError(str(exc)) from None

    items = gather_items(source, prompt, opts.reference_dir)
    remote = remote_files(items)
    check_meshes(items, opts.render)
    metric_set = MetricSet.build(opts.metrics, opts.model)
    file_inputs = metric_set.file_inputs()
    pool = pool or ModelPool(opts.device, opts.dtype)
    prefetch = resolve_prefetch(opts.workers, pool.device)  # before any model loads: bad values fail fast
    runtime = describe_runtime(pool.device, pool.dtype)  # what runs, as summary.json records it (a bad dtype fails here)
    cache = EmbeddingCache.in_dir(opts.cache_dir)
    render = opts.render_for_run(background)  # renders are cached beside the embeddings, and not at all with --no-cache
    ctx = RunContext(pool=pool, cache=cache, default_model=opts.model, background=background, render=render)
    metric_set.setup(ctx)

    numeric = opts.numeric_settings(any(i.kind == "mesh" for i in items))
    if file_inputs:  # absent otherwise, so runs without such files keep their fingerprints
        numeric["metric_files"] = file_inputs
    fingerprint = describe_settings(numeric)
    out_dir = Path(str(out)) if out is not None else None  # an address was staged above
    store = ResultsStore(out_dir, fingerprint, opts.overwrite) if out_dir is not None else None
    done = store.done_ids if store else set()
    # .blend assets are converted by Blender in batches first; a file that cannot be is a failed row
    plan = convert_blends(source, items, done, opts.progress)
    items = plan.items
    pending = [i for i in items if i.item_id not in done]

    token_cuts = metric_set.token_cuts(pending)
    metric_set.encode_prompts(ctx, sorted({i.prompt for i in pending if i.prompt and i.prompt.strip()}))
    view_metrics = metric_set.view_metrics
    columns = output_columns(items, view_metrics, metric_set.uses_text)
    model_label = metric_set.model_label()
    backbones = metric_set.backbones
    objects = ObjectCache(opts.cache_dir)  # media behind addresses, fetched by the thread that prepares them
    fetched_before = FETCH_STATS.snapshot()

    def prepare(item: Item) -> PreparedItem:
        if item.kind == "mesh" and isinstance(item.path, Path) and item.path in plan.blend_failures:
            return PreparedItem(item, error=plan.blend_failures[item.path])
        try:
            prepared = prepare_item(item, background, render, decode=False, need_reference=metric_set.needs_reference,
                                    objects=objects)
            if prepared.error is None and prepared.views:
                _warm_views(prepared, backbones, cache, metric_set.needs_pixels)
        except ItemError as exc:  # decode failure surfaces here when pixels are first needed
            prepared = PreparedItem(item, error=str(exc))
        except Exception as exc:  # a renderer/loader crash fails this item, not the run
            log.warning("preparing %s failed", item.item_id, exc_info=True)
            prepared = PreparedItem(item, error=f"{type(exc).__name__}: {exc}".replace("\n", " "))
        return prepared

    sets = SetAccumulator(metric_set, ctx)
    new_records: list[ItemRecord] = []
    interrupted = False
    progress = _progress(len(items), len(done), opts.progress)
    try:
        with progress as bar:
            task = bar.add_task("scoring", total=len(items), completed=len(done))
            for batch in batches(iter(Prefetcher(pending, prepare, prefetch, 4 * opts.batch_size)), opts.batch_size):
                records = score_batch(batch, view_metrics, ctx, fingerprint, model_label, token_cuts)
                sets.add(batch)
                if store is not None:
                    store.append(records)
                    store.append_csv([item_row(r) for r in records], columns)
                new_records.extend(records)
                bar.advance(task, len(batch))
        sets.add_missing([i for i in items if i.item_id in done], prepare, opts.batch_size)
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: finished batches are saved; re-run the same command to resume")

    all_records = store.records() if store is not None else {r.item_id: r for r in new_records}
    ordered = [all_records[i.item_id] for i in items if i.item_id in all_records]
    settings: dict[str, Any] = {**opts.numeric_settings(any(r.kind == "mesh" for r in ordered)),
                                "batch_size": opts.batch_size, "requested": {"device": opts.device, "dtype": opts.dtype},
                                **runtime}
    summary = summarise(ordered, view_metrics, settings, opts.model, metric_set.unavailable,
                        time.perf_counter() - started, interrupted)
    if metric_set.set_metrics:  # absent otherwise: summaries of runs without set metrics stay as they were
        summary["set_metrics"] = sets.results([i.item_id for i in items], interrupted)
    summary["cache"] = {"hits": cache.hits, "misses": cache.misses, "path": str(cache.path) if cache.path else None}
    summary["resumed_items"] = len(done)
    summary["warnings"] = summarise_warnings(r.warnings for r in ordered)  # degradations accepted, by kind
    if remote:  # absent otherwise: summaries of local runs are unchanged
        summary["remote"] = {**stats_delta(fetched_before, FETCH_STATS.snapshot()), "cache": None
                             if opts.cache_dir is None else str(objects.root)}
    objects.close()
    run = ScoreRun(rows=[item_row(r) for r in ordered], columns=columns,
                   view_rows=[vr for r in ordered for vr in view_rows(r)], summary=summary, out_dir=out_dir)
    if out_dir is not None:
        write_outputs(out_dir, run, opts.formats)
    cache.close()
    if interrupted:
        raise KeyboardInterrupt
    return run


def _score_to_address(url: UrlPath, source: str | Path | UrlPath | Sequence[Item], prompt: str | None,
                      opts: ScoreOptions, pool: ModelPool | None) -> ScoreRun:
    """:func:`score` into a local folder kept in step with ``url`` (:mod:`gencritic.io.staged_out`)."""
    from dataclasses import replace

    from gencritic.io.journal import JOURNAL, STATE_DIR
    from gencritic.io.staged_out import StagedOutput

    staged = StagedOutput(url, STATE_DIR, JOURNAL, overwrite=opts.overwrite)
    with staged as local:
        try:
            run = score(source, out=local, prompt=prompt, options=replace(opts, overwrite=False), pool=pool)
        except InputError as exc:
            raise InputError(staged.name(str(exc))) from None
    run.out_dir = url
    return run


class SetAccumulator:
    """Features of every item's views for the run's set metrics, kept per item so the values
    are computed over the whole run in input order, whatever the batching or resumption."""

    def __init__(self, metric_set: MetricSet, ctx: RunContext) -> None:
        self.metrics = metric_set.set_metrics
        self.ctx = ctx
        self.features: dict[str, dict[str, np.ndarray]] = {m.name: {} for m in self.metrics}
        self.errors: dict[str, str] = {}

    def add(self, batch: list[PreparedItem]) -> None:
        for metric in self.metrics:
            if metric.name in self.errors:
                continue
            try:
                self.features[metric.name].update(set_features(batch, metric, self.ctx))
            except Exception as exc:  # the set metric fails (named in the summary), the run goes on
                log.warning("set metric %s failed", metric.name, exc_info=True)
                self.errors[metric.name] = f"{type(exc).__name__}: {exc}".replace("\n", " ")

    def add_missing(self, items: Sequence[Item], prepare: Any, batch_size: int) -> None:
        """Items scored by an earlier run (resumed) whose views this run has not seen."""
        if not self.metrics:
            return
        seen = set.intersection(*(set(f) for f in self.features.values()))
        missing = [i for i in items if i.item_id not in seen]
        for batch in batches(iter(prepare(i) for i in missing), batch_size):
            self.add(batch)

    def results(self, order: Sequence[str], interrupted: bool) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for metric in self.metrics:
            feats = self.features[metric.name]
            rows = [feats[i] for i in order if i in feats]
            n = sum(len(r) for r in rows)
            error = self.errors.get(metric.name) or ("interrupted: computed at the end of a complete run"
                                                     if interrupted else None)
            values: dict[str, float | None] = {c: None for c in metric.info.columns}
            if error is None:
                try:
                    values.update(metric.compute_set(np.concatenate(rows) if rows else np.zeros((0, 0))))
                except ValueError as exc:
                    error = str(exc)
            for col in metric.info.columns:
                out[col] = {"metric": metric.name, "model": metric.model_id(), "settings": metric.settings(),
                            "value": values[col], "n_views": n, "n_items": len(rows),
                            "higher_is_better": metric.info.higher_is_better, "error": error}
        return out


def _warm_views(prepared: PreparedItem, backbones: Sequence[ClipBackbone], cache: EmbeddingCache,
                needs_pixels: bool) -> None:
    """In a worker: decode and preprocess only what the cache does not already answer."""
    for view in prepared.views:
        if needs_pixels:
            _ = view.loaded
        for bb in backbones:
            key = EmbeddingCache.key(view.sha256, bb.cache_namespace, "img")
            if not cache.get_many([key]):
                view.pixels[bb.preprocess_id] = bb.preprocess(view.image)


def _progress(total: int, done: int, enabled: bool) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    class _Rate(TextColumn):
        def __init__(self) -> None:
            super().__init__("")

        def render(self, task: Any) -> Any:
            from rich.text import Text

            speed = task.speed
            return Text(f"{speed:.1f} items/s" if speed else "")

    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), _Rate(),
                    TimeRemainingColumn(), console=Console(stderr=True), disable=not enabled or not sys.stderr.isatty(),
                    transient=False)
