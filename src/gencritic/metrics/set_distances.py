"""Fréchet and kernel distances of the run's views to a reference set: fd_incep, kd_incep,
fd_dinov2, kd_dinov2 (the distribution columns of TRELLIS' Toys4k table).

A set metric (:class:`~gencritic.metrics.base.SetMetric`): every view the run scores gives a
feature row; once the run is complete the rows are compared with those of the reference set's
views. The maths is :func:`gencritic.metrics.sets.fid` and :func:`~gencritic.metrics.sets.kid`
(the formulas clean-fid, torchmetrics and dgm-eval use; tests/test_set_distances.py checks them
on identical features); the feature extractors and their preprocessing are in
:mod:`gencritic.models.inception` (clean-fid's protocol) and :mod:`gencritic.models.dino_features`
(dgm-eval's).

The reference set, ``ref=PATH``, is anything ``gencritic score`` reads: a folder of images, of
meshes or of view folders, or a manifest. Meshes are drawn with the run's own render settings
(same rig, renderer, lighting, background), so generated and reference views differ only in the
asset; renders and features are cached by content like any view's. ``ref`` is listed when the
metric is created, so a missing folder, an unreadable entry or a set of fewer than two items is
one line before any work. A reference item that cannot be drawn makes the metric's value an
error naming it (the set is never silently smaller).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from pydantic import Field

from gencritic.errors import InputError, ItemError
from gencritic.metrics.base import MetricInfo, MetricOptions, SetMetric
from gencritic.metrics.registry import register
from gencritic.metrics.sets import fid, kid

if TYPE_CHECKING:
    from gencritic.cache import EmbeddingCache
    from gencritic.items import Item
    from gencritic.views import RunContext, View, ViewBatch

INCEPTION_DEFAULT = "inception-2015-12-05"  # models.inception.DEFAULT_INCEPTION, without importing torch here
DINOV2_DEFAULT = "facebook/dinov2-large"  # models.dino_features.DGM_EVAL_DINOV2
REFERENCE_WORKERS = 2  # reference items drawn at once (rendering is the slow part)

REF_HELP = ("the reference set: a folder of images, meshes or view folders, or a manifest (what `gencritic score` "
            "reads); meshes are rendered with the run's render settings")
TRELLIS_PAPER = "Xiang et al., Structured 3D Latents (TRELLIS), CVPR 2025, Toys4k table"


class ReferenceSetOptions(MetricOptions):
    ref: str = Field(..., description=REF_HELP)


class InceptionSetOptions(ReferenceSetOptions):
    model: str | None = Field(None, description="Inception weights: pt_inception-2015-12-05-6726825d.pth (pytorch-fid) "
                                                "or inception-2015-12-05.pt (clean-fid's TorchScript); default: "
                                                "$GENCRITIC_INCEPTION_WEIGHTS, then torch's and clean-fid's caches")


class DinoSetOptions(ReferenceSetOptions):
    model: str | None = Field(None, description=f"DINOv2 (Hugging Face id or save_pretrained folder); default "
                                                f"{DINOV2_DEFAULT} (ViT-L/14, as dgm-eval), never the run's --model")


class KernelOptions(MetricOptions):
    subsets: int = Field(100, ge=1, description="random subsets the MMD is averaged over (clean-fid: 100)")
    subset_size: int = Field(1000, ge=2, description="views per subset, capped at the smaller set (clean-fid: 1000)")
    seed: int = Field(0, description="seed of the subset draws")


class InceptionKernelOptions(InceptionSetOptions, KernelOptions):
    pass


class DinoKernelOptions(DinoSetOptions, KernelOptions):
    pass


def reference_items(ref: str) -> list[Item]:
    """The reference set's items, checked: one InputError line when it cannot be used."""
    from gencritic.io.manifest import collect_items

    path = Path(ref).expanduser()
    try:
        items = collect_items(path)
    except InputError as exc:
        raise InputError(f"ref={ref}: {exc}") from None
    bad = [i for i in items if i.error is not None]
    if bad:
        raise InputError(f"ref={ref}: {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} cannot be read "
                         f"({bad[0].item_id}: {bad[0].error}); fix or remove them")
    if len(items) < 2:
        raise InputError(f"ref={ref} holds {len(items)} item(s); a reference set needs at least 2")
    return items


