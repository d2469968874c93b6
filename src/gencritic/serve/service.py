"""The one object the HTTP service and the MCP server share: models, roots, batcher.

It never computes a score itself. Images go through :func:`gencritic.scoring.score` (the
same call as ``gencritic score``), diagnostics through :func:`gencritic.diagnose.api.diagnose`,
meshes through the pipeline's render path; the service adds only what a long-lived process
needs: one :class:`ModelPool` loaded once, a micro-batcher that merges concurrent requests
into one encoder call, and confinement of every path to the configured roots.
"""

from __future__ import annotations

import importlib
import io
import math
import shutil
import tempfile
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import GencriticError, InputError
from gencritic.io.fsnames import printable_tree
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, Item, kind_for_path
from gencritic.models.loader import DEFAULT_CLIP_MODEL, ModelPool
from gencritic.serve.batching import MicroBatcher
from gencritic.serve.security import Roots

DEFAULT_MAX_UPLOAD = 20 * 1024 * 1024
DEFAULT_MAX_PIXELS = 64_000_000


class NotAvailable(Exception):
    """A feature whose module is not installed (or not built yet); HTTP 501."""


class UnsupportedMedia(InputError):
    """An upload or path that is not an image (or asset) this server reads; HTTP 415."""


class TooLarge(InputError):
    """A body, file or image over the configured limits; HTTP 413."""


