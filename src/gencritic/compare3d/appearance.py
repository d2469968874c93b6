"""Reference-based appearance: the generated and the reference asset drawn by one rig, compared view by view.

Why through the registered reference metrics: ``psnr``, ``ssim``, ``lpips``, ``clip_i2i`` and
``dino`` are the very classes ``gencritic score --metrics ...`` runs (metrics/reference.py), with
their tests against scikit-image, the lpips package and the raw transformers models; here each
view of the generated asset is an item whose reference is the same camera's view of the
reference asset. Their models load through the run's model pool and their embeddings go
through the embedding cache, keyed by the view's content, so a reference shared by several
generated variants is rendered once (render cache + an in-process memo) and encoded once.

Conventions (docs/3d_evaluation.md): both assets are normalised alike (``--normalize``,
``--up``) and drawn with the same :class:`~gencritic.render.settings.RenderSettings`; the
generated asset is drawn after the pair's alignment transform when ``--align search`` found one,
so both views show the same pose. Pixel metrics compare whole frames composited on the
background (white unless ``--background``), the InstantMesh/CRM protocol, unless a spec says
``mask=auto``. Every view is compared, a blank one too (it is what the camera sees).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gencritic.compare3d.evaluators import PairResult
from gencritic.compare3d.pairs import Pair
from gencritic.errors import InputError, ItemError
from gencritic.models.defaults import DEFAULT_CLIP_MODEL

if TYPE_CHECKING:
    from gencritic.io.images import LoadedImage
    from gencritic.models.loader import ModelPool
    from gencritic.render.api import AssetRender
    from gencritic.render.settings import RenderSettings
    from gencritic.scoring.metric_set import MetricSet
    from gencritic.views import RunContext

DEFAULT_APPEARANCE_METRICS = ("psnr", "ssim", "lpips", "clip_i2i", "dino")
# the registered metrics that compare a view with a reference image, one value per view
APPEARANCE_METRICS = ("psnr", "ssim", "ms_ssim", "lpips", "clip_i2i", "dino")
PIXEL_METRICS = ("psnr", "ssim", "ms_ssim", "lpips")  # those with a mask= option: whole frames by default


def appearance_specs(text: str | Sequence[str]) -> list[str]:
    """``psnr,lpips:net=vgg`` -> metric specs, each pixel metric comparing whole frames unless it
    says ``mask=``; an unknown name is one InputError line naming the choices."""
    from gencritic.metrics.registry import split_specs

    specs = split_specs(text)
    if not specs:
        raise InputError(f"--appearance-metrics is empty: use some of {','.join(APPEARANCE_METRICS)}")
    out = []
    for spec in specs:
        name, _, opts = spec.partition(":")
        name = name.strip().lower()
        if name not in APPEARANCE_METRICS:
            raise InputError(f"--appearance-metrics: {name!r} is not an appearance metric; use "
                             f"{', '.join(APPEARANCE_METRICS)} (options as in --metrics, e.g. lpips:net=vgg)")
        if name in PIXEL_METRICS and "mask=" not in opts.replace(" ", "").lower():
            opts = ";".join(filter(None, [opts.strip(), "mask=none"]))
        out.append(f"{name}:{opts}" if opts else name)
    return out


@dataclass(frozen=True)
class AppearanceOptions:
    """What ``compare3d``'s appearance columns depend on, and where they run."""

    render: RenderSettings
    metrics: tuple[str, ...] = DEFAULT_APPEARANCE_METRICS
    model: str = DEFAULT_CLIP_MODEL  # the CLIP backbone of clip_i2i (score's --model)
    device: str = "auto"
    dtype: str = "auto"
    cache_dir: Path | None = None  # embedding cache root (None: in memory only)


@dataclass
class _Side:
    """One asset's views as compared: composited images keyed by content."""

    render: AssetRender
    images: list[LoadedImage]
    blank: list[bool]
    key: str  # content key of the drawn asset (file sha256 and transform)


