"""Scores for captions longer than CLIP's 77 tokens.

Ordinary CLIP silently cuts a detailed caption after ~60 words, so everything a long caption
says after that point cannot change its score. Three ways round it:

* ``longclip``: a Long-CLIP checkpoint (Zhang et al., ECCV 2024): the OpenAI CLIP architecture
  with a 248-position text embedding. Loaded by :func:`gencritic.models.loader.load_clip`,
  which folds Long-CLIP's ``positional_embedding``/``positional_embedding_res`` pair into one
  table (see ``fold_long_clip_positions``). Output: cosine, raw and ×100.
* ``specs``: SPECS (Chen et al., 2025), a Long-CLIP-format model fine-tuned for specificity,
  scored as ``clamp((cos + 1) / 2, 0)`` in [0, 1].
* ``clip_chunked``: any ordinary CLIP. A caption that does not fit the context is split into
  sentence chunks that do (consecutive sentences packed greedily, an over-long sentence cut at
  word boundaries); the score is the **mean of the chunk cosines**. Why the mean: each chunk
  carries a share of the description, and the mean rewards an image for matching all of them
  (a max would reward matching any one sentence); it equals the plain CLIP score when the
  caption fits, so short and long captions stay on one scale. ``clip_chunked_min`` (the worst
  chunk) shows a detail the image misses; ``clip_chunked_chunks`` is the chunk count.

Long-CLIP and SPECS weights are rarely present, so both are ``optional_weights``: without a
checkpoint the run reports them unavailable with how to provide one.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from gencritic.errors import InputError
from gencritic.metrics.alignment import text_image_cosines
from gencritic.metrics.base import (
    ClipModelOptions,
    Metric,
    MetricInfo,
    MetricOptions,
    MetricResult,
    prompt_errors,
)
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_CLIP_MODEL
from gencritic.models.hubfile import WeightsSource, resolve_weights

if TYPE_CHECKING:  # the metadata above is read without torch (`gencritic metrics`)
    from gencritic.views import RunContext, ViewBatch

LONGCLIP_PAPER = "Zhang et al., Long-CLIP: Unlocking the Long-Text Capability of CLIP, ECCV 2024"
SPECS_PAPER = ("Chen, Salazar, Kementchedjhieva, SPECS: Specificity-Enhanced CLIP-Score for Long Image Caption "
               "Evaluation, 2025 (arXiv:2509.03897)")

LONGCLIP_WEIGHTS = WeightsSource("Long-CLIP", "GENCRITIC_LONGCLIP_MODEL", "--metrics longclip:model=/path/to/longclip-L.pt",
                                 "BeichenZhang/LongCLIP-L", "longclip-L.pt")
SPECS_WEIGHTS = WeightsSource("SPECS", "GENCRITIC_SPECS_MODEL",
                              "--metrics specs:model=/path/to/specs.pt (from https://huggingface.co/Xiaohud/SPECS)")


def specs_from_cosine(cos: np.ndarray) -> np.ndarray:
    """SPECS' readout: clamp((cos + 1) / 2, 0). NaN (a failed view) stays NaN."""
    return np.maximum((np.asarray(cos, dtype=np.float64) + 1.0) / 2.0, 0.0)


# ---------------------------------------------------------------------------------------------
# chunking (pure)

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n+")


def split_sentences(text: str) -> list[str]:
    """Sentences of a caption: split after . ! ? ; or at line breaks; blanks dropped."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and s.strip()]


def chunk_caption(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    """Split ``text`` into chunks of at most ``max_tokens`` tokens (start/end included).

    A caption that fits is one chunk (itself). Otherwise consecutive sentences are packed
    greedily; a sentence longer than the context is cut at word boundaries; a single word
    longer than the context (very rare) becomes its own chunk and is truncated by the encoder.
    """
    text = text.strip()
    if not text or count_tokens(text) <= max_tokens:
        return [text] if text else []
    pieces: list[str] = []
    for sentence in split_sentences(text):
        if count_tokens(sentence) <= max_tokens:
            pieces.append(sentence)
            continue
        words = sentence.split()
        current: list[str] = []
        for word in words:
            trial = " ".join([*current, word])
            if current and count_tokens(trial) > max_tokens:
                pieces.append(" ".join(current))
                current = [word]
            else:
                current.append(word)
        if current:
            pieces.append(" ".join(current))
    chunks: list[str] = []
    for piece in pieces:
        if chunks and count_tokens(chunks[-1] + " " + piece) <= max_tokens:
            chunks[-1] = chunks[-1] + " " + piece
        else:
            chunks.append(piece)
    return chunks


def aggregate_chunk_cosines(cosines: np.ndarray) -> tuple[float, float]:
    """(mean, min) of one caption's chunk cosines: the documented aggregation."""
    c = np.asarray(cosines, dtype=np.float64)
    return float(c.mean()), float(c.min())


# ---------------------------------------------------------------------------------------------
# metrics


class LongClipOptions(MetricOptions):
    model: str | None = Field(None, description="a Long-CLIP checkpoint (248-token text context); default: "
                                                "$GENCRITIC_LONGCLIP_MODEL, the run's --model when it is a checkpoint "
                                                "file, then longclip-L.pt in the Hugging Face cache")


class SpecsOptions(MetricOptions):
    model: str | None = Field(None, description="the SPECS checkpoint (Long-CLIP format); default: "
                                                "$GENCRITIC_SPECS_MODEL, or the run's --model when it is a checkpoint file")


