"""plan -> load -> (render) -> embed -> score -> write, with resume and progress.

No metric maths here. The pipeline's job is throughput and bookkeeping: decode and render
in worker threads while the model runs, keep an item's views in one batch, record each
finished batch durably, skip what an earlier run already finished, and never write a number
that did not come from a metric.
"""

from __future__ import annotations

import logging
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from gencritic.cache import EmbeddingCache, default_cache_dir
from gencritic.errors import InputError, ItemError, ModelUnavailableError
from gencritic.io.images import parse_background
from gencritic.io.manifest import collect_items
from gencritic.items import Item
from gencritic.jsonio import write_json
from gencritic.metrics.base import Metric, MetricResult
from gencritic.metrics.registry import create_metric, split_specs
from gencritic.models.clip import ClipBackbone
from gencritic.models.device import describe_runtime, resolve_device
from gencritic.models.loader import DEFAULT_CLIP_MODEL, ModelPool
from gencritic.prepare import PreparedItem, prepare_item
from gencritic.row_warnings import join_cell
from gencritic.row_warnings import summarise as summarise_warnings
from gencritic.store import ResultsStore, write_table
from gencritic.views import RunContext, ViewBatch, describe_settings

log = logging.getLogger("gencritic")

FORMATS = ("csv", "parquet", "jsonl")


@dataclass(frozen=True)
class Prefetch:
    """How items are prepared (decoded, rendered, preprocessed) for the model.

    ``workers`` threads prepare items; ``overlap`` says whether they run *while* the model
    encodes (a GPU, or CPU cores torch does not use) or in bursts *between* encoder calls
    (a CPU whose cores torch already uses: running beside the encoder would take its cores).
    """

    workers: int
    overlap: bool


def resolve_prefetch(requested: int | None, device: str) -> Prefetch:
    """Pick the preparation threads by hardware; ``requested`` overrides the count.

    Measured on a 2-core CPU (benchmarks/bench_assets.py, ViT-B/32, 8 views/asset): threads
    preparing beside the encoder cost 8% per asset against preparing inline (649 vs 597 ms),
    because torch's threads lose their cores; two threads preparing in bursts while the encoder
    waits gained ~7% against inline, since loading, compositing and resizing are mostly
    single-threaded and otherwise leave a core idle.
    """
    if requested is not None and requested < 0:
        raise InputError("--workers must be 0 (prepare inline) or more")
    from gencritic.mesh.parallel import check_environment, load_processes
    from gencritic.models.streams import cpu_streams

    check_environment()  # a typo in the loader's variables is one line now, not a failed row per asset
    cpu_streams()  # the same for the encoder's
    spare = (os.cpu_count() or 1) - torch.get_num_threads()
    if resolve_device(device).type != "cpu":
        # each preparing thread waits on one mesh-loader process, so as many threads as
        # processes keep them all busy (not measured on a GPU machine yet: none was lent)
        auto, overlap = max(2, load_processes()), True
    elif spare > 0:
        auto, overlap = min(2, spare), True
    else:
        auto, overlap = torch.get_num_threads(), False
    return Prefetch(auto if requested is None else requested, overlap)


@dataclass
class ScoreOptions:
    """Every setting of a scoring run. Those that change numbers enter the fingerprint."""

    metrics: Sequence[str] = ("clip",)
    model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    workers: int | None = None  # None: auto (see resolve_prefetch)
    background: str = "white"
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    formats: Sequence[str] = ("csv",)
    overwrite: bool = False
    progress: bool = True
    render: dict[str, Any] = field(default_factory=dict)
    reference_dir: Path | None = None  # pair each item with the same-stem image here (reference metrics)

    def numeric_settings(self, with_render: bool = True) -> dict[str, Any]:
        """The settings that can change a score (what resume and rows are keyed on).
        Render options count only when there are meshes to render."""
        out: dict[str, Any] = {"metrics": list(self.metrics), "model": self.model, "dtype": self.dtype,
                               "device": self.device, "background": self.background}
        if with_render:
            # where the render cache lives (or whether there is one) never changes a score
            out["render"] = {k: v for k, v in sorted(self.render.items()) if k not in ("cache", "cache_dir")}
        if self.reference_dir is not None:  # other references, other numbers (absent: fingerprint unchanged)
            out["reference_dir"] = str(Path(self.reference_dir).resolve())
        return out


