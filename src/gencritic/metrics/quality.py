"""No-reference quality: LAION aesthetic heads, CLIP-IQA, NIQE and BRISQUE.

None of these needs a reference image. ``aesthetic`` and ``clip_iqa`` run on CLIP embeddings and
share the run's embedding cache; ``niqe`` and ``brisque`` are classical natural-scene-statistics
models computed on decoded pixels (gray, 0-255) exactly as their MATLAB releases do. None of
them honours alpha: they judge the image as composited on the run's background (a large flat
background lowers NIQE/BRISQUE reliability; crop or use another background if that matters).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.metrics.base import ClipModelOptions, Metric, MetricInfo, MetricOptions, MetricResult
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_CLIP_MODEL

if TYPE_CHECKING:  # the metadata below is read without torch (`gencritic metrics`)
    import torch

    from gencritic.views import RunContext, ViewBatch

AESTHETIC_DEFAULT_MODEL = "openai/clip-vit-large-patch14"
DEFAULT_IQA_PAIRS: tuple[tuple[str, str], ...] = (("Good photo.", "Bad photo."),)


class AestheticOptions(MetricOptions):
    head: str | None = Field(None, description="LAION head file (v1 sa_0_4_vit_*_linear.pth or v2 "
                                               "sac+logos+ava1-l14-linearMSE.pth); default: $GENCRITIC_AESTHETIC_HEAD")
    model: str | None = Field(None, description="the CLIP the head was trained on; default: decided by the head "
                                                "(768-d: ViT-L/14; 512-d: ViT-B/32 or B/16 as its file name says), "
                                                "never the run's --model")


class ClipIqaOptions(ClipModelOptions):
    pairs: str | None = Field(None, description="antonym prompt pairs 'pos|neg', joined by '+'; default: "
                                                "Good photo.|Bad photo.")


class NiqeOptions(MetricOptions):
    model: str | None = Field(None, description=".npz/.mat with mu_pris_param and cov_pris_param; default: the "
                                                "bundled LIVE pristine model")


class BrisqueOptions(MetricOptions):
    model: str | None = Field(None, description="LIVE SVR (libsvm text model, 'allmodel'); default: "
                                                "$GENCRITIC_BRISQUE_MODEL")
    range: str | None = Field(None, description="its svm-scale range file ('allrange'); default: "
                                                "$GENCRITIC_BRISQUE_RANGE")


@register
class Aesthetic(Metric):
    options_schema = AestheticOptions
    info = MetricInfo(
        name="aesthetic", family="quality", inputs=("image",), columns=("aesthetic",),
        range=(float("-inf"), float("inf")), higher_is_better=True, default_model=AESTHETIC_DEFAULT_MODEL,
        optional_weights=True,
        description=("LAION aesthetic predictor: a regression head (v1 linear, or the improved v2 MLP "
                     "sac+logos+ava1-l14-linearMSE) on the L2-normalised CLIP image embedding of the model it was "
                     "trained on; about 1-10 on real images. head=PATH or $GENCRITIC_AESTHETIC_HEAD; "
                     "model= the matching CLIP (default: the head decides, 768-d -> OpenAI ViT-L/14, 512-d -> "
                     "ViT-B/32 or B/16 as its file name says; never the run's --model). A head whose input "
                     "size differs from the model's embedding size is refused."),
        reference="Schuhmann et al., LAION-5B, NeurIPS 2022 Datasets and Benchmarks (LAION-Aesthetics predictor); "
                  "github.com/christophschuhmann/improved-aesthetic-predictor",
    )

    def model_id(self) -> str | None:
        """After setup, the backbone the head decided (or the one model= named)."""
        return getattr(self, "_model", None) or self.options.get("model") or AESTHETIC_DEFAULT_MODEL

    def settings(self) -> dict[str, Any]:
        return {"head": Path(self.head_path).name if getattr(self, "head_path", None) else self.options.get("head")}

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.aesthetic_heads import backbone_for_head, load_head, resolve_head_path

        path = resolve_head_path(self.options.get("head"))
        self.head_path = str(path)
        self.head = ctx.pool.get(("aesthetic_head", str(path.resolve())), lambda: load_head(path))
        model = self._model = backbone_for_head(self.head, self.options.get("model"))
        self.backbone = ctx.clip(model)
        dim = self.backbone.embedding_dim
        if dim is not None:
            self.head.check_dim(dim, model)

    def compute(self, batch: ViewBatch) -> MetricResult:
        emb = batch.image_embeddings(self.backbone)
        if emb.shape[-1] != self.head.in_dim:
            self.head.check_dim(int(emb.shape[-1]), self.backbone.model_id)
        return MetricResult.from_columns(len(batch), aesthetic=self.head(emb).numpy())


def parse_pairs(text: str | None) -> tuple[tuple[str, str], ...]:
    """``"Good photo.|Bad photo.+Sharp photo.|Blurry photo."`` -> ((pos, neg), ...)."""
    if not text:
        return DEFAULT_IQA_PAIRS
    pairs = []
    for chunk in text.split("+"):
        pos, sep, neg = chunk.partition("|")
        if not sep or not pos.strip() or not neg.strip() or "|" in neg:
            raise InputError(f"clip_iqa: pair {chunk!r} should be 'positive text|negative text' "
                             "(pairs separated by '+', e.g. pairs=Good photo.|Bad photo.+Sharp photo.|Blurry photo.)")
        pairs.append((pos.strip(), neg.strip()))
    return tuple(pairs)


def clip_iqa_scores(img: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """Mean over pairs of softmax(scale * [cos(img, pos), cos(img, neg)])[pos]; inputs are unit vectors.

    img (N, D), pos/neg (P, D) -> (N,). The two-way softmax equals sigmoid(scale * (cos_pos - cos_neg)).
    """
    import torch

    logits = torch.stack([img.double() @ pos.double().T, img.double() @ neg.double().T], dim=-1) * logit_scale
    return torch.softmax(logits, dim=-1)[..., 0].mean(dim=-1)


@register
class ClipIQA(Metric):
    options_schema = ClipIqaOptions
    info = MetricInfo(
        name="clip_iqa", family="quality", inputs=("image",), columns=("clip_iqa",), range=(0.0, 1.0),
        higher_is_better=True, default_model=DEFAULT_CLIP_MODEL,
        description=("CLIP-IQA: probability of the positive prompt in softmax(logit_scale * cos) over antonym "
                     "pairs, averaged over pairs; default pair 'Good photo.'/'Bad photo.', extend with "
                     "pairs=pos|neg+pos|neg. Uses the run's CLIP backbone and its learned logit scale (100 for "
                     "OpenAI CLIP); the paper's RN50 without positional embedding is not reproduced."),
        reference="Wang, Chan, Loy, Exploring CLIP for Assessing the Look and Feel of Images, AAAI 2023",
    )

    def settings(self) -> dict[str, Any]:
        return {"pairs": [list(p) for p in self.pairs]} if hasattr(self, "pairs") else dict(self.options)

    def setup(self, ctx: RunContext) -> None:
        self.pairs = parse_pairs(self.options.get("pairs"))
        self.backbone = self.clip_backbone(ctx)

    def compute(self, batch: ViewBatch) -> MetricResult:
        img = batch.image_embeddings(self.backbone)
        pos = batch.text_embeddings(self.backbone, [p for p, _ in self.pairs])
        neg = batch.text_embeddings(self.backbone, [n for _, n in self.pairs])
        scores = clip_iqa_scores(img, pos, neg, self.backbone.logit_scale)
        return MetricResult.from_columns(len(batch), clip_iqa=scores.numpy())


def _pixel_scores(batch: ViewBatch, column: str, fn: Callable[[np.ndarray], float]) -> MetricResult:
    """Score each view's 8-bit RGB pixels; a ValueError (too small, flat image) fails that view."""
    values = np.full(len(batch), np.nan)
    errors: list[str | None] = [None] * len(batch)
    for i, view in enumerate(batch.views):
        try:
            values[i] = fn(np.asarray(view.image.convert("RGB"), dtype=np.uint8))
        except ValueError as exc:
            errors[i] = str(exc)
    return MetricResult(values={column: values}, errors=errors)