class _LongClipBase(Metric):
    """A Long-CLIP-format backbone, found via option, env var or hub cache; never the run's 77-token model."""

    weights: WeightsSource

    def _given(self) -> str | None:
        """The option, then the env var, then the run's --model when it is a checkpoint file (so
        ``--model longclip-L.pt --metrics longclip`` works); else None (the hub file is tried)."""
        run_model = self.default_model
        run_file = run_model if run_model and Path(run_model).expanduser().is_file() else None
        return self.options.get("model") or os.environ.get(self.weights.env_var) or run_file

    def model_id(self) -> str | None:
        return getattr(self, "_resolved", None) or self.options.get("model") or self.info.default_model

    def settings(self) -> dict[str, object]:
        return {}

    def setup(self, ctx: RunContext) -> None:
        spec = resolve_weights(self.weights, self._given())
        backbone = ctx.clip(spec)
        if backbone.context_length <= 77:
            raise InputError(f"{self.name}: model '{spec}' has a {backbone.context_length}-token text context; "
                             f"{self.name} needs a Long-CLIP-format checkpoint (248 tokens), e.g. longclip-L.pt")
        self._resolved = spec
        self.backbone = backbone


@register
class LongClipScore(_LongClipBase):
    weights = LONGCLIP_WEIGHTS
    options_schema = LongClipOptions
    info = MetricInfo(
        name="longclip",
        family="longcaption",
        inputs=("image", "text"),
        columns=("longclip_score", "longclip_score_x100"),
        range=(-1.0, 1.0),
        higher_is_better=True,
        default_model="BeichenZhang/LongCLIP-L/longclip-L.pt",
        description=(
            "CLIP score with a Long-CLIP checkpoint, whose text encoder reads 248 tokens instead of 77, so "
            "details late in a long caption count. Cosine of L2-normalised embeddings, raw and x100. Weights: "
            "longclip:model=PATH, $GENCRITIC_LONGCLIP_MODEL, or longclip-L.pt in the Hugging Face cache."
        ),
        reference=LONGCLIP_PAPER,
        optional_weights=True,
    )

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"longclip_score": cos, "longclip_score_x100": 100.0 * cos}, errors=errors)


@register
class SpecsScore(_LongClipBase):
    weights = SPECS_WEIGHTS
    options_schema = SpecsOptions
    info = MetricInfo(
        name="specs",
        family="longcaption",
        inputs=("image", "text"),
        columns=("specs",),
        range=(0.0, 1.0),
        higher_is_better=True,
        default_model=None,
        description=(
            "SPECS: clamp((cos+1)/2, 0) of image and caption embeddings from the SPECS model, a Long-CLIP-format "
            "(248-token) CLIP fine-tuned to reward correct and penalise wrong details in long captions. Weights: "
            "specs:model=PATH or $GENCRITIC_SPECS_MODEL (checkpoint from huggingface.co/Xiaohud/SPECS)."
        ),
        reference=SPECS_PAPER,
        optional_weights=True,
    )

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"specs": specs_from_cosine(cos)}, errors=errors)


@register
class ClipChunked(Metric):
    options_schema = ClipModelOptions
    info = MetricInfo(
        name="clip_chunked",
        family="longcaption",
        inputs=("image", "text"),
        columns=("clip_chunked", "clip_chunked_min", "clip_chunked_chunks"),
        range=(-1.0, 1.0),
        higher_is_better=True,
        default_model=DEFAULT_CLIP_MODEL,
        description=(
            "CLIP score for captions longer than the model's context (77 tokens): the caption is split into "
            "sentence chunks that fit (sentences packed greedily, over-long sentences cut at word boundaries) "
            "and clip_chunked is the mean of the chunk cosines, equal to the plain CLIP cosine when the caption "
            "fits. clip_chunked_min is the worst chunk, clip_chunked_chunks the number of chunks."
        ),
        reference="Radford et al., ICML 2021 (CLIP); chunk-and-average as in Long-CLIP's baselines, "
                  "Zhang et al., ECCV 2024",
    )

    def setup(self, ctx: RunContext) -> None:
        self.backbone = self.clip_backbone(ctx)
        self._chunks: dict[str, list[str]] = {}

    def chunks_for(self, text: str) -> list[str]:
        if text not in self._chunks:
            bb = self.backbone
            self._chunks[text] = chunk_caption(text, bb.count_tokens, bb.context_length)
        return self._chunks[text]

    def compute(self, batch: ViewBatch) -> MetricResult:
        n = len(batch)
        errors = prompt_errors(batch.prompts)
        mean = np.full(n, np.nan)
        low = np.full(n, np.nan)
        count = np.full(n, np.nan)
        valid = [i for i in range(n) if errors[i] is None]
        if valid:
            per_view = {i: self.chunks_for(batch.prompts[i] or "") for i in valid}
            texts = list(dict.fromkeys(c for i in valid for c in per_view[i]))
            txt = batch.text_embeddings(self.backbone, texts).double().numpy()
            row = {t: j for j, t in enumerate(texts)}
            img = batch.image_embeddings(self.backbone).double().numpy()
            for i in valid:
                cos = txt[[row[c] for c in per_view[i]]] @ img[i]
                mean[i], low[i] = aggregate_chunk_cosines(cos)
                count[i] = len(per_view[i])
        return MetricResult(values={"clip_chunked": mean, "clip_chunked_min": low, "clip_chunked_chunks": count},
                            errors=errors)
