"""Graded prompt ladders: "how much of it", not just "is it there".

Plain CLIP score plateaus once the concept is present: a small puff of smoke and a huge
fireball both match "an explosion". A *ladder* is an ordered list of prompts from least to
most (``faint smoke|some smoke|thick smoke|a fireball|a dramatic fireball``). Each image gets
a softmax over the rungs, with CLIP's own temperature (``logit_scale · cos``, the zero-shot
classification rule of Radford et al.), and we report

* ``ladder_rung``: the expected rung ``Σ_k p_k·k / (K-1)`` in [0, 1] (0 = bottom rung,
  1 = top). It is continuous, so it keeps moving when the arg-max rung does not, and it is
  anti-symmetric: reversing the ladder maps r to 1 - r.
* ``ladder_best``: the index (0-based) of the best-matching rung, the arg-max of the cosines.

The maths is :func:`ladder_scores`, a pure function on unit embeddings, so other modules
(diagnostics) can reuse it without a model or a batch.

Spec: ``ladder:prompts=faint smoke|some smoke|dramatic fireball`` (at least two distinct
rungs, bottom first; ``|`` separates rungs, so rungs cannot contain ``|``, and because
``--metrics`` is comma-separated they cannot contain ``,`` or ``;`` either). Rungs that need
those characters ("a red, glossy apple") go in a file instead: ``ladder:prompts_file=rungs.txt``,
one rung per line, bottom first (blank lines and lines starting with ``#`` are skipped). Optional
``model=`` picks the CLIP backbone (default: the run's ``--model``) and ``scale=`` overrides the
softmax temperature (default: the model's learned ``logit_scale``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
from pydantic import Field

from gencritic.errors import InputError
from gencritic.metrics.base import ClipModelOptions, Metric, MetricInfo, MetricResult, parse_options
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_CLIP_MODEL

if TYPE_CHECKING:  # the metadata above is read without torch (`gencritic metrics`)
    import torch

    from gencritic.views import RunContext, ViewBatch


@dataclass(frozen=True)
class LadderScores:
    """Per image: expected rung in [0, 1], best rung index, and the rung probabilities (N, K)."""

    expected: np.ndarray
    best: np.ndarray
    probs: np.ndarray


def ladder_scores(image_emb: torch.Tensor | np.ndarray, rung_emb: torch.Tensor | np.ndarray,
                  logit_scale: float) -> LadderScores:
    """Softmax-expected rung of each image over an ordered ladder of text embeddings.

    ``image_emb`` (N, D) and ``rung_emb`` (K, D) are L2-normalised; rungs are ordered bottom
    to top. Computed in float64 so the [0, 1] bounds and the reversal identity hold to
    rounding, whatever the temperature.
    """
    img = np.asarray(image_emb, dtype=np.float64)
    rungs = np.asarray(rung_emb, dtype=np.float64)
    if img.ndim != 2 or rungs.ndim != 2 or img.shape[1] != rungs.shape[1]:
        raise ValueError(f"need (N, D) images and (K, D) rungs, got {img.shape} and {rungs.shape}")
    k = rungs.shape[0]
    if k < 2:
        raise ValueError("a ladder needs at least two rungs")
    cos = img @ rungs.T
    logits = float(logit_scale) * cos
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    expected = np.clip(p @ (np.arange(k, dtype=np.float64) / (k - 1)), 0.0, 1.0)
    return LadderScores(expected=expected, best=cos.argmax(axis=1).astype(np.float64), probs=p)


def parse_ladder(text: str) -> list[str]:
    """``a|b|c`` -> ['a', 'b', 'c'], refusing ladders that cannot be scored."""
    rungs = [r.strip() for r in text.split("|")]
    if any(not r for r in rungs):
        raise InputError(f"ladder prompts {text!r} contain an empty rung: give prompts=low|middle|high")
    return _checked_rungs(rungs, text)


def read_ladder_file(path: Path) -> list[str]:
    """One rung per line, bottom first; blank lines and ``#`` comments skipped. Why a file: rungs
    written in a ``--metrics`` spec cannot contain ``, ; |``, and natural prompts often do."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"ladder: prompts_file {path} does not exist (one rung per line, bottom first)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"ladder: cannot read prompts_file {path} as UTF-8 text ({exc})") from None
    rungs = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return _checked_rungs(rungs, str(path))