class ReferenceSetMetric(SetMetric):
    """A distance between the run's views and the reference set's, on one feature extractor."""

    extractor_kind: ClassVar[str]  # the ModelPool key's kind: extractors are shared by fd_* and kd_*

    def __init__(self, options: dict[str, str] | None = None, default_model: str | None = None) -> None:
        super().__init__(options, default_model)
        self.ref = str(self.opts.ref)  # type: ignore[attr-defined]
        self.ref_items = reference_items(self.ref)  # listed now: a bad reference stops the run before any work

    def model_id(self) -> str | None:
        return self.options.get("model") or self.info.default_model  # never the run's CLIP --model

    def load_extractor(self, spec: str, device: str) -> Any:
        raise NotImplementedError

    def setup(self, ctx: RunContext) -> None:
        spec = self.model_id() or ""
        self.ctx = ctx
        self.extractor = ctx.pool.get((self.extractor_kind, spec), lambda: self.load_extractor(spec, ctx.pool.device))

    def features(self, batch: ViewBatch) -> np.ndarray:
        return self.encode(batch.views, batch.ctx.cache)

    def encode(self, views: Sequence[View], cache: EmbeddingCache) -> np.ndarray:
        """(len(views), D) features, from the cache by each view's content hash where present
        (pixels are decoded only for the others)."""
        from gencritic.views import encode_images_cached

        ext = self.extractor
        return encode_images_cached(ext, cache, [v.sha256 for v in views],
                                    lambda i: ext.preprocess(views[i].image)).numpy()

    def reference_features(self) -> np.ndarray:
        """(M, D) features of every view of the reference set, computed once per extractor,
        reference and render settings (fd_* and kd_* of one extractor share them)."""
        from gencritic.hashing import describe_settings

        ctx = self.ctx
        render = ctx.render.model_dump(mode="json") if ctx.render is not None else None
        key = describe_settings({"ref": str(Path(self.ref).expanduser().resolve()), "render": render,
                                 "background": list(ctx.background)})
        memo: dict[str, np.ndarray] = self.extractor.reference_memo
        if key not in memo:
            memo[key] = self._compute_reference_features()
        return memo[key]

    def _compute_reference_features(self) -> np.ndarray:
        from gencritic.prepare import PreparedItem, prepare_item

        ctx = self.ctx

        def prepare(item: Item) -> PreparedItem:
            try:
                return prepare_item(item, ctx.background, ctx.render, decode=False)
            except Exception as exc:  # a renderer crash fails this reference item by name
                return PreparedItem(item, error=f"{type(exc).__name__}: {exc}".replace("\n", " "))

        rows: list[np.ndarray] = []
        failed: list[tuple[str, str]] = []
        with ThreadPoolExecutor(REFERENCE_WORKERS) as pool:
            for prepared in pool.map(prepare, self.ref_items):
                if prepared.error is not None or not prepared.views:
                    failed.append((prepared.item.item_id, prepared.error or "no views"))
                    continue
                try:
                    rows.append(self.encode(prepared.views, ctx.cache))
                except ItemError as exc:
                    failed.append((prepared.item.item_id, str(exc)))
        if failed:
            raise ValueError(f"reference set {self.ref}: {len(failed)} of {len(self.ref_items)} item(s) could not be "
                             f"drawn ({failed[0][0]}: {failed[0][1]}); fix or remove them")
        return np.concatenate(rows).astype(np.float64)


class _InceptionExtractor:
    extractor_kind = "inception-fid"

    def load_extractor(self, spec: str, device: str) -> Any:
        from gencritic.models.inception import load_inception

        return load_inception(spec, device)


