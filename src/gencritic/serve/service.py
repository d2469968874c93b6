"""The one object the HTTP service and the MCP server share: models, roots, limits, batcher.

It never computes a score itself. Images go through :func:`gencritic.scoring.score` (the
same call as ``gencritic score``), diagnostics through :func:`gencritic.diagnose.api.diagnose`,
meshes through the pipeline's render path; the service adds only what a long-lived process
needs: one bounded model pool loaded at start, a micro-batcher that merges concurrent requests
into one encoder call, confinement of every path to the configured roots, the operator's
allow-list of models (:mod:`.models`), one size check for every input (:mod:`.limits`), and
a cap on how many heavy jobs (a scoring batch, a diagnosis, an asset) run at once, so that
memory is bounded by the limits and not by the number of clients.
"""

from __future__ import annotations

import ctypes
import importlib
import math
import threading
import uuid
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import GencriticError, InputError
from gencritic.io.fsnames import printable_tree
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, Item, kind_for_path
from gencritic.models.loader import DEFAULT_CLIP_MODEL, ModelPool
from gencritic.serve.batching import MicroBatcher
from gencritic.serve.errors import NotAvailable, TooLarge, UnsupportedMedia, client_names, label, scrub, shown
from gencritic.serve.limits import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_FRAMES,
    DEFAULT_MAX_PIXELS,
    Limits,
    check_file,
    check_image_bytes,
    check_input,
)
from gencritic.serve.models import DEFAULT_MAX_MODELS, BoundedModelPool, ModelPolicy
from gencritic.serve.security import Roots
from gencritic.serve.uploads import UploadDir

__all__ = ["DEFAULT_MAX_PIXELS", "DEFAULT_MAX_UPLOAD", "ImageJob", "NotAvailable", "ScoringService", "ServiceConfig",
           "TooLarge", "UnsupportedMedia", "validate_image_bytes"]

DEFAULT_MAX_UPLOAD = DEFAULT_MAX_BYTES
MAX_SPEC_CHARS = 2000


@dataclass
class ServiceConfig:
    """Settings of a running service; everything that changes numbers is in ``score_options``."""

    model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    roots: Sequence[str | Path] = ()
    api_key: str | None = None
    cache_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_frames: int = DEFAULT_MAX_FRAMES
    allow_models: Sequence[str] = ()  # models metric options may name besides ``model``
    max_models: int = DEFAULT_MAX_MODELS  # models and heads kept loaded (least recently used out)
    max_concurrent: int = 1  # heavy jobs at once: each may hold an input's decoded pixels
    batch_window_ms: float = 5.0
    max_batch: int = 32
    default_metrics: tuple[str, ...] = ("clip",)
    render: dict[str, Any] = field(default_factory=dict)

    @property
    def limits(self) -> Limits:
        return Limits(self.max_upload_bytes, self.max_pixels, self.max_frames)


@dataclass(frozen=True)
class ImageJob:
    """One image to score: a file on disk (uploaded to a temp file, or under a root)."""

    path: Path
    prompt: str | None
    label: str  # what the caller called it (file name or path), echoed back


def optional_module(name: str, what: str) -> Any:
    """Import a sibling area's module, or say clearly that it is not available here."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise NotAvailable(f"{what} is not available in this installation ({name} cannot be imported: {exc})") from None


def validate_image_bytes(data: bytes, max_pixels: int) -> str:
    """Check that ``data`` is an image of sane size; return its format's suffix (see :mod:`.limits`)."""
    return check_image_bytes(data, "upload", Limits(max_bytes=max(len(data), 1), max_pixels=max_pixels))


def _libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return None