@dataclass
class ServiceConfig:
    """Settings of a running service; everything that changes numbers is in ``score_options``."""

    model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    roots: Sequence[str | Path] = ()
    api_key: str | None = None
    cache_dir: Path | None = None
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    max_pixels: int = DEFAULT_MAX_PIXELS
    batch_window_ms: float = 5.0
    max_batch: int = 32
    default_metrics: tuple[str, ...] = ("clip",)
    render: dict[str, Any] = field(default_factory=dict)


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
    """Check that ``data`` is a decodable image of sane size; return its format's suffix.

    Done before anything is queued, so a text file or a decompression bomb is a 4xx for its
    own request and never fails a batch shared with others.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError("empty upload: send an image file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = (img.format or "").lower()
            w, h = img.size
            if w * h > max_pixels:
                raise TooLarge(f"image is {w}x{h}: over the {max_pixels}-pixel limit of this server")
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMedia(f"upload is not a readable image ({type(exc).__name__}): send PNG, JPEG, WebP, BMP, "
                         f"TIFF or GIF") from None
    except Image.DecompressionBombError as exc:
        raise TooLarge(f"image too large to decode safely: {exc}") from None
    suffix = {"jpeg": ".jpg", "png": ".png", "webp": ".webp", "bmp": ".bmp", "tiff": ".tif", "gif": ".gif"}.get(fmt)
    if suffix is None:
        raise UnsupportedMedia(f"unsupported image format {fmt or 'unknown'!r}: send PNG, JPEG, WebP, BMP, TIFF or GIF")
    return suffix


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


def row_result(row: dict[str, Any], columns: Sequence[str], label: str) -> dict[str, Any]:
    """A result row of the pipeline as the JSON the service returns (scores + provenance)."""
    from gencritic.row_warnings import split_cell

    scores = {c: json_number(row.get(c)) for c in columns if c in row}
    return printable_tree({"input": label, "scores": scores, "success": bool(row.get("success")), "error": row.get("error") or None,
            "model": row.get("model"), "settings_id": row.get("settings_id"), "prompt": row.get("prompt"),
            "num_views": row.get("num_views"), "num_views_scored": row.get("num_views_scored"),
            "warnings": split_cell(row.get("warnings"))})  # degradations accepted (gencritic.row_warnings)


class ScoringService:
    """Shared by every request of a process. Thread-safe: scoring goes through the batcher."""

    def __init__(self, config: ServiceConfig, pool: ModelPool | None = None) -> None:
        self.config = config
        self.roots = Roots.of(config.roots)
        self.pool = pool or ModelPool(config.device, config.dtype)
        self.batcher: MicroBatcher[ImageJob, dict[str, Any]] = MicroBatcher(
            self._score_group, window_s=config.batch_window_ms / 1000.0, max_batch=config.max_batch)
        self._tmp = Path(tempfile.mkdtemp(prefix="gencritic-serve-"))

    # -- set-up ---------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the default model now, so the first request does not pay for it (and a missing
        model stops the service at start with the loader's one-line error)."""
        self.pool.clip(self.config.model)

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def options(self, metrics: Sequence[str]) -> Any:
        from gencritic.render.settings import render_settings
        from gencritic.scoring import ScoreOptions

        return ScoreOptions(metrics=list(metrics), model=self.config.model, device=self.config.device,
                            dtype=self.config.dtype, batch_size=self.config.max_batch, workers=None,
                            cache_dir=self.config.cache_dir, progress=False,
                            render=render_settings(self.config.render))

    def parse_metrics(self, metrics: str | Sequence[str] | None) -> tuple[str, ...]:
        from gencritic.metrics.registry import create_metric, split_specs

        specs = tuple(split_specs(metrics)) if metrics else self.config.default_metrics
        for spec in specs:
            create_metric(spec, self.config.model)  # unknown names fail here, as InputError
        return specs

    # -- inputs ---------------------------------------------------------------------------------
    def confine(self, raw: str) -> Path:
        return self.roots.confine(raw)

    def save_upload(self, data: bytes, filename: str | None) -> Path:
        """Validate an uploaded image and keep it in the service's temp folder."""
        if len(data) > self.config.max_upload_bytes:
            raise TooLarge(f"upload of {len(data)} bytes is over the {self.config.max_upload_bytes}-byte limit")
        suffix = validate_image_bytes(data, self.config.max_pixels)
        path = self._tmp / f"{uuid.uuid4().hex}{suffix}"
        path.write_bytes(data)
        return path

    def image_at(self, raw: str) -> Path:
        path = self.confine(raw)
        if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
            raise UnsupportedMedia(f"{raw!r} is not an image file ({', '.join(sorted(IMAGE_EXTENSIONS))})")
        size = path.stat().st_size
        if size > self.config.max_upload_bytes:
            raise TooLarge(f"{raw!r} is {size} bytes: over the {self.config.max_upload_bytes}-byte limit")
        validate_image_bytes(path.read_bytes(), self.config.max_pixels)
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
        run = score(items, options=self.options(metrics), pool=self.pool)
        cols = metric_columns(metrics)
        by_id = {r["item_id"]: r for r in run.rows}
        return [row_result(by_id[it.item_id], cols, job.label) for it, job in zip(items, jobs, strict=True)]

    def score_images_now(self, jobs: Sequence[ImageJob], metrics: Sequence[str]) -> list[dict[str, Any]]:
        """Synchronous scoring of several images in one call (the MCP ``compare`` tool)."""
        return self._score_group((tuple(metrics),), jobs)

    def asset_item(self, raw: str, prompt: str | None) -> Item:
        path = self.confine(raw)
        kind = kind_for_path(path)
        if kind == "image" or (path.is_file() and path.suffix.lower() not in MESH_EXTENSIONS):
            raise UnsupportedMedia(f"{raw!r} is not a 3D asset: give a mesh ({', '.join(sorted(MESH_EXTENSIONS))}) "
                             f"or a folder of rendered views")
        if kind == "mesh":
            optional_module("gencritic.render.api", "mesh rendering (gencritic[render])")
        return Item(item_id=path.name, kind=kind, path=path, prompt=prompt, columns={})

    def score_asset(self, raw: str, prompt: str | None, metrics: Sequence[str]) -> dict[str, Any]:
        """Score a mesh (rendered by the pipeline) or a folder of views; per-view scores included."""
        from gencritic.scoring import score

        item = self.asset_item(raw, prompt)
        run = score([item], options=self.options(metrics), pool=self.pool)
        result = row_result(run.rows[0], metric_columns(metrics), raw)
        result["views"] = printable_tree([{k: json_number(v) for k, v in vr.items()
                                           if k in ("view", "metric", "value", "error")} for vr in run.view_rows])
        return result

    def diagnose(self, raw_path: Path, profile: str | None, prompt: str | None,
                 reference: Path | None) -> dict[str, Any]:
        api = optional_module("gencritic.diagnose.api", "diagnose (gencritic.diagnose)")
        kwargs: dict[str, Any] = {"prompt": prompt, "reference": reference, "pool": self.pool,
                                  "model": self.config.model}
        if profile:
            # only shipped profile names: a path here would let a caller read any YAML on the server
            names = [_profile_name(p) for p in self.profiles()]
            if profile not in names:
                raise InputError(f"unknown profile {profile!r}; this server offers: {', '.join(names)}")
            kwargs["profile"] = profile
        result = api.diagnose(raw_path, **kwargs)
        if not isinstance(result, dict):
            raise GencriticError("diagnose returned no JSON object")
        return printable_tree(result)  # type: ignore[no-any-return]  # frame names: io/fsnames.py

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
                "roots": [str(r) for r in self.roots.paths], "auth": bool(self.config.api_key)}


def _profile_name(profile: Any) -> str:
    if isinstance(profile, dict):
        return str(profile.get("name"))
    return str(getattr(profile, "name", profile))
