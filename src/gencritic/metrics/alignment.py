"""Text-image alignment with CLIP: the score papers report, and its named variants.

All variants come from one number, the cosine of L2-normalised image and text embeddings:

* ``clip``: ``clip_score`` = cos (raw, e.g. 0.1929) and ``clip_score_x100`` = 100·cos (19.29),
  the convention of TRELLIS and most text-to-3D papers (mean over views for 3D assets);
* ``clip_torchmetrics``: 100·max(cos, 0), what ``torchmetrics.multimodal.CLIPScore`` returns;
* ``clipscore_hessel``: 2.5·max(cos, 0), CLIPScore of Hessel et al. (EMNLP 2021).

Because all three come from the same embeddings, asking for several costs one encode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from gencritic.metrics.base import ClipModelOptions, Metric, MetricInfo, MetricResult, prompt_errors
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_CLIP_MODEL

if TYPE_CHECKING:  # the metadata above is read without torch (`gencritic metrics`)
    from gencritic.views import RunContext, ViewBatch

PAPER = "Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021"


def text_image_cosines(batch: ViewBatch, metric: Metric) -> tuple[np.ndarray, list[str | None]]:
    """Cosine per view between its image and its item's prompt; missing/empty prompts fail the view."""
    backbone = metric.backbone  # type: ignore[attr-defined]
    errors = prompt_errors(batch.prompts)
    valid = [i for i, err in enumerate(errors) if err is None]
    texts = [batch.prompts[i] or "" for i in valid]
    cos = np.full(len(batch), np.nan)
    if valid:
        img = batch.image_embeddings(backbone)
        txt = batch.text_embeddings(backbone, texts)
        cos[valid] = (img[valid] * txt).sum(-1).double().numpy()
    return cos, errors


class _ClipBase(Metric):
    options_schema = ClipModelOptions

    def setup(self, ctx: RunContext) -> None:
        self.backbone = self.clip_backbone(ctx)


@register
class ClipScore(_ClipBase):
    info = MetricInfo(
        name="clip",
        family="alignment",
        inputs=("image", "text"),
        columns=("clip_score", "clip_score_x100"),
        range=(-1.0, 1.0),
        higher_is_better=True,
        default_model=DEFAULT_CLIP_MODEL,
        description=(
            "Cosine similarity of L2-normalised CLIP image and text embeddings, raw (clip_score) and "
            "x100 (clip_score_x100, the paper convention). For 3D assets, the mean over rendered views."
        ),
        reference=PAPER,
    )

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"clip_score": cos, "clip_score_x100": 100.0 * cos}, errors=errors)


@register
class ClipScoreTorchmetrics(_ClipBase):
    info = MetricInfo(
        name="clip_torchmetrics",
        family="alignment",
        inputs=("image", "text"),
        columns=("clip_torchmetrics",),
        range=(0.0, 100.0),
        higher_is_better=True,
        default_model=DEFAULT_CLIP_MODEL,
        description="100 * max(cos, 0): the value torchmetrics' CLIPScore returns, for comparison with it.",
        reference="torchmetrics.multimodal.CLIPScore; " + PAPER,
    )

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"clip_torchmetrics": 100.0 * np.maximum(cos, 0.0)}, errors=errors)


@register
class ClipScoreHessel(_ClipBase):
    info = MetricInfo(
        name="clipscore_hessel",
        family="alignment",
        inputs=("image", "text"),
        columns=("clipscore_hessel",),
        range=(0.0, 2.5),
        higher_is_better=True,
        default_model=DEFAULT_CLIP_MODEL,
        description="2.5 * max(cos, 0): the reference-free CLIPScore of Hessel et al.",
        reference="Hessel et al., CLIPScore: A Reference-free Evaluation Metric for Image Captioning, EMNLP 2021",
    )

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"clipscore_hessel": 2.5 * np.maximum(cos, 0.0)}, errors=errors)