class _DinoExtractor:
    extractor_kind = "dinov2-features"

    def load_extractor(self, spec: str, device: str) -> Any:
        from gencritic.models.dino_features import load_dino_features

        return load_dino_features(spec, device)


def _fd_info(name: str, extractor: str, default_model: str, reference: str) -> MetricInfo:
    return MetricInfo(
        name=name, family="set_distances", inputs=("image", "set"), columns=(name,), range=(0.0, float("inf")),
        higher_is_better=False, default_model=default_model, optional_weights=True, kind="set",
        description=(f"Fréchet distance between Gaussians fitted to the {extractor} features of the run's views and "
                     "of the reference set's (ref=): |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a S_b)^1/2). Biased for "
                     "small sets: compare runs of equal size. One value per run, in summary.json."),
        reference=reference)


def _kd_info(name: str, extractor: str, default_model: str, reference: str) -> MetricInfo:
    return MetricInfo(
        name=name, family="set_distances", inputs=("image", "set"), columns=(name, f"{name}_std"),
        range=(-float("inf"), float("inf")), higher_is_better=False, default_model=default_model,
        optional_weights=True, kind="set",
        description=(f"Kernel distance (KID): unbiased MMD^2 between the {extractor} features of the run's views and "
                     "the reference set's (ref=), polynomial kernel (x.y/d + 1)^3, mean (and std) over seeded random "
                     "subsets. Not scaled (papers often print x100 or x1000). Can be slightly negative for close sets."),
        reference=reference)


INCEPTION_REF = ("Heusel et al., NeurIPS 2017 (FID); Binkowski et al., ICLR 2018 (KID); features and resize by "
                 f"clean-fid (Parmar et al., CVPR 2022); {TRELLIS_PAPER}")
DINO_REF = ("Stein et al., Exposing flaws of generative model evaluation metrics (dgm-eval), NeurIPS 2023; "
            f"Oquab et al., DINOv2, TMLR 2024; {TRELLIS_PAPER}")


@register
class FdIncep(_InceptionExtractor, ReferenceSetMetric):
    options_schema = InceptionSetOptions
    info = _fd_info("fd_incep", "Inception-v3 pool3 (clean-fid's resize)", INCEPTION_DEFAULT, INCEPTION_REF)

    def compute_set(self, features: np.ndarray) -> dict[str, float]:
        return {"fd_incep": fid(features, self.reference_features())}


@register
class KdIncep(_InceptionExtractor, ReferenceSetMetric):
    options_schema = InceptionKernelOptions
    info = _kd_info("kd_incep", "Inception-v3 pool3 (clean-fid's resize)", INCEPTION_DEFAULT, INCEPTION_REF)

    def compute_set(self, features: np.ndarray) -> dict[str, float]:
        o = self.typed_options(InceptionKernelOptions)
        mean, std = kid(features, self.reference_features(), o.subsets, o.subset_size, o.seed)
        return {"kd_incep": mean, "kd_incep_std": std}


@register
class FdDinov2(_DinoExtractor, ReferenceSetMetric):
    options_schema = DinoSetOptions
    info = _fd_info("fd_dinov2", "DINOv2 CLS (dgm-eval's protocol)", DINOV2_DEFAULT, DINO_REF)

    def compute_set(self, features: np.ndarray) -> dict[str, float]:
        return {"fd_dinov2": fid(features, self.reference_features())}


@register
class KdDinov2(_DinoExtractor, ReferenceSetMetric):
    options_schema = DinoKernelOptions
    info = _kd_info("kd_dinov2", "DINOv2 CLS (dgm-eval's protocol)", DINOV2_DEFAULT, DINO_REF)

    def compute_set(self, features: np.ndarray) -> dict[str, float]:
        o = self.typed_options(DinoKernelOptions)
        mean, std = kid(features, self.reference_features(), o.subsets, o.subset_size, o.seed)
        return {"kd_dinov2": mean, "kd_dinov2_std": std}