def release_memory() -> None:
    """Give freed heap memory back to the system (glibc's ``malloc_trim``; nothing elsewhere)."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):
        libc.malloc_trim(0)


M_MMAP_THRESHOLD = -3  # <malloc.h>
MMAP_THRESHOLD_BYTES = 4 * 1024 * 1024


def tune_allocator() -> None:
    """Serve every allocation over 4 MiB from its own mapping, returned to the system when freed.

    Why: glibc raises its mmap threshold each time such a block is freed (up to 32 MiB), after
    which a diagnosis's 16 MB float planes come from the heap and leave it fragmented: the same
    hostile load then peaked 200 MB higher from one run to the next. A fixed threshold keeps
    large arrays out of the heap. Smaller blocks (an encoder's activations on CPU) stay where
    they were; a service process calls this once, at start."""
    libc = _libc()
    if libc is not None and hasattr(libc, "mallopt"):
        libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


def metric_columns(specs: Sequence[str]) -> list[str]:
    """Output columns of the asked metrics, in order (for picking scores out of a result row)."""
    from gencritic.metrics.registry import create_metric

    cols: list[str] = []
    for spec in specs:
        cols.extend(c for c in create_metric(spec).info.columns if c not in cols)
    return cols


def json_number(value: Any) -> Any:
    """NaN (a metric that did not compute) travels as null: JSON has no NaN, and 0 would be a lie."""
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def row_result(row: dict[str, Any], columns: Sequence[str], label: str,
               names: dict[str, str] | None = None) -> dict[str, Any]:
    """A result row of the pipeline as the JSON the service returns (scores + provenance).
    ``names``: server paths -> the client's names, for the error and warning texts."""
    from gencritic.row_warnings import split_cell

    scores = {c: json_number(row.get(c)) for c in columns if c in row}
    error = row.get("error") or None
    return printable_tree({  # type: ignore[no-any-return]
        "input": label, "scores": scores, "success": bool(row.get("success")),
        "error": scrub(str(error), names or {}) if error else None,
        "model": row.get("model"), "settings_id": row.get("settings_id"), "prompt": row.get("prompt"),
        "num_views": row.get("num_views"), "num_views_scored": row.get("num_views_scored"),
        "warnings": [scrub(str(w), names or {}) for w in split_cell(row.get("warnings"))]})  # gencritic.row_warnings


class ScoringService:
    """Shared by every request of a process. Thread-safe: scoring goes through the batcher, and
    heavy work through a semaphore of ``max_concurrent`` slots."""

    def __init__(self, config: ServiceConfig, pool: ModelPool | None = None) -> None:
        self.config = config
        self.limits = config.limits
        self.roots = Roots.of(config.roots)
        self.pool = pool or BoundedModelPool(config.device, config.dtype, config.max_models)
        self.policy = ModelPolicy([config.model, *config.allow_models], self.roots)
        self.batcher: MicroBatcher[ImageJob, dict[str, Any]] = MicroBatcher(
            self._score_group, window_s=config.batch_window_ms / 1000.0, max_batch=config.max_batch)
        if config.max_concurrent < 1:
            raise InputError(f"--max-concurrent must be at least 1, got {config.max_concurrent}")
        self._work = threading.BoundedSemaphore(config.max_concurrent)
        self.uploads = UploadDir()
        self._tmp = self.uploads.path

    # -- set-up ---------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the default model now, so the first request does not pay for it (and a missing
        model stops the service at start with the loader's one-line error)."""
        self.pool.clip(self.config.model)
        if isinstance(self.pool, BoundedModelPool):
            self.pool.pin(("clip", self.config.model))

    def close(self) -> None:
        self.uploads.close()

    def options(self, metrics: Sequence[str]) -> Any:
        from gencritic.render.settings import render_settings
        from gencritic.scoring import ScoreOptions

        return ScoreOptions(metrics=list(metrics), model=self.config.model, device=self.config.device,
                            dtype=self.config.dtype, batch_size=self.config.max_batch, workers=None,
                            cache_dir=self.config.cache_dir, progress=False,
                            render=render_settings(self.config.render))

    @contextmanager
    def heavy(self) -> Iterator[None]:
        """One of ``max_concurrent`` slots for work that decodes an input or runs a model.

        The memory a job freed goes back to the system when it ends (:func:`release_memory`):
        glibc keeps freed blocks in per-thread arenas, so jobs that ran on different threads
        would otherwise each keep their peak, and the service grew by several peaks."""
        with self._work:
            try:
                yield
            finally:
                release_memory()

    def parse_metrics(self, metrics: str | Sequence[str] | None) -> tuple[str, ...]:
        """Metric specs checked against the registry and the operator's allow-list (403 for a
        model or file the operator did not allow), before anything is loaded or opened."""
        from gencritic.metrics.registry import all_metrics, create_metric, split_specs

        specs = tuple(split_specs(metrics)) if metrics else self.config.default_metrics
        checked = []
        for spec in specs:
            if len(spec) > MAX_SPEC_CHARS:
                raise InputError(f"metric spec {shown(spec)} is over {MAX_SPEC_CHARS} characters")
            cls = all_metrics().get(spec.partition(":")[0].strip().lower())
            if cls is not None and cls.info.kind == "set":
                # One value over a whole run (FD/KD against a ref= set): a request has no run to
                # give it, and its reference set would be read past the service's roots and limits
                # (a manifest under a root may list any file). Refused before anything is opened.
                raise InputError(f"metric {shown(spec)} is a set metric (one value over a whole run, "
                                 f"such as FD/KD against a reference set); the service scores each request on its own: run it with "
                                 f"`gencritic score FOLDER --metrics ...`")
            spec = self.policy.check_spec(spec)
            metric = create_metric(spec, self.config.model)  # unknown names fail here, as InputError
            self.policy.check_metric(metric, self.config.model)
            checked.append(spec)
        return tuple(checked)

    # -- inputs ---------------------------------------------------------------------------------
    def confine(self, raw: str) -> Path:
        return self.roots.confine(raw)

    def save_upload(self, data: bytes, filename: str | None) -> Path:
        """Check an uploaded image (bytes, then its header) and keep it in the service's temp folder."""
        suffix = check_image_bytes(data, shown(filename or "upload"), self.limits)
        path = self._tmp / f"{uuid.uuid4().hex}{suffix}"
        path.write_bytes(data)
        return path

    def image_at(self, raw: str) -> Path:
        """An image under a root, within the limits (its header read, nothing decoded)."""
        path = self.confine(raw)
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UnsupportedMedia(f"{shown(raw)} is not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        check_file(path, shown(raw), self.limits, all_frames=False)
        return path

    def input_at(self, raw: str, all_frames: bool = True) -> Path:
        """Anything under a root (file or folder), within the limits."""
        path = self.confine(raw)
        check_input(path, shown(raw), self.limits, all_frames)
        return path

    # -- scoring --------------------------------------------------------------------------------
    async def score_image(self, job: ImageJob, metrics: Sequence[str]) -> dict[str, Any]:
        """Queue one image; it is scored together with whatever arrives within the window."""
        return await self.batcher.submit((tuple(metrics),), job)

    def _score_group(self, key: Hashable, jobs: Sequence[ImageJob]) -> list[dict[str, Any]]:
        from gencritic.scoring import score

        metrics = list(key[0])  # type: ignore[index]
        items = [Item(item_id=f"r{i}", kind="image", path=job.path, prompt=job.prompt, columns={})
                 for i, job in enumerate(jobs)]
        names = {str(job.path): job.label for job in jobs}
        with self.heavy(), client_names(names):
            run = score(items, options=self.options(metrics), pool=self.pool)
        cols = metric_columns(metrics)
        by_id = {r["item_id"]: r for r in run.rows}
        return [row_result(by_id[it.item_id], cols, job.label, names) for it, job in zip(items, jobs, strict=True)]

    def score_images_now(self, jobs: Sequence[ImageJob], metrics: Sequence[str]) -> list[dict[str, Any]]:
        """Synchronous scoring of several images in one call (the MCP ``compare`` tool)."""
        return self._score_group((tuple(metrics),), jobs)

    def asset_item(self, raw: str, prompt: str | None) -> Item:
        path = self.confine(raw)
        kind = kind_for_path(path)
        if kind == "image" or (path.is_file() and path.suffix.lower() not in MESH_EXTENSIONS):
            raise UnsupportedMedia(f"{shown(raw)} is not a 3D asset: give a mesh ({', '.join(sorted(MESH_EXTENSIONS))}) "
                                   f"or a folder of rendered views")
        check_input(path, shown(raw), self.limits, all_frames=True)
        if kind == "mesh":
            optional_module("gencritic.render.api", "mesh rendering (gencritic[render])")
        return Item(item_id=path.name, kind=kind, path=path, prompt=prompt, columns={})

    def score_asset(self, raw: str, prompt: str | None, metrics: Sequence[str]) -> dict[str, Any]:
        """Score a mesh (rendered by the pipeline) or a folder of views; per-view scores included."""
        from gencritic.scoring import score

        item = self.asset_item(raw, prompt)
        names = {str(item.path): label(raw)}
        with self.heavy(), client_names(names):
            run = score([item], options=self.options(metrics), pool=self.pool)
        result = row_result(run.rows[0], metric_columns(metrics), label(raw), names)
        result["views"] = printable_tree([{k: (scrub(v, names) if k == "error" and isinstance(v, str) else json_number(v))
                                           for k, v in vr.items() if k in ("view", "metric", "value", "error")}
                                          for vr in run.view_rows])
        return result

    def diagnose(self, target: Path, profile: str | None, prompt: str | None, reference: Path | None,
                 names: dict[str, str] | None = None) -> dict[str, Any]:
        """The diagnose JSON of a checked input (see :meth:`diagnose_input`); ``names`` maps the
        server's paths to the client's names in the result and in errors."""
        api = optional_module("gencritic.diagnose.api", "diagnose (gencritic.diagnose)")
        kwargs: dict[str, Any] = {"prompt": prompt, "reference": reference, "pool": self.pool,
                                  "model": self.config.model}
        if profile:
            # only shipped profile names: a path here would let a caller read any YAML on the server
            offered = self.profile_names()
            if profile not in offered:
                raise InputError(f"unknown profile {shown(profile)}; this server offers: {', '.join(offered)}")
            kwargs["profile"] = profile
        names = dict(names or {})
        with self.heavy(), client_names(names):
            result = api.diagnose(target, **kwargs)
        if not isinstance(result, dict):
            raise GencriticError("diagnose returned no JSON object")
        for key in ("input", "reference"):
            if isinstance(result.get(key), str):
                result[key] = names.get(result[key], result[key])
        if isinstance(result.get("profile"), dict):  # shipped profiles are named, not located (as /v1/profiles)
            result["profile"] = {k: v for k, v in result["profile"].items() if k != "path"}
        return printable_tree(result)  # type: ignore[no-any-return]  # frame names: io/fsnames.py

    def diagnose_input(self, path: str | None, upload: Path | None, upload_name: str | None, profile: str | None,
                       prompt: str | None, reference: str | None) -> dict[str, Any]:
        """Diagnose an upload or a path under a root (image, animation, video, folder of frames),
        every input within the limits (all frames counted) before anything is decoded."""
        if (upload is None) == (path is None):
            raise InputError("send exactly one of 'file' (an upload) or 'path' (under an allowed root)")
        if upload is not None:
            target, names = upload, {str(upload): label(upload_name or "upload")}
        else:
            assert path is not None
            target = self.input_at(path, all_frames=True)
            names = {str(target): label(path)}
        ref = None
        if reference:
            ref = self.image_at(reference)
            names[str(ref)] = label(reference)
        return self.diagnose(target, profile, prompt, ref, names)

    def profiles(self) -> list[Any]:
        mod = optional_module("gencritic.diagnose.profiles", "diagnose profiles (gencritic.diagnose)")
        return list(mod.list_profiles())

    def profile_names(self) -> list[str]:
        return [_profile_name(p) for p in self.profiles()]

    @staticmethod
    def list_metrics() -> list[dict[str, Any]]:
        from gencritic.metrics.registry import all_metrics

        return [cls.info.as_dict() for cls in all_metrics().values()]

    def health(self) -> dict[str, Any]:
        import gencritic

        return {"status": "ok", "version": gencritic.__version__, "model": self.config.model,
                "models_loaded": [list(k) for k in self.pool.loaded()], "batching": self.batcher.snapshot(),
                "roots": [str(r) for r in self.roots.paths], "auth": bool(self.config.api_key),
                "allowed_models": list(self.policy.allowed),
                "limits": {"max_bytes": self.limits.max_bytes, "max_pixels": self.limits.max_pixels,
                           "max_frames": self.limits.max_frames, "max_models": self.config.max_models,
                           "max_concurrent": self.config.max_concurrent}}


def _profile_name(profile: Any) -> str:
    if isinstance(profile, dict):
        return str(profile.get("name"))
    return str(getattr(profile, "name", profile))
