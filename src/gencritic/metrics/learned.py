"""Metric family `learned`: a head trained by ``gencritic train``, used like any other metric.

``--metrics learned:/path/to/head`` loads ``card.json`` + ``head.safetensors``. The head's
card names the backbone it was trained on, and that backbone (not the run's ``--model``) is
loaded through the shared pool, so the features are the ones the head learned from; image
and text embeddings come from the same cached path as every CLIP metric. If the head also
used other metrics' scores, those metrics are set up and computed here too.

Columns are ``<name>_<task>`` (name from the card, default ``learned``), one per task,
on the rating scale of the training data.
"""

from __future__ import annotations

import dataclasses
import math
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from gencritic.errors import InputError
from gencritic.metrics.base import Metric, MetricInfo, MetricOptions, MetricResult, parse_options
from gencritic.metrics.registry import register

if TYPE_CHECKING:  # the metadata above is read without torch (`gencritic metrics`)
    from gencritic.views import RunContext, ViewBatch


def _read_card(path: Path) -> dict[str, Any]:
    from gencritic.models.assessment_heads import load_head

    return load_head(path)[1]


class LearnedOptions(MetricOptions):
    head: str | None = Field(None, description="the head folder made by `gencritic train` (card.json + "
                                               "head.safetensors); also given positionally: learned:/path/to/head")


_KEY_VALUE = re.compile(r"^\s*[A-Za-z_]\w*\s*=")