@register
class NIQE(Metric):
    options_schema = NiqeOptions
    info = MetricInfo(
        name="niqe", family="quality", inputs=("image",), columns=("niqe",), range=(0.0, float("inf")),
        higher_is_better=False, default_model="niqe-live-pristine", needs_pixels=True,
        description=("Natural Image Quality Evaluator: distance between a multivariate Gaussian of 96x96-patch NSS "
                     "features (two scales) and the published LIVE pristine model (bundled from BasicSR, "
                     "Apache-2.0), computed like the MATLAB release (gray 0-255, MATLAB imresize). model=PATH "
                     "takes another .npz/.mat with mu_pris_param/cov_pris_param. Images must be at least 96x96."),
        reference="Mittal, Soundararajan, Bovik, Making a 'Completely Blind' Image Quality Analyzer, IEEE SPL 2013",
    )

    def model_id(self) -> str | None:
        return self.options.get("model") or self.info.default_model

    def setup(self, ctx: RunContext) -> None:
        from gencritic.metrics._iqa.niqe import load_niqe_model

        path = self.options.get("model")
        if path and not Path(path).is_file():
            raise ModelUnavailableError(f"niqe: model file not found: {path}")
        try:
            self.model = ctx.pool.get(("niqe", path or "bundled"), lambda: load_niqe_model(path))
        except (OSError, KeyError, ValueError) as exc:
            raise ModelUnavailableError(f"niqe: cannot read pristine model {path or 'bundled'}: {exc}") from None

    def compute(self, batch: ViewBatch) -> MetricResult:
        from gencritic.metrics._iqa.niqe import niqe

        return _pixel_scores(batch, "niqe", lambda rgb: niqe(rgb, self.model))