@dataclass
class AppearanceEvaluator:
    """PSNR, SSIM, LPIPS, CLIP image-image and DINO similarity of the pair's views, mean over views.

    ``aligner`` gives the pair's 4x4 alignment of the generated asset (None: draw both in their
    canonical frames, ``--align none``); ``views_dir`` is where the compared views are written
    (``views/generated/<pair>/NNN.png``, ``views/reference/<asset>/NNN.png``), for the report."""

    options: AppearanceOptions
    aligner: Callable[[Pair], np.ndarray | None] | None = None
    views_dir: Path | None = None
    pool: ModelPool | None = None  # models already loaded (API callers, benchmarks); else one of its own
    name: str = "appearance"
    _metric_set: MetricSet = field(init=False, repr=False)
    _ctx: RunContext = field(init=False, repr=False)
    _memo: OrderedDict[tuple[str, float, int], _Side] = field(init=False, repr=False, default_factory=OrderedDict)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        """Metrics are built and set up now: a bad option or missing weights stop the run before any pair."""
        from gencritic.cache import EmbeddingCache
        from gencritic.models.loader import ModelPool
        from gencritic.scoring.metric_set import MetricSet
        from gencritic.views import RunContext

        o = self.options
        self._metric_set = MetricSet.build(appearance_specs(list(o.metrics)), o.model)
        pool = self.pool or ModelPool(o.device, o.dtype)
        self._ctx = RunContext(pool=pool, cache=EmbeddingCache.in_dir(o.cache_dir), default_model=o.model,
                               background=o.render.background)
        self._metric_set.setup(self._ctx)

    # -- what the run asks --------------------------------------------------------------------------
    def metric_columns(self) -> list[str]:
        return [c for m in self._metric_set.view_metrics for c in m.info.columns]

    def columns(self) -> list[str]:
        return [*self.metric_columns(), "appearance_views", "appearance_blank_views"]

    def numeric_columns(self) -> list[str]:
        return [*self.metric_columns(), "appearance_views"]

    @property
    def unavailable(self) -> dict[str, str]:
        return dict(self._metric_set.unavailable)

    def settings(self) -> dict[str, Any]:
        ms = self._metric_set
        return {"render": self.options.render.pixel_settings(), "renderer_version": self.options.render.key()[:16],
                "metrics": {m.name: {"model": m.model_id(), "settings": m.settings()} for m in ms.view_metrics},
                "unavailable": ms.unavailable,
                "aligned": "the generated asset is drawn after the pair's --align transform",
                "views": "mean over every view of the rig; per-view values in views.csv"}

    # -- a pair ---------------------------------------------------------------------------------------
    def _side(self, path: Path, transform: np.ndarray | None, memo: bool) -> _Side:
        """The asset's composited views (rendered, or from the render cache); references are kept
        in memory too, since several generated assets usually share one."""
        from gencritic.render.api import render_asset, transformed_sha256

        stat = path.stat()
        memo_key = (str(path.resolve()), stat.st_mtime, stat.st_size)
        if memo:
            with self._lock:
                if memo_key in self._memo:
                    self._memo.move_to_end(memo_key)
                    return self._memo[memo_key]
        render = render_asset(path, self.options.render, transform)
        side = _composited(render, transformed_sha256(render.asset_sha256, transform))
        if memo:
            with self._lock:
                self._memo[memo_key] = side
                while len(self._memo) > 8:
                    self._memo.popitem(last=False)
        return side

    def prepare(self, pair: Pair) -> Any:
        assert pair.generated is not None and pair.reference is not None
        reference = self._side(pair.reference, None, memo=True)
        generated = self._side(pair.generated, None, memo=False) if self.aligner is None else None
        return generated, reference

    def evaluate(self, pair: Pair, prepared: Any) -> PairResult:
        generated, reference = prepared
        if generated is None:  # drawn now: its pose comes from the geometry's alignment
            assert self.aligner is not None and pair.generated is not None
            generated = self._side(pair.generated, self.aligner(pair), memo=False)
        values, views = self.compare(pair.pair_id, generated, reference)
        warnings = [f"generated: {w}" for w in generated.render.warnings]
        warnings += [f"reference: {w}" for w in reference.render.warnings]
        blank = [name for name, g in zip(_names(generated), generated.blank, strict=True) if g]
        if blank:
            warnings.append(f"the generated asset is not in view {', '.join(blank)} (compared as drawn)")
        return PairResult(values, warnings, views)

    def compare(self, pair_id: str, generated: _Side, reference: _Side) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """Every metric on the pair's views in one batch; a view a metric cannot score fails the pair."""
        from gencritic.items import Item
        from gencritic.views import View, ViewBatch

        n = len(generated.images)
        views: list[View] = []
        refs: dict[str, LoadedImage | None] = {}
        for i, image in enumerate(generated.images):
            item = Item(item_id=f"{pair_id}\x00{i}", kind="image", path=generated.render.path)
            views.append(View(item, i, image.sha256, _constant(image), name=generated.render.cameras[i].name))
            refs[item.item_id] = reference.images[i]
        batch = ViewBatch(views, self._ctx, refs)
        per_view: dict[str, np.ndarray] = {}
        for metric in self._metric_set.view_metrics:
            result = metric.compute(batch)
            for i, error in enumerate(result.errors):
                if error is not None:
                    raise ItemError(f"{metric.name} on view {views[i].name}: {error}")
            per_view.update({c: np.asarray(v, dtype=np.float64) for c, v in result.values.items()})
        paths = self._write_views(pair_id, generated, reference)
        rows = []
        for i, cam in enumerate(generated.render.cameras):
            row: dict[str, Any] = {"view": i, "view_name": cam.name, "yaw_deg": cam.yaw_deg,
                                   "pitch_deg": cam.pitch_deg}
            row.update({c: float(v[i]) for c, v in per_view.items()})
            row.update({"generated_blank": generated.blank[i], "reference_blank": reference.blank[i]})
            if paths:
                row.update({"generated_image": paths[0][i], "reference_image": paths[1][i]})
            rows.append(row)
        values: dict[str, Any] = {c: float(np.mean(v)) for c, v in per_view.items()}
        values.update({"appearance_views": n, "appearance_blank_views": int(sum(generated.blank))})
        return values, rows

    def _write_views(self, pair_id: str, generated: _Side, reference: _Side) -> tuple[list[str], list[str]] | None:
        """The compared pixels as PNGs under ``views_dir`` (paths relative to its parent, the run's folder)."""
        if self.views_dir is None:
            return None
        from gencritic.atomic import atomic_write_bytes

        out: list[list[str]] = []
        for side, folder in ((generated, self.views_dir / "generated" / _short(pair_id)),
                             (reference, self.views_dir / "reference" / reference.key[:16])):
            folder.mkdir(parents=True, exist_ok=True)
            names = []
            for cam, image in zip(side.render.cameras, side.images, strict=True):
                file = folder / f"{cam.name}.png"
                if side is generated or not file.exists():  # a reference's views: written once per content
                    atomic_write_bytes(file, _png(image))
                names.append(file.relative_to(self.views_dir.parent).as_posix())
            out.append(names)
        return out[0], out[1]


