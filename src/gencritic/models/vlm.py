"""Vision-language models: one interface over a local Hugging Face VLM and an OpenAI-compatible endpoint.

Why one layer: VQAScore, the structured critique and the pairwise 3D judge all ask a VLM the
same two things, and none of them should care where the model runs:

* :meth:`VisionLanguageModel.first_token_logprobs`: the log-probabilities of given answers
  ("Yes", "1", "2") as the *first* token of the reply to (image, prompt). VQAScore is
  ``exp`` of that for "Yes" (t2v_metrics' readout for generative VLMs: the softmax at the first
  answer position); the 3D judge compares "1" with "2".
* :meth:`VisionLanguageModel.generate`: the greedy reply, for JSON critiques.

A spec is a Hugging Face id or a ``save_pretrained`` folder of an image-text-to-text model
(Qwen2-VL / Qwen2.5-VL, LLaVA, Idefics, SmolVLM, ... whatever ``AutoModelForImageTextToText``
knows), or the URL of an OpenAI-compatible server (``http://127.0.0.1:8000/v1``, optionally
``#model-name``; see :mod:`gencritic.models.vlm_endpoint`). Loading never falls back: a model
that cannot be had is one :class:`~gencritic.errors.ModelUnavailableError` with the fix.

Determinism: decoding is greedy with a generation config built here (a checkpoint's shipped
sampling settings, temperature or top-p, are not applied), the torch seed is fixed before each
call, and answers are cached by (image hash, prompt, model, settings) in
:mod:`gencritic.models.vlm_cache`, so a repeated question is never asked twice.
"""

from __future__ import annotations

import inspect
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gencritic.errors import InputError, ModelUnavailableError
from gencritic.models.defaults import DEFAULT_VLM_MODEL
from gencritic.models.defaults import VLM_MODEL_ENV as MODEL_ENV  # noqa: F401 (named here, where VLMs load)
from gencritic.models.defaults import default_vlm_spec as default_vlm_spec
from gencritic.models.device import dtype_name, resolve_device
from gencritic.models.loader import hub_offline
from gencritic.models.vlm_base import (
    DEFAULT_MAX_SIDE,
    SEED,
    VisionLanguageModel,
    prepare_image,
)


def vlm_dtype(name: str, device: torch.device) -> torch.dtype:
    """``auto`` is bf16 on CUDA (what VLMs are trained and served in; fp16 overflows some) and fp32
    elsewhere; ``int8`` is refused (it is a CLIP-tower mode, not a VLM one)."""
    name = (name or "auto").lower()
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if name not in table:
        raise InputError(f"dtype {name!r} is not available for vision-language models; use auto, fp32, bf16 or fp16")
    if name == "fp16" and device.type == "cpu":
        raise InputError("fp16 is not supported on CPU; use fp32 or bf16")
    return table[name]