BRISQUE_MODEL_ENV = "GENCRITIC_BRISQUE_MODEL"
BRISQUE_RANGE_ENV = "GENCRITIC_BRISQUE_RANGE"


@register
class BRISQUE(Metric):
    options_schema = BrisqueOptions
    info = MetricInfo(
        name="brisque", family="quality", inputs=("image",), columns=("brisque",), range=(float("-inf"), float("inf")),
        higher_is_better=False, default_model="brisque-live-allmodel", needs_pixels=True, optional_weights=True,
        description=("Blind/Referenceless Image Spatial Quality Evaluator: 36 NSS features (two scales) scored by "
                     "the published LIVE epsilon-SVR (about 0 pristine .. 100 distorted). The SVR is not bundled: "
                     "model=allmodel;range=allrange (libsvm text model and svm-scale range file from the LIVE "
                     "release) or $GENCRITIC_BRISQUE_MODEL / $GENCRITIC_BRISQUE_RANGE; unavailable otherwise."),
        reference="Mittal, Moorthy, Bovik, No-Reference Image Quality Assessment in the Spatial Domain, IEEE TIP 2012",
    )

    def model_id(self) -> str | None:
        return self.options.get("model") or os.environ.get(BRISQUE_MODEL_ENV) or self.info.default_model

    def setup(self, ctx: RunContext) -> None:
        from gencritic.metrics._iqa.brisque import load_brisque_model

        model = self.options.get("model") or os.environ.get(BRISQUE_MODEL_ENV)
        rng = self.options.get("range") or os.environ.get(BRISQUE_RANGE_ENV)
        if not model or not rng:
            raise ModelUnavailableError(
                "brisque needs the LIVE SVR model and its feature range file (not bundled): pass "
                "brisque:model=/path/allmodel;range=/path/allrange or set GENCRITIC_BRISQUE_MODEL and "
                "GENCRITIC_BRISQUE_RANGE (both files are in the BRISQUE release of LIVE, UT Austin)")
        for p in (model, rng):
            if not Path(p).is_file():
                raise ModelUnavailableError(f"brisque: file not found: {p}")
        try:
            self.svr, self.scaling = ctx.pool.get(("brisque", f"{model}|{rng}"),
                                                  lambda: load_brisque_model(Path(model), Path(rng)))
        except (OSError, KeyError, ValueError, IndexError) as exc:
            raise ModelUnavailableError(f"brisque: cannot read model {model} / range {rng}: {exc}") from None

    def compute(self, batch: ViewBatch) -> MetricResult:
        from gencritic.metrics._iqa.brisque import brisque

        return _pixel_scores(batch, "brisque", lambda rgb: brisque(rgb, self.svr, self.scaling))