def _composited(render: AssetRender, key: str) -> _Side:
    """Every view on the settings' background, blank ones included, keyed as the pipeline keys views."""
    from PIL import Image

    from gencritic.io.images import LoadedImage
    from gencritic.render.api import view_sha256
    from gencritic.render.compose import composite

    images, blank = [], []
    for i, view in enumerate(render.views):
        if view.image is not None:
            images.append(view.image)
            blank.append(False)
            continue
        rgb, alpha = composite(render.premultiplied[i], render.settings.background)
        images.append(LoadedImage(Image.fromarray(rgb, "RGB"), view_sha256(key, render.settings, i), alpha))
        blank.append(not bool(np.any(render.premultiplied[i][..., 3])))
    return _Side(render, images, blank, key)


def _names(side: _Side) -> list[str]:
    return [c.name for c in side.render.cameras]


def _constant(image: LoadedImage) -> Callable[[], LoadedImage]:
    return lambda: image


def _short(pair_id: str) -> str:
    """A folder name for any pair id (ids are paths, may hold '/', '#', any bytes)."""
    return hashlib.sha256(pair_id.encode("utf-8", "surrogateescape")).hexdigest()[:16]


def _png(image: LoadedImage) -> bytes:
    import io

    buf = io.BytesIO()
    image.rgb.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()
