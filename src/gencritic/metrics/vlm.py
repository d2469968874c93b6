"""VQAScore: how sure a vision-language model is that the image shows the prompt.

VQAScore (Lin et al., ECCV 2024; the t2v_metrics package) asks a VLM ``Does this figure show
"{prompt}"? Please answer yes or no.`` and reads the probability that its reply starts with
"Yes": the softmax over the vocabulary at the first answer position. It beats CLIP score on
compositional prompts ("a red cube on a blue sphere"), which a bag-of-words embedding confuses.

Here the VLM comes from :mod:`gencritic.models.vlm`: a Hugging Face image-text-to-text model
(default Qwen2-VL-2B-Instruct, one of t2v_metrics' supported families) or an OpenAI-compatible
endpoint, which must then answer ``logprobs``; a "Yes" the endpoint did not list among its top
tokens fails that view (its probability is only bounded, and no bound is written as a score).
Answers are cached beside the embeddings (``vlm_answers.sqlite``), and 3D assets get the mean
over their rendered views, as every registered metric.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field, field_validator

from gencritic.metrics.base import Metric, MetricInfo, MetricOptions, MetricResult, prompt_errors
from gencritic.metrics.registry import register
from gencritic.models.defaults import DEFAULT_VLM_MODEL, default_vlm_spec
from gencritic.models.vlm_base import DEFAULT_MAX_SIDE

if TYPE_CHECKING:  # the metadata above is read without torch (`gencritic metrics`); the VLM loads in setup
    from gencritic.views import RunContext, ViewBatch

DEFAULT_QUESTION = 'Does this figure show "{}"? Please answer yes or no.'  # t2v_metrics' default template
DEFAULT_ANSWER = "Yes"


class VQAScoreOptions(MetricOptions):
    model: str | None = Field(None, description="the VLM: a Hugging Face id or save_pretrained folder of an "
                                                "image-text-to-text model, or an OpenAI-compatible endpoint "
                                                "URL[#model]; default: $GENCRITIC_VLM_MODEL, then "
                                                f"{DEFAULT_VLM_MODEL}")
    question: str = Field(DEFAULT_QUESTION, description="question template; {} is replaced by the prompt "
                                                        "(no ',' or ';' inside a --metrics spec)")
    answer: str = Field(DEFAULT_ANSWER, description="the reply whose first-token probability is the score")
    max_side: int = Field(DEFAULT_MAX_SIDE, ge=28, le=4096, description="images are scaled down so no side is "
                                                                         "longer (aspect kept)")
    batch_size: int = Field(8, ge=1, le=256, description="questions per model call (local models)")
    api_key_env: str = Field("GENCRITIC_VLM_API_KEY", description="environment variable holding an endpoint's key")

    @field_validator("question")
    @classmethod
    def _one_slot(cls, value: str) -> str:
        if value.count("{}") != 1:
            raise ValueError(f"vqascore: question={value!r} must contain {{}} exactly once (where the prompt goes)")
        return value


@register
class VQAScore(Metric):
    options_schema = VQAScoreOptions
    info = MetricInfo(
        name="vqascore",
        family="vlm",
        inputs=("image", "text"),
        columns=("vqascore",),
        range=(0.0, 1.0),
        higher_is_better=True,
        default_model=DEFAULT_VLM_MODEL,
        description=(
            "VQAScore: P('Yes' | image, 'Does this figure show \"{prompt}\"? Please answer yes or no.') read from a "
            "vision-language model's first answer token (t2v_metrics' readout); stronger than CLIP score on "
            "compositional prompts. Model: vqascore:model=HF_ID|FOLDER|http://host/v1#name, $GENCRITIC_VLM_MODEL, "
            f"or {DEFAULT_VLM_MODEL} from the Hugging Face cache."
        ),
        reference="Lin et al., Evaluating Text-to-Visual Generation with Image-to-Text Generation, ECCV 2024 "
                  "(t2v_metrics)",
        needs_pixels=True,
        optional_weights=True,
    )

    def model_id(self) -> str | None:
        # never the run's --model (a CLIP model): a VLM is named by its own option or variable
        return self.options.get("model") or default_vlm_spec()

    def settings(self) -> dict[str, object]:
        opts = self.typed_options(VQAScoreOptions)
        return {"question": opts.question, "answer": opts.answer, "max_side": opts.max_side}

    def setup(self, ctx: RunContext) -> None:
        from gencritic.models.vlm import pool_vlm
        from gencritic.models.vlm_cache import AnswerCache, VLMClient

        opts = self.typed_options(VQAScoreOptions)
        spec = self.model_id() or default_vlm_spec()
        vlm = pool_vlm(ctx.pool, spec, opts.max_side, opts.api_key_env)
        path = ctx.cache.path
        cache = ctx.pool.get(("vlm-answers", str(path)), lambda: AnswerCache.in_dir(None if path is None
                                                                                     else path.parent))
        self.client = VLMClient(vlm, cache, opts.batch_size)

    def compute(self, batch: ViewBatch) -> MetricResult:
        opts = self.typed_options(VQAScoreOptions)
        errors = prompt_errors(batch.prompts)
        values = np.full(len(batch), np.nan)
        valid = [i for i, err in enumerate(errors) if err is None]
        if valid:
            views = [batch.views[i] for i in valid]
            answers = self.client.first_token_logprobs(
                [functools.partial(getattr, v, "image") for v in views], [v.sha256 for v in views],
                [opts.question.format(batch.prompts[i]) for i in valid], [opts.answer])
            for i, ans in zip(valid, answers, strict=True):
                if ans.error is not None:
                    errors[i] = ans.error
                elif ans.value[0] is None:
                    errors[i] = (f"{opts.answer!r} is not among the first tokens the endpoint listed, so its "
                                 f"probability is unknown (only bounded by the smallest listed one)")
                else:
                    values[i] = math.exp(float(ans.value[0]))
        return MetricResult(values={"vqascore": values}, errors=errors)