class HFVisionLanguageModel:
    """A transformers image-text-to-text model and its processor, batched with left padding."""

    def __init__(self, model: Any, processor: Any, model_id: str, device: torch.device, dtype: torch.dtype,
                 max_side: int | None = DEFAULT_MAX_SIDE) -> None:
        tokenizer = getattr(processor, "tokenizer", None)
        if tokenizer is None:
            raise ModelUnavailableError(f"cannot use VLM '{model_id}': its processor has no tokenizer")
        if not getattr(processor, "chat_template", None) and not getattr(tokenizer, "chat_template", None):
            raise ModelUnavailableError(
                f"cannot use VLM '{model_id}': it has no chat template, so there is no defined way to ask it a "
                f"question; use an instruction-tuned chat VLM (e.g. {DEFAULT_VLM_MODEL})")
        tokenizer.padding_side = "left"  # the answer position is then the last one for every row of a batch
        if tokenizer.pad_token_id is None:
            if tokenizer.eos_token_id is None:
                raise ModelUnavailableError(f"cannot use VLM '{model_id}': its tokenizer has neither a pad nor an "
                                            f"end-of-sequence token to pad batches with")
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model.to(device=device, dtype=dtype).eval()
        self.processor = processor
        self.tokenizer = tokenizer
        self.model_id = model_id
        self.device = device
        self.dtype = dtype
        self.max_side = max_side
        self.lock = threading.Lock()
        self.images_seen = 0  # images that went through the model (tests assert cache hits with it)
        self._token_ids: dict[str, int] = {}

    def settings(self) -> dict[str, Any]:
        return {"backend": "transformers", "dtype": dtype_name(self.dtype), "device": self.device.type,
                "max_side": self.max_side, "processor": type(self.processor).__name__}

    # -- inputs ---------------------------------------------------------------------------------
    def chat_text(self, prompt: str) -> str:
        """The model's own chat template around one image and the prompt, ready for the reply."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        return str(self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False))

    def inputs(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> dict[str, Any]:
        """Processor outputs for a batch, on the model's device (floats in the model's dtype)."""
        pictures = [prepare_image(im, self.max_side) for im in images]
        batch = self.processor(text=[self.chat_text(p) for p in prompts], images=pictures, padding=True,
                               return_tensors="pt")
        out: dict[str, Any] = {}
        for key, value in batch.items():
            if isinstance(value, torch.Tensor):
                value = value.to(self.device, dtype=self.dtype) if value.is_floating_point() else value.to(self.device)
            out[key] = value
        return out

    def token_id(self, answer: str) -> int:
        """The first token of ``answer`` without special tokens (t2v_metrics reads ``encode(answer)[0]``
        on tokenizers that add none)."""
        if answer not in self._token_ids:
            ids = self.tokenizer.encode(answer, add_special_tokens=False)
            if not ids:
                raise InputError(f"answer {answer!r} is no token at all for VLM '{self.model_id}'")
            self._token_ids[answer] = int(ids[0])
        return self._token_ids[answer]

    def _generation_config(self, max_new_tokens: int, logits: bool = False) -> Any:
        from transformers import GenerationConfig

        shipped = getattr(self.model, "generation_config", None)
        extra = {"output_logits": True, "return_dict_in_generate": True} if logits else {}
        return GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                                eos_token_id=getattr(shipped, "eos_token_id", None) or self.tokenizer.eos_token_id,
                                pad_token_id=self.tokenizer.pad_token_id,
                                bos_token_id=getattr(shipped, "bos_token_id", None), **extra)

    # -- questions ------------------------------------------------------------------------------
    def _answer_position_logits(self, inputs: dict[str, Any]) -> torch.Tensor:
        """(B, vocab) logits at the first answer position (the last one: rows are left-padded).

        One forward pass, no generate(): its per-call set-up cost as much as the model on small
        batches. Positions of left-padded rows are given explicitly (as generate() does), except
        for models that build their own 3-D rotary index from the mask (Qwen2-VL and kin). Only
        the last position goes through the language head: the full (B, L, vocab) logits of a 2B
        model at batch 32 are ~3 GB and as many FLOPs as the rest of the model."""
        model = self.model
        kwargs = dict(inputs, use_cache=False)
        mask = inputs.get("attention_mask")
        if mask is not None and self._explicit_positions:
            positions = mask.long().cumsum(-1) - 1
            kwargs["position_ids"] = positions.masked_fill(mask == 0, 1)
        if self._keeps_logits:
            return model(**kwargs, logits_to_keep=1).logits[:, -1]
        if self._head_split:
            hidden = model.model(**kwargs).last_hidden_state[:, -1]
            return model.get_output_embeddings()(hidden)
        return model(**kwargs).logits[:, -1]

    @property
    def _explicit_positions(self) -> bool:
        model = self.model
        builds_own = any(hasattr(m, "get_rope_index") for m in (model, getattr(model, "model", None)))
        return not builds_own and "position_ids" in inspect.signature(model.forward).parameters

    @property
    def _keeps_logits(self) -> bool:
        return "logits_to_keep" in inspect.signature(self.model.forward).parameters

    @property
    def _head_split(self) -> bool:
        """The base model then the head by hand, when nothing else happens between them: configs
        that rescale or soft-cap logits after the head keep the model's own forward."""
        model = self.model
        if getattr(model, "model", None) is None or model.get_output_embeddings() is None:
            return False
        configs = [model.config, getattr(model.config, "text_config", None)]
        post = ("final_logit_softcapping", "logit_scale", "logits_scaling", "output_multiplier_scale")
        return not any(getattr(c, a, None) not in (None, 1, 1.0) for c in configs if c is not None for a in post)

    def first_token_logprobs(self, images: Sequence[Image.Image], prompts: Sequence[str],
                             answers: Sequence[str]) -> list[list[float | None]]:
        ids = [self.token_id(a) for a in answers]
        with self.lock, torch.inference_mode():
            torch.manual_seed(SEED)
            inputs = self.inputs(images, prompts)
            logits = self._answer_position_logits(inputs)
            self.images_seen += len(images)
            logp = torch.log_softmax(logits.float(), dim=-1)[:, ids]
        return [[float(v) for v in row] for row in logp.cpu().numpy()]

    def generate(self, images: Sequence[Image.Image], prompts: Sequence[str], max_new_tokens: int) -> list[str]:
        with self.lock, torch.inference_mode():
            torch.manual_seed(SEED)
            inputs = self.inputs(images, prompts)
            out = self.model.generate(**inputs, generation_config=self._generation_config(max_new_tokens))
            self.images_seen += len(images)
            new = out[:, inputs["input_ids"].shape[1]:]
            texts = self.tokenizer.batch_decode(new, skip_special_tokens=True)
        return [t.strip() for t in texts]


# -- loading ------------------------------------------------------------------------------------