def _checked_rungs(rungs: list[str], source: str) -> list[str]:
    if len(rungs) < 2:
        raise InputError(f"ladder {source!r} has {len(rungs)} rung(s); a ladder needs at least two: "
                         f"ladder:prompts=faint smoke|some smoke|dramatic fireball")
    if len(set(rungs)) != len(rungs):
        raise InputError(f"ladder prompts {source!r} repeat a rung: each rung must be a different prompt")
    return rungs


class LadderOptions(ClipModelOptions):
    prompts: str | None = Field(None, description="the rungs, bottom first, separated by '|' (no ',' or ';' "
                                                  "inside a rung); give this or prompts_file")
    prompts_file: str | None = Field(None, description="a UTF-8 file with one rung per line, bottom first "
                                                       "(blank lines and # comments skipped)")
    scale: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="softmax temperature, > 0; default: the model's learned logit_scale (about 100 for CLIP)")


@register
class Ladder(Metric):
    options_schema = LadderOptions
    info = MetricInfo(
        name="ladder",
        family="alignment",
        inputs=("image", "text"),
        columns=("ladder_rung", "ladder_best"),
        range=(0.0, 1.0),
        higher_is_better=True,
        default_model=DEFAULT_CLIP_MODEL,
        description=(
            "Graded prompt ladder: the user orders prompts from least to most (ladder:prompts=faint smoke|"
            "some smoke|dramatic fireball). ladder_rung is the softmax-expected rung sum_k p_k*k/(K-1) in [0,1] "
            "with p = softmax(logit_scale*cos) over the rungs (CLIP zero-shot classification); it keeps moving "
            "after plain CLIP plateaus. ladder_best is the 0-based index of the best-matching rung. 'Higher' "
            "means further up the ladder, which is better only if the top rung is what you want."
        ),
        reference="Radford et al., Learning Transferable Visual Models From Natural Language Supervision, ICML 2021 "
                  "(zero-shot softmax over prompts); the expected-rung readout is gencritic's",
    )

    def __init__(self, options: dict[str, str] | None = None, default_model: str | None = None) -> None:
        super().__init__(options, default_model)
        opts = self.typed_options(LadderOptions)
        if ("prompts" in self.options) == ("prompts_file" in self.options):
            raise InputError("ladder needs its rungs, once: --metrics 'ladder:prompts=faint smoke|some smoke|dramatic "
                             "fireball' or 'ladder:prompts_file=rungs.txt' (one rung per line), not both")
        if "prompts" in self.options:
            self.rungs = parse_ladder(self.options["prompts"])
        else:  # the rungs themselves (not the file name) are the setting: editing the file re-scores
            self.rungs = read_ladder_file(Path(self.options["prompts_file"]).expanduser())
        self.scale: float | None = opts.scale  # the schema refused non-numbers, <= 0 and inf

    @classmethod
    def from_spec(cls, arg: str, default_model: str | None) -> Ladder:
        try:
            return cls(parse_options(arg), default_model)
        except ValueError as exc:
            raise InputError(f"metric 'ladder:{arg}': {exc}") from None

    def settings(self) -> dict[str, object]:
        return {"prompts": self.rungs, "scale": self.scale}

    def external_inputs(self) -> list[str] | None:
        return self.rungs if "prompts_file" in self.options else None

    def setup(self, ctx: RunContext) -> None:
        self.backbone = self.clip_backbone(ctx)

    def compute(self, batch: ViewBatch) -> MetricResult:
        rung_emb = batch.text_embeddings(self.backbone, self.rungs)
        img = batch.image_embeddings(self.backbone)
        scale = self.scale if self.scale is not None else self.backbone.logit_scale
        s = ladder_scores(img, rung_emb, scale)
        return MetricResult.from_columns(len(batch), ladder_rung=s.expected, ladder_best=s.best)