@register
class LearnedMetric(Metric):
    options_schema = LearnedOptions
    info = MetricInfo(
        name="learned",
        family="learned",
        inputs=("image", "text"),
        columns=("learned",),
        range=(-math.inf, math.inf),
        higher_is_better=True,
        default_model=None,
        description=("An assessment head trained with `gencritic train` on frozen backbone features (linear, MLP or "
                     "multi-task metric transformer); use as learned:/path/to/head. One column per rated task."),
        reference="gencritic train; metric transformer after AAPMT (Xu et al., 2024)",
    )

    @classmethod
    def from_spec(cls, arg: str, default_model: str | None) -> LearnedMetric:
        """``learned:/path/to/head`` (or ``learned:head=/path``) → an instance whose columns are the
        head's tasks. Text that reads as ``key=value`` and is not an existing path is taken as
        options, so ``learned:haed=/x`` is refused by name instead of looked for as a folder."""
        if _KEY_VALUE.match(arg) and not Path(arg.strip()).expanduser().exists():
            try:
                options = parse_options(arg)
            except ValueError as exc:
                raise InputError(f"metric 'learned:{arg}': {exc}") from None
            arg = cls(options, default_model).options.get("head") or ""  # validates the keys
        if not arg.strip():
            raise InputError("metric 'learned' needs a head folder: --metrics learned:/path/to/head "
                             "(made by `gencritic train DATASET --out /path/to/head`)")
        path = Path(arg.strip()).expanduser()
        card = _read_card(path)
        name = str(card.get("name") or "learned")
        inputs = ("image", "text") if card.get("features") in ("image+text", "imagereward-fusion") else ("image",)
        info = dataclasses.replace(
            cls.info, columns=tuple(f"{name}_{t}" for t in card["tasks"]), inputs=inputs,
            default_model=card["backbone"],
            description=f"{cls.info.description} Head '{name}' for {', '.join(card['tasks'])} on {card['backbone']}.")
        sub = type(f"LearnedMetric_{name}", (cls,), {"info": info})
        metric: LearnedMetric = sub({"head": str(path)}, default_model)
        metric.card = card
        return metric

    def __init__(self, options: dict[str, str] | None = None, default_model: str | None = None) -> None:
        super().__init__(options, default_model)
        self.card: dict[str, Any] = {}
        self.sub_metrics: list[Metric] = []

    def model_id(self) -> str | None:
        return str(self.card["backbone"]) if self.card else None

    def settings(self) -> dict[str, Any]:
        return {"head": self.options.get("head"), "weights_sha256": self.card.get("weights_sha256")}

    def setup(self, ctx: RunContext) -> None:
        from gencritic.metrics.registry import create_metric
        from gencritic.models.assessment_heads import load_head

        path = self.options.get("head")
        if not path:
            raise InputError("metric 'learned' needs a head folder: --metrics learned:/path/to/head")
        self.head, self.card = ctx.pool.get(("learned-head", str(Path(path).resolve())), lambda: load_head(path))
        self.fusion: Any = None
        if (self.card.get("backbone_info") or {}).get("kind") == "imagereward":
            self.fusion = _fusion_backbone(ctx, Path(path), self.card)
        else:
            self.backbone = ctx.clip(self.card["backbone"])
        sub_model = self.card.get("with_metrics_model") or self.card["backbone"]
        self.sub_metrics = [create_metric(spec, sub_model) for spec in self.card.get("with_metrics", [])]
        for m in self.sub_metrics:
            m.setup(ctx)
        self.score_mean = np.asarray(self.card.get("score_mean", []), dtype=np.float64)
        self.score_std = np.asarray(self.card.get("score_std", []), dtype=np.float64)
        self.target_mean = np.asarray(self.card["target_mean"], dtype=np.float64)
        self.target_std = np.asarray(self.card["target_std"], dtype=np.float64)

    def compute(self, batch: ViewBatch) -> MetricResult:
        n = len(batch)
        errors: list[str | None] = [None] * n
        use_text = "text" in self.info.inputs
        if use_text:
            for i, p in enumerate(batch.prompts):
                if not (p and p.strip()):
                    errors[i] = "no prompt for this item (this head was trained on image + text features)"
        columns = [m.info.columns[0] for m in self.sub_metrics]
        scores = np.zeros((n, len(columns)))
        for j, m in enumerate(self.sub_metrics):
            res = m.compute(batch)
            scores[:, j] = res.values[columns[j]]
            for i, e in enumerate(res.errors):
                if e and errors[i] is None:
                    errors[i] = f"{m.name} (input of this head): {e}"
        valid = [i for i in range(n) if errors[i] is None and np.isfinite(scores[i]).all()]
        for i in range(n):
            if errors[i] is None and i not in valid:
                errors[i] = "an input metric of this head gave no value"
        out = np.full((n, len(self.info.columns)), np.nan)
        fused: dict[int, np.ndarray] = {}
        if valid and self.fusion is not None:
            fused, failed = self._fusion_features(batch, valid)
            errors = [failed.get(i, e) for i, e in enumerate(errors)]
            valid = [i for i in valid if i in fused]
        if valid:
            import torch

            text = None
            if self.fusion is not None:
                image = torch.from_numpy(np.stack([fused[i] for i in valid]))
            else:
                image = batch.image_embeddings(self.backbone)[valid].float()
                if use_text:
                    text = batch.text_embeddings(self.backbone, [str(batch.prompts[i]) for i in valid]).float()
            z = ((scores[valid] - self.score_mean) / self.score_std).astype(np.float32)
            with torch.no_grad():
                pred = self.head(image, text, torch.from_numpy(z)).double().numpy()
            out[valid] = pred * self.target_std + self.target_mean
        values = {col: out[:, j] for j, col in enumerate(self.info.columns)}
        return MetricResult(values=values, errors=errors)

    def _fusion_features(self, batch: ViewBatch, idx: list[int]) -> tuple[dict[int, np.ndarray], dict[int, str]]:
        """ImageReward fusion features of views ``idx`` (through the run's cache), and why any failed."""
        from gencritic.models.imagereward_backbone import fusion_features

        assert self.fusion is not None
        got = fusion_features(self.fusion, batch.ctx.cache, [batch.views[i].sha256 for i in idx],
                              [str(batch.prompts[i]) for i in idx], lambda k: batch.views[idx[k]].image)
        ok = {i: g for i, g in zip(idx, got, strict=True) if not isinstance(g, str)}
        failed = {i: g for i, g in zip(idx, got, strict=True) if isinstance(g, str)}
        return ok, failed


def _fusion_backbone(ctx: RunContext, folder: Path, card: dict[str, Any]) -> Any:
    """The ImageReward backbone a head was trained on (with its fine-tuned layers, if any),
    refused in one line when the checkpoint on disk is no longer the one the card names."""
    from gencritic.errors import ModelUnavailableError
    from gencritic.hashing import sha256_file
    from gencritic.models.assessment_heads import head_files
    from gencritic.models.imagereward_backbone import FINETUNED_FILE, FusionBackbone, load_finetuned

    info = card["backbone_info"]
    ckpt = Path(info["checkpoint"])
    if not ckpt.is_file():
        raise ModelUnavailableError(f"head {folder} needs its ImageReward checkpoint {ckpt}, which is not there")
    if sha256_file(ckpt) != info["sha256"]:
        raise ModelUnavailableError(f"head {folder} was trained on {ckpt} with sha256 {info['sha256'][:12]}…; the file "
                                    f"there now differs")
    layers = load_finetuned(folder) if FINETUNED_FILE in head_files(folder) else None
    key = f"{ckpt}|{info['med_config']}|{info['tokenizer']}|{card.get('files', {}).get(FINETUNED_FILE, 'base')}"
    return ctx.pool.get(("learned-imagereward", key),
                        lambda: FusionBackbone(str(ckpt), info["med_config"], info["tokenizer"], device=ctx.pool.device,
                                               finetuned=layers))
