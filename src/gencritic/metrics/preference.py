"""Learned human-preference scores: PickScore, HPSv2 and ImageReward.

They answer "which image would people prefer for this prompt", which a plain CLIP score does
not. Each comes through the model layer (:mod:`gencritic.models.preference`,
:mod:`gencritic.models.imagereward`) and is ``optional_weights``: without its checkpoint the
run lists it under ``unavailable_metrics`` with how to provide it, and never writes a number.

* ``pickscore`` = ``logit_scale · cos`` (the authors' readout; ~20-23 for good matches);
* ``hpsv2`` = ``cos`` of the HPS-tuned ViT-H-14 (papers usually report ×100, also given);
* ``imagereward`` = the ImageReward MLP on BLIP's image-grounded [CLS] feature, z-scored with
  the published mean/std.

Weights are found from the metric option ``model=``, then an environment variable, then the
Hugging Face cache (PickScore/HPSv2 hub ids, downloaded when online).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from gencritic.errors import InputError
from gencritic.metrics.alignment import text_image_cosines
from gencritic.metrics.base import Metric, MetricInfo, MetricOptions, MetricResult, prompt_errors
from gencritic.metrics.registry import register
from gencritic.models.defaults import HPSV2_FILES, HPSV2_REPO, PICKSCORE_MODEL, PICKSCORE_PROCESSOR
from gencritic.models.hubfile import resolve_weights

if TYPE_CHECKING:  # the metadata above is read without torch (`gencritic metrics`); models load in setup
    from gencritic.views import RunContext, ViewBatch


def pickscore_from_cosine(cos: np.ndarray, logit_scale: float) -> np.ndarray:
    """PickScore's readout: the CLIP logit, ``logit_scale · cos``."""
    return float(logit_scale) * np.asarray(cos, dtype=np.float64)


class PickScoreOptions(MetricOptions):
    model: str | None = Field(None, description="PickScore model (Hugging Face id or folder); default: "
                                                "$GENCRITIC_PICKSCORE_MODEL, then yuvalkirstain/PickScore_v1")
    processor: str | None = Field(None, description="its CLIP processor; default: $GENCRITIC_PICKSCORE_PROCESSOR, "
                                                    "then laion/CLIP-ViT-H-14-laion2B-s32B-b79K")


class HPSv2Options(MetricOptions):
    model: str | None = Field(None, description="HPSv2 checkpoint file; default: $GENCRITIC_HPSV2_MODEL, then the "
                                                "version's file from xswu/HPSv2 in the Hugging Face cache")
    version: Literal["v2.0", "v2.1"] = Field("v2.1", description="which published HPS release the checkpoint is")
    arch: str = Field("ViT-H-14", description="open_clip architecture of the checkpoint")


class ImageRewardOptions(MetricOptions):
    model: str | None = Field(None, description="ImageReward.pt; default: $GENCRITIC_IMAGEREWARD_MODEL, then "
                                                "THUDM/ImageReward in the Hugging Face cache")
    med_config: str | None = Field(None, description="BLIP med_config.json; default: the file beside the checkpoint, "
                                                     "else the hub's")
    tokenizer: str | None = Field(None, description="bert-base-uncased tokenizer folder or id; default: "
                                                    "$GENCRITIC_IMAGEREWARD_TOKENIZER, then bert-base-uncased")


@register
class PickScore(Metric):
    options_schema = PickScoreOptions
    info = MetricInfo(
        name="pickscore",
        family="preference",
        inputs=("image", "text"),
        columns=("pickscore",),
        range=(-100.0, 100.0),
        higher_is_better=True,
        default_model=PICKSCORE_MODEL,
        description=(
            "PickScore: a CLIP-H fine-tuned on Pick-a-Pic human preferences; score = logit_scale * cos(image, "
            "prompt) (about 20-23 for good matches; compare images of the same prompt). Weights: "
            "pickscore:model=DIR;processor=DIR, $GENCRITIC_PICKSCORE_MODEL / $GENCRITIC_PICKSCORE_PROCESSOR, or "
            "the Hugging Face cache (yuvalkirstain/PickScore_v1 + laion/CLIP-ViT-H-14-laion2B-s32B-b79K)."
        ),
        reference="Kirstain et al., Pick-a-Pic: An Open Dataset of User Preferences for Text-to-Image Generation, "
                  "NeurIPS 2023",
        optional_weights=True,
    )

    def _sources(self) -> tuple[str, str]:
        model = self.options.get("model") or os.environ.get("GENCRITIC_PICKSCORE_MODEL") or PICKSCORE_MODEL
        processor = (self.options.get("processor") or os.environ.get("GENCRITIC_PICKSCORE_PROCESSOR")
                     or PICKSCORE_PROCESSOR)
        return model, processor

    def model_id(self) -> str | None:
        return self._sources()[0]

    def settings(self) -> dict[str, object]:
        return {"processor": self._sources()[1]}

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.preference import load_pickscore

        model, processor = self._sources()
        pool = ctx.pool
        self.backbone = pool.get(("pickscore", f"{model}|{processor}"),
                                 lambda: load_pickscore(model, processor, pool.device, pool.dtype))

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"pickscore": pickscore_from_cosine(cos, self.backbone.logit_scale)}, errors=errors)