@dataclass
class ScoreRun:
    """What a run produced: rows (one per item), their column order and the summary."""

    rows: list[dict[str, Any]]
    columns: list[str]
    view_rows: list[dict[str, Any]]
    summary: dict[str, Any]
    out_dir: Path | None

    def to_pandas(self) -> Any:
        import pandas as pd

        from gencritic.io.fsnames import printable_tree

        # pandas' Arrow strings refuse the surrogate escapes of non-UTF-8 file names: show their bytes
        return pd.DataFrame(printable_tree(self.rows), columns=self.columns)


def software_versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("gencritic", "torch", "transformers", "open_clip_torch", "numpy", "pillow", "moderngl"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def build_metrics(specs: Sequence[str], model: str) -> list[Metric]:
    metrics = [create_metric(s, model) for s in specs]
    if not metrics:
        raise InputError("no metrics asked for: use --metrics clip (see `gencritic metrics`)")
    names = [m.name for m in metrics]
    dupes = {n for n in names if names.count(n) > 1 and n != "learned"}
    if dupes:
        raise InputError(f"metric(s) listed twice: {', '.join(sorted(dupes))}")
    return metrics


def setup_metrics(metrics: list[Metric], ctx: RunContext) -> tuple[list[Metric], dict[str, str]]:
    """Load every metric's models; optional ones without weights are reported, not faked."""
    ready: list[Metric] = []
    unavailable: dict[str, str] = {}
    for metric in metrics:
        try:
            metric.setup(ctx)
            ready.append(metric)
        except ModelUnavailableError as exc:
            if metric.info.optional_weights and len(metrics) > 1:
                unavailable[metric.name] = str(exc)
                log.warning("metric %s unavailable: %s", metric.name, exc)
            else:
                raise
    if not ready:
        raise ModelUnavailableError("; ".join(unavailable.values()))
    return ready, unavailable


def metric_backbones(metrics: Sequence[Metric]) -> list[ClipBackbone]:
    seen: dict[int, ClipBackbone] = {}
    for m in metrics:
        for attr in ("backbone",):
            bb = getattr(m, attr, None)
            if isinstance(bb, ClipBackbone):
                seen[id(bb)] = bb
    return list(seen.values())


def output_columns(items: Sequence[Item], metrics: Sequence[Metric], any_text: bool) -> list[str]:
    cols: list[str] = []
    for item in items:
        for c in item.columns:
            if c not in cols:
                cols.append(c)
    for extra in ("item_id",):
        if extra not in cols:
            cols.append(extra)
    if any(i.prompt is not None for i in items) and not any(c.lower() in ("prompt", "caption", "text") for c in cols):
        cols.append("prompt")
    for m in metrics:
        cols.extend(c for c in m.info.columns if c not in cols)
    if any(i.kind in ("mesh", "views") for i in items):
        cols.extend(["num_views", "num_views_scored"])
    if any_text:
        cols.append("prompt_tokens_cut")
    cols.extend(["success", "error", "warnings", "model", "settings_id"])
    return cols


class _Prefetcher:
    """Prepare items in worker threads, in order.

    Overlapping: a bounded window ahead of the scorer, while it encodes. Bursts: a group of
    items at once, all finished before the scorer gets any, so no preparation runs while the
    scorer encodes (the scorer only pulls items between encoder calls).
    """

    def __init__(self, items: Sequence[Item], prepare: Callable[[Item], PreparedItem], prefetch: Prefetch,
                 window: int) -> None:
        self.items = items
        self.prepare = prepare
        self.pool = (ThreadPoolExecutor(max_workers=prefetch.workers, thread_name_prefix="gencritic-load")
                     if prefetch.workers > 0 else None)
        self.overlap = prefetch.overlap
        self.burst = max(1, 2 * prefetch.workers)
        self.window = max(1, window)

    def _bursts(self, pool: ThreadPoolExecutor) -> Iterator[PreparedItem]:
        try:
            for start in range(0, len(self.items), self.burst):
                group = [pool.submit(self.prepare, item) for item in self.items[start:start + self.burst]]
                yield from [f.result() for f in group]
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[PreparedItem]:
        if self.pool is None:  # inline
            for item in self.items:
                yield self.prepare(item)
            return
        if not self.overlap:
            yield from self._bursts(self.pool)
            return
        pending: list[Future[PreparedItem]] = []
        it = iter(self.items)
        try:
            for item in it:
                pending.append(self.pool.submit(self.prepare, item))
                if len(pending) >= self.window:
                    break
            while pending:
                done = pending.pop(0)
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(self.pool.submit(self.prepare, nxt))
                yield done.result()
        finally:
            for f in pending:
                f.cancel()
            self.pool.shutdown(wait=True, cancel_futures=True)


def _batches(prepared: Iterator[PreparedItem], batch_size: int) -> Iterator[list[PreparedItem]]:
    """Group items so that a batch holds at least ``batch_size`` views (never splits an item)."""
    batch: list[PreparedItem] = []
    n_views = 0
    for p in prepared:
        batch.append(p)
        n_views += len(p.views)
        if n_views >= batch_size:
            yield batch
            batch, n_views = [], 0
    if batch:
        yield batch


def _score_batch(batch: list[PreparedItem], metrics: Sequence[Metric], ctx: RunContext,
                 settings_id: str, model_label: str, token_cuts: dict[str, int]) -> list[dict[str, Any]]:
    views = [v for p in batch for v in p.views]
    per_view: dict[str, np.ndarray] = {}
    view_errors: list[list[str]] = [[] for _ in views]
    if views:
        vb = ViewBatch(views=views, ctx=ctx, references={p.item.item_id: p.reference for p in batch})
        for metric in metrics:
            try:
                result = metric.compute(vb)
            except Exception as exc:  # a metric crash fails its values for this batch, not the run
                log.warning("metric %s failed on a batch of %d views", metric.name, len(views), exc_info=True)
                reason = f"{metric.name} failed: {type(exc).__name__}: {exc}".replace("\n", " ")
                nan = np.full(len(views), np.nan)
                result = MetricResult(values={c: nan for c in metric.info.columns}, errors=[reason] * len(views))
            for col, values in result.values.items():
                per_view[col] = np.asarray(values, dtype=np.float64)
            for i, err in enumerate(result.errors):
                if err:
                    view_errors[i].append(err if err.startswith(f"{metric.name} failed") else f"{metric.name}: {err}")
    models = {c: m.model_id() for m in metrics for c in m.info.columns}  # each column's own model, or None
    records = []
    offset = 0
    for p in batch:
        item = p.item
        n = len(p.views)
        rec: dict[str, Any] = {
            "item": {"item_id": item.item_id, "kind": item.kind, "path": str(item.path), "prompt": item.prompt,
                     "columns": item.columns},
            "values": {}, "views": [], "num_views": n + len(p.view_errors),
            "prompt_tokens_cut": token_cuts.get(item.prompt or "", 0) if item.prompt else None,
            "settings_id": settings_id, "model": model_label,
            "models": {c: models.get(c) for c in per_view},
        }
        if p.renderer:
            rec["renderer"] = p.renderer
        if p.warnings:  # absent otherwise: journals of clean runs stay as they were
            rec["warnings"] = list(p.warnings)
        if p.error is not None:
            rec.update(success=False, error=p.error, num_views_scored=0)
            records.append(rec)
            continue
        scored_views = set()
        for j in range(n):
            view = p.views[j]
            vals = {c: float(v[offset + j]) for c, v in per_view.items()}
            errs = view_errors[offset + j]
            rec["views"].append({"view": view.name, "values": vals, "error": "; ".join(errs) or None})
            if any(not math.isnan(x) for x in vals.values()):
                scored_views.add(j)
        for name, reason in p.view_errors.items():
            rec["views"].append({"view": name, "values": {}, "error": reason})
        item_errors: list[str] = []
        for col, values in per_view.items():
            chunk = values[offset:offset + n]
            ok = chunk[~np.isnan(chunk)]
            rec["values"][col] = float(ok.mean()) if ok.size else math.nan
            if not ok.size:
                reasons = sorted({e for j in range(n) for e in view_errors[offset + j]}) or [f"{col} not computed"]
                item_errors.extend(r for r in reasons if r not in item_errors)
        rec["num_views_scored"] = len(scored_views)
        rec["success"] = not item_errors
        rec["error"] = "; ".join(item_errors) or None
        records.append(rec)
        offset += n
    return records


def record_to_row(rec: dict[str, Any]) -> dict[str, Any]:
    item = rec["item"]
    row: dict[str, Any] = dict(item.get("columns") or {})
    row.setdefault("item_id", item["item_id"])
    if item.get("prompt") is not None and not any(k.lower() in ("prompt", "caption", "text") for k in row):
        row["prompt"] = item["prompt"]
    row.update(rec.get("values", {}))
    row.update(num_views=rec.get("num_views"), num_views_scored=rec.get("num_views_scored"),
               prompt_tokens_cut=rec.get("prompt_tokens_cut"), success=bool(rec.get("success")),
               error=rec.get("error") or "", warnings=join_cell(rec.get("warnings")), model=rec.get("model"),
               settings_id=rec.get("settings_id"))
    return row


def record_view_rows(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """views.csv rows: a metric's row names that metric's model (empty for weight-free ones);
    records journaled before per-column models were kept name the run's label."""
    models = rec.get("models")
    rows = []
    warnings = join_cell(rec.get("warnings"))  # the asset's: every view of it was drawn so
    for v in rec.get("views", []):
        if not v["values"]:
            rows.append({"item_id": rec["item"]["item_id"], "view": v["view"], "metric": "", "value": None,
                         "model": rec.get("model"), "settings_id": rec.get("settings_id"), "error": v["error"] or "",
                         "warnings": warnings})
        for col, value in v["values"].items():
            rows.append({"item_id": rec["item"]["item_id"], "view": v["view"], "metric": col, "value": value,
                         "model": models.get(col) if models is not None else rec.get("model"),
                         "settings_id": rec.get("settings_id"), "error": v["error"] or "", "warnings": warnings})
    return rows


VIEW_COLUMNS = ["item_id", "view", "metric", "value", "model", "settings_id", "error", "warnings"]


def summarise(records: Sequence[dict[str, Any]], metrics: Sequence[Metric], options: ScoreOptions,
              unavailable: dict[str, str], wall_time: float, interrupted: bool,
              runtime: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run statistics and provenance. ``runtime`` (from :func:`describe_runtime`) replaces the
    asked ``device``/``dtype`` (``auto``) in ``settings`` by what ran; the asked values stay
    under ``settings.requested`` (they are what the resume fingerprint is keyed on)."""
    successes = [r for r in records if r.get("success")]
    per_column: dict[str, dict[str, Any]] = {}
    for m in metrics:
        for col in m.info.columns:
            vals = np.array([r["values"].get(col, math.nan) for r in successes], dtype=np.float64)
            vals = vals[~np.isnan(vals)]
            per_column[col] = {
                "metric": m.name, "model": m.model_id(), "settings": m.settings(),
                "mean": float(vals.mean()) if vals.size else None,
                "std": float(vals.std()) if vals.size else None,
                "min": float(vals.min()) if vals.size else None,
                "max": float(vals.max()) if vals.size else None,
                "n": int(vals.size), "higher_is_better": m.info.higher_is_better,
            }
    settings: dict[str, Any] = {**options.numeric_settings(any(r["item"]["kind"] == "mesh" for r in records)),
                                "batch_size": options.batch_size}
    if runtime is not None:
        settings["requested"] = {"device": options.device, "dtype": options.dtype}
        settings.update(runtime)
    primary = metrics[0].info.columns[0] if metrics else None
    head = per_column.get(primary or "", {})
    summary: dict[str, Any] = {
        "primary_metric": primary,
        "mean": head.get("mean"),
        "mean_x100": None if head.get("mean") is None else 100.0 * head["mean"],
        "std": head.get("std"),
        "count": len(records),
        "successes": len(successes),
        "failures": len(records) - len(successes),
        "success_rate": (len(successes) / len(records)) if records else None,
        "metrics": per_column,
        "unavailable_metrics": unavailable,
        "model": options.model,
        "settings": settings,
        "versions": software_versions(),
        # which rasteriser drew the meshes (a GPU's GL, llvmpipe on the CPU, Cycles): numbers from
        # different renderers may differ slightly, so a published figure should say which
        "renderers": sorted({str(r["renderer"]) for r in records if r.get("renderer")}),
        "wall_time_s": round(wall_time, 3),
        "interrupted": interrupted,
    }
    return summary


def _token_cuts(items: Sequence[Item], backbones: Sequence[ClipBackbone]) -> dict[str, int]:
    """Tokens each distinct prompt loses to truncation, worst over backbones; warn once per text."""
    cuts: dict[str, int] = {}
    texts = sorted({i.prompt for i in items if i.prompt})
    for text in texts:
        cut = max((b.truncation_report(text) for b in backbones), default=0)
        cuts[text] = cut
        if cut:
            ctx_len = min(b.context_length for b in backbones)
            log.warning("prompt %r is %d tokens over the model's %d-token context: %d tokens cut "
                        "(use a long-caption metric such as longclip/specs or clip_chunked to keep them)",
                        text[:60] + ("..." if len(text) > 60 else ""), cut, ctx_len, cut)
    return cuts


def score(
    source: str | Path | Sequence[Item],
    out: str | Path | None = None,
    prompt: str | None = None,
    options: ScoreOptions | None = None,
    pool: ModelPool | None = None,
    **overrides: Any,
) -> ScoreRun:
    """Score images, meshes or folders of views; the Python API behind ``gencritic score``.

    ``source`` is a path (image, mesh, folder, manifest) or a list of :class:`Item`.
    With ``out`` set, results are written there incrementally and a re-run resumes.
    Returns the rows (also as ``.to_pandas()``) and the summary.
    """
    opts = options or ScoreOptions()
    for key, value in overrides.items():
        if not hasattr(opts, key):
            raise InputError(f"unknown option {key!r} for score()")
        setattr(opts, key, value)
    if isinstance(opts.metrics, str):
        opts.metrics = split_specs(opts.metrics)
    for fmt in opts.formats:
        if fmt not in FORMATS:
            raise InputError(f"unknown output format {fmt!r}: use {', '.join(FORMATS)}")
    if opts.batch_size < 1:
        raise InputError("--batch-size must be at least 1")
    started = time.perf_counter()
    try:
        background = parse_background(opts.background)
    except ValueError as exc:
        raise InputError(str(exc)) from None

    items = list(source) if isinstance(source, Sequence) and not isinstance(source, str) else collect_items(Path(source), prompt)
    if opts.reference_dir is not None:
        from gencritic.io.manifest import pair_references

        items = pair_references(items, Path(opts.reference_dir))
    if any(i.kind == "mesh" for i in items):  # a bad render option (or no Blender for cycles): one line, up front
        from gencritic.mesh.blend import require_blender
        from gencritic.render.settings import parse_render_options

        parse_render_options(dict(opts.render))
        require_blender([i.path for i in items if i.kind == "mesh" and i.error is None])
    metrics = build_metrics(opts.metrics, opts.model)
    file_inputs = {m.name: inputs for m in metrics if (inputs := m.external_inputs()) is not None}
    pool = pool or ModelPool(opts.device, opts.dtype)
    prefetch = resolve_prefetch(opts.workers, pool.device)  # before any model loads: bad values fail fast
    runtime = describe_runtime(pool.device, pool.dtype)  # what runs, as summary.json records it (a bad dtype fails here)
    cache = EmbeddingCache.in_dir(opts.cache_dir)
    ctx = RunContext(pool=pool, cache=cache, default_model=opts.model, background=background)
    metrics, unavailable = setup_metrics(metrics, ctx)

    has_meshes = any(i.kind == "mesh" for i in items)
    numeric = opts.numeric_settings(has_meshes)
    if file_inputs:  # absent otherwise, so runs without such files keep their fingerprints
        numeric["metric_files"] = file_inputs
    fingerprint = describe_settings(numeric)
    model_label = ",".join(dict.fromkeys(str(m.model_id()) for m in metrics if m.model_id()))
    out_dir = Path(out) if out is not None else None
    store = ResultsStore(out_dir, fingerprint, opts.overwrite) if out_dir is not None else None
    done = store.done_ids if store else set()
    pending = [i for i in items if i.item_id not in done]
    from gencritic.mesh.blend import prepare_blend_files

    # .blend assets are converted by Blender in batches first; a file that cannot be is a failed row
    blend_failures = prepare_blend_files([i.path for i in pending if i.kind == "mesh" and i.error is None],
                                         opts.progress)

    backbones = metric_backbones(metrics)
    any_text = any("text" in m.info.inputs for m in metrics)
    token_cuts = _token_cuts(pending, backbones) if any_text and backbones else {}
    if any_text and backbones:  # encode every distinct prompt once, up front, in big batches
        texts = sorted({i.prompt for i in pending if i.prompt and i.prompt.strip()})
        for bb in backbones:
            from gencritic.views import encode_texts_cached

            if texts:
                encode_texts_cached(bb, ctx, texts)

    needs_pixels = any(m.info.needs_pixels for m in metrics)
    needs_reference = any("reference" in m.info.inputs for m in metrics)
    columns = output_columns(items, metrics, any_text)

    render_opts = dict(opts.render)  # renders are cached beside the embeddings, and not at all with --no-cache
    render_opts.setdefault("cache", opts.cache_dir is not None)
    if opts.cache_dir is not None:
        render_opts.setdefault("cache_dir", str(Path(opts.cache_dir) / "renders"))

    def prepare(item: Item) -> PreparedItem:
        if item.kind == "mesh" and item.path in blend_failures:
            return PreparedItem(item, error=blend_failures[item.path])
        try:
            prepared = prepare_item(item, background, render_opts, decode=False, need_reference=needs_reference)
            if prepared.error is None and prepared.views:
                _warm_views(prepared, backbones, cache, needs_pixels)
        except ItemError as exc:  # decode failure surfaces here when pixels are first needed
            prepared = PreparedItem(item, error=str(exc))
        except Exception as exc:  # a renderer/loader crash fails this item, not the run
            log.warning("preparing %s failed", item.item_id, exc_info=True)
            prepared = PreparedItem(item, error=f"{type(exc).__name__}: {exc}".replace("\n", " "))
        return prepared

    new_records: list[dict[str, Any]] = []
    interrupted = False
    progress = _progress(len(items), len(done), opts.progress)
    try:
        with progress as bar:
            task = bar.add_task("scoring", total=len(items), completed=len(done))
            for batch in _batches(iter(_Prefetcher(pending, prepare, prefetch, 4 * opts.batch_size)),
                                  opts.batch_size):
                records = _score_batch(batch, metrics, ctx, fingerprint, model_label, token_cuts)
                if store is not None:
                    store.append(records)
                    store.append_csv([record_to_row(r) for r in records], columns)
                new_records.extend(records)
                bar.advance(task, len(batch))
    except KeyboardInterrupt:
        interrupted = True
        log.warning("interrupted: finished batches are saved; re-run the same command to resume")

    all_records = store.records() if store is not None else {r["item"]["item_id"]: r for r in new_records}
    ordered = [all_records[i.item_id] for i in items if i.item_id in all_records]
    rows = [record_to_row(r) for r in ordered]
    view_rows = [vr for r in ordered for vr in record_view_rows(r)]
    summary = summarise(ordered, metrics, opts, unavailable, time.perf_counter() - started, interrupted, runtime)
    summary["cache"] = {"hits": cache.hits, "misses": cache.misses, "path": str(cache.path) if cache.path else None}
    summary["resumed_items"] = len(done)
    summary["warnings"] = summarise_warnings(ordered)  # degradations accepted, by kind (gencritic.row_warnings)
    if out_dir is not None:
        for fmt in dict.fromkeys(["csv", *opts.formats]):
            write_table(rows, columns, out_dir / f"results.{fmt}")
        write_table(view_rows, VIEW_COLUMNS, out_dir / "views.csv")
        write_json(out_dir / "summary.json", summary, default=str)
    cache.close()
    if interrupted:
        raise KeyboardInterrupt
    return ScoreRun(rows=rows, columns=columns, view_rows=view_rows, summary=summary, out_dir=out_dir)


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