def _unavailable(spec: str, reason: str) -> ModelUnavailableError:
    reason = " ".join(str(reason).split())[:300].rstrip(". ")
    mode = "HF_HUB_OFFLINE=1 is set, so only local files are used. " if hub_offline() else ""
    return ModelUnavailableError(
        f"cannot load vision-language model '{spec}': {reason}. {mode}Give a folder saved with save_pretrained "
        f"(model and processor), a Hugging Face id present in the cache (HF_HOME) from a machine with internet "
        f"access, or the URL of an OpenAI-compatible server (http://host:port/v1#model)")


def _check_config(source: str, spec: str) -> None:
    """Refuse a model that is not image-text-to-text before loading gigabytes of it."""
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source, local_files_only=hub_offline())
    except (OSError, ValueError) as exc:
        raise _unavailable(spec, str(exc).split("\n")[0]) from None
    if config.model_type not in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
        raise _unavailable(spec, f"its config describes a {config.model_type!r} model, not an image-text-to-text "
                                 f"one (transformers knows: qwen2_vl, qwen2_5_vl, llava, idefics3, smolvlm, ...)")


def _dtype_keyword() -> str:
    """``dtype`` since transformers 4.56 (and in 5.x); ``torch_dtype`` before."""
    import transformers

    major, minor = (int(p) for p in transformers.__version__.split(".")[:2])
    return "dtype" if (major, minor) >= (4, 56) else "torch_dtype"


def load_hf_vlm(spec: str, device: str = "auto", dtype: str = "auto",
                max_side: int | None = DEFAULT_MAX_SIDE) -> HFVisionLanguageModel:
    """A local VLM by hub id or ``save_pretrained`` folder, through transformers' Auto classes."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    dev = resolve_device(device)  # settings first: a bad --dtype is refused before anything is read
    torch_dtype = vlm_dtype(dtype, dev)
    source = spec[3:] if spec.startswith("hf:") else spec
    path = Path(source).expanduser()
    if source.startswith((".", "/", "~")) and not path.exists():
        raise _unavailable(spec, "no such folder")
    if path.is_dir():
        if not (path / "config.json").exists():
            raise _unavailable(spec, "the folder has no config.json (save the model with save_pretrained)")
        source = str(path)
    _check_config(source, spec)
    local = hub_offline()
    try:
        model = AutoModelForImageTextToText.from_pretrained(source, local_files_only=local,
                                                            **{_dtype_keyword(): torch_dtype})
        # the torchvision ("fast") image processors: transformers 5's default, so 4.x and 5.x see the same
        # pixels, and they preprocess a batch in a few tensor ops instead of image by image in PIL
        processor = AutoProcessor.from_pretrained(source, local_files_only=local, use_fast=True)
    except (OSError, ValueError) as exc:
        raise _unavailable(spec, str(exc).split("\n")[0]) from None
    return HFVisionLanguageModel(model, processor, spec, dev, torch_dtype, max_side)


def is_endpoint(spec: str) -> bool:
    return spec.strip().lower().startswith(("http://", "https://"))


def load_vlm(spec: str | None = None, device: str = "auto", dtype: str = "auto",
             max_side: int | None = DEFAULT_MAX_SIDE, api_key_env: str | None = None,
             **endpoint_options: Any) -> VisionLanguageModel:
    """A VLM from a spec: an endpoint URL, else a Hugging Face id or folder (see the module docstring).
    ``endpoint_options`` (clock, policy, timeout_s, transport) reach :class:`EndpointVLM` only."""
    spec = (spec or default_vlm_spec()).strip()
    if not spec:
        raise InputError("empty VLM spec: give a Hugging Face id, a local folder or an http(s):// endpoint URL")
    if is_endpoint(spec):
        from gencritic.models.vlm_endpoint import DEFAULT_KEY_ENV, connect_endpoint

        return connect_endpoint(spec, api_key_env=api_key_env or DEFAULT_KEY_ENV, max_side=max_side,
                                **endpoint_options)
    return load_hf_vlm(spec, device, dtype, max_side)


def pool_vlm(pool: Any, spec: str, max_side: int | None = DEFAULT_MAX_SIDE, api_key_env: str | None = None
             ) -> VisionLanguageModel:
    """The run's shared instance (:class:`~gencritic.models.loader.ModelPool`): two judges of one run
    that name the same VLM load it once."""
    key = ("vlm", json.dumps([spec, max_side, api_key_env]))
    return pool.get(key, lambda: load_vlm(spec, pool.device, pool.dtype, max_side, api_key_env))  # type: ignore[no-any-return]


def probabilities(logprobs: Sequence[float | None]) -> np.ndarray:
    """exp of each log-probability, NaN where it is unknown."""
    return np.array([np.nan if v is None else float(np.exp(v)) for v in logprobs], dtype=np.float64)