@register
class HPSv2(Metric):
    options_schema = HPSv2Options
    info = MetricInfo(
        name="hpsv2",
        family="preference",
        inputs=("image", "text"),
        columns=("hpsv2", "hpsv2_x100"),
        range=(-1.0, 1.0),
        higher_is_better=True,
        default_model=f"{HPSV2_REPO}/{HPSV2_FILES['v2.1']}",
        description=(
            "Human Preference Score v2 / v2.1: cosine of image and prompt embeddings from an open_clip ViT-H-14 "
            "fine-tuned on HPD v2 human choices, with HPSv2's pad-to-square preprocessing; hpsv2_x100 is the "
            "x100 figure papers report (about 25-30 for good images). Weights: hpsv2:model=PATH, "
            "$GENCRITIC_HPSV2_MODEL, or HPS_v2.1_compressed.pt (version=v2.0: HPS_v2_compressed.pt) from "
            "xswu/HPSv2 in the Hugging Face cache."
        ),
        reference="Wu et al., Human Preference Score v2: A Solid Benchmark for Evaluating Human Preferences of "
                  "Text-to-Image Synthesis, 2023 (arXiv:2306.09341)",
        optional_weights=True,
    )

    def __init__(self, options: dict[str, str] | None = None, default_model: str | None = None) -> None:
        super().__init__(options, default_model)
        opts = self.typed_options(HPSv2Options)
        self.version: str = opts.version
        if self.version not in HPSV2_FILES:  # the schema's choices and the known files must agree
            raise InputError(f"hpsv2: version={self.version!r}; use one of {', '.join(HPSV2_FILES)}")
        self.arch = opts.arch

    def model_id(self) -> str | None:
        return getattr(self, "_checkpoint", None) or self.options.get("model") or self.info.default_model

    def settings(self) -> dict[str, object]:
        return {"version": self.version, "arch": self.arch}

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.preference import hpsv2_weights, load_hpsv2

        checkpoint = resolve_weights(hpsv2_weights(self.version), self.options.get("model"))
        pool = ctx.pool
        self.backbone = pool.get(("hpsv2", f"{checkpoint}|{self.arch}"),
                                 lambda: load_hpsv2(checkpoint, self.arch, self.version, pool.device, pool.dtype))
        self._checkpoint = checkpoint

    def compute(self, batch: ViewBatch) -> MetricResult:
        cos, errors = text_image_cosines(batch, self)
        return MetricResult(values={"hpsv2": cos, "hpsv2_x100": 100.0 * cos}, errors=errors)



def _med_config_for(checkpoint: str, given: str | None) -> str:
    """med_config.json: the option, the env var, the file beside the checkpoint, or the hub file."""
    from gencritic.models.imagereward import MED_CONFIG_WEIGHTS

    beside = Path(checkpoint).with_name("med_config.json")
    if not given and not os.environ.get(MED_CONFIG_WEIGHTS.env_var) and beside.exists():
        return str(beside)
    return resolve_weights(MED_CONFIG_WEIGHTS, given)


@register
class ImageReward(Metric):
    options_schema = ImageRewardOptions
    info = MetricInfo(
        name="imagereward",
        family="preference",
        inputs=("image", "text"),
        columns=("imagereward",),
        range=(-5.0, 5.0),
        higher_is_better=True,
        default_model="THUDM/ImageReward/ImageReward.pt",
        description=(
            "ImageReward: a BLIP image-grounded text encoder reads the prompt with cross-attention to the image "
            "and an MLP trained on 137k expert comparisons maps its [CLS] feature to a reward, z-scored with the "
            "published mean/std (0 = average generated image; the range given is practical, the score is not "
            "bounded). Prompts are cut at 35 BERT tokens, as in ImageReward. Weights: imagereward:model=PATH "
            "(med_config.json beside it or med_config=PATH; tokenizer=DIR for bert-base-uncased), "
            "$GENCRITIC_IMAGEREWARD_MODEL, or THUDM/ImageReward in the Hugging Face cache."
        ),
        reference="Xu et al., ImageReward: Learning and Evaluating Human Preferences for Text-to-Image Generation, "
                  "NeurIPS 2023",
        needs_pixels=True,
        optional_weights=True,
    )

    def model_id(self) -> str | None:
        return getattr(self, "_checkpoint", None) or self.options.get("model") or self.info.default_model

    def settings(self) -> dict[str, object]:
        from gencritic.models.imagereward import MAX_TEXT_TOKENS

        return {"med_config": getattr(self, "_med_config", self.options.get("med_config")),
                "tokenizer": self._tokenizer(), "max_text_tokens": MAX_TEXT_TOKENS}

    def _tokenizer(self) -> str:
        return (self.options.get("tokenizer") or os.environ.get("GENCRITIC_IMAGEREWARD_TOKENIZER")
                or "bert-base-uncased")

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.imagereward import IMAGEREWARD_WEIGHTS, load_imagereward

        checkpoint = resolve_weights(IMAGEREWARD_WEIGHTS, self.options.get("model"))
        med_config = _med_config_for(checkpoint, self.options.get("med_config"))
        tokenizer = self._tokenizer()
        pool = ctx.pool
        self.scorer = pool.get(("imagereward", f"{checkpoint}|{med_config}|{tokenizer}"),
                               lambda: load_imagereward(checkpoint, med_config, tokenizer, pool.device, pool.dtype))
        self._checkpoint, self._med_config = checkpoint, med_config

    def compute(self, batch: ViewBatch) -> MetricResult:
        n = len(batch)
        errors = prompt_errors(batch.prompts)
        values = np.full(n, np.nan)
        valid = [i for i, err in enumerate(errors) if err is None]
        if valid:
            rewards = self.scorer.score([batch.views[i].image for i in valid],
                                        [batch.prompts[i] or "" for i in valid])
            values[valid] = rewards.double().numpy()
        return MetricResult(values={"imagereward": values}, errors=errors)
