"""ImageReward (Xu et al., NeurIPS 2023) from its own checkpoint format, without its package.

ImageReward is not a CLIP dual encoder: a BLIP ViT encodes the image, a BERT encoder reads the
prompt *with cross-attention to every image token*, and a 5-layer linear MLP (no
activations) maps the [CLS] feature to a reward, z-scored with constants fixed in the
authors' code (mean 0.16717362830052426, std 1.0333394966054072).

The ``image-reward`` package pins old timm/fairscale and its BLIP text encoder no longer
imports with current transformers, so we load ``ImageReward.pt`` into transformers' BLIP
modules (``BlipVisionModel``, ``BlipTextModel``: the same architecture, ported from BLIP's
``vit.py``/``med.py``) by renaming keys, and reproduce ``ImageReward.score``:

* image: Resize(224, bicubic) → CenterCrop(224) → ToTensor → Normalize(CLIP mean/std);
* text: BERT ``bert-base-uncased`` tokenizer with BLIP's added ``[DEC]``/``[ENC]`` tokens,
  ``padding='max_length', truncation=True, max_length=35`` (so prompts are cut at 35 tokens,
  as ImageReward does);
* architecture read from the checkpoint (ViT width/depth/patch/image size; heads = width/64
  as in BLIP) and from ``med_config.json`` (the BERT config the checkpoint was trained with).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gencritic.errors import ModelUnavailableError
from gencritic.models.device import dtype_name, resolve_device, resolve_dtype
from gencritic.models.hubfile import WeightsSource, hub_repo_reachable, unavailable
from gencritic.models.int8 import quantise_linears
from gencritic.models.loader import hub_offline

IMAGEREWARD_MEAN = 0.16717362830052426
IMAGEREWARD_STD = 1.0333394966054072
MAX_TEXT_TOKENS = 35
MLP_LINEAR_INDICES = (0, 2, 4, 6, 7)  # Linear layers inside ImageReward's nn.Sequential (dropouts between)
VISION_PREFIX = "blip.visual_encoder."
TEXT_PREFIX = "blip.text_encoder."

IMAGEREWARD_WEIGHTS = WeightsSource(
    "ImageReward", "GENCRITIC_IMAGEREWARD_MODEL",
    "--metrics 'imagereward:model=/path/to/ImageReward.pt;med_config=/path/to/med_config.json'",
    "THUDM/ImageReward", "ImageReward.pt")
MED_CONFIG_WEIGHTS = WeightsSource(
    "ImageReward med_config.json", "GENCRITIC_IMAGEREWARD_MED_CONFIG",
    "imagereward:med_config=/path/to/med_config.json (or put it beside ImageReward.pt)",
    "THUDM/ImageReward", "med_config.json")


def vision_key(key: str) -> str:
    """BLIP ``vit.py`` parameter name -> transformers ``BlipVisionModel`` name."""
    key = key.replace("cls_token", "embeddings.class_embedding")
    key = key.replace("pos_embed", "embeddings.position_embedding")
    key = key.replace("patch_embed.proj", "embeddings.patch_embedding")
    key = key.replace("blocks.", "encoder.layers.")
    key = key.replace(".norm1.", ".layer_norm1.").replace(".norm2.", ".layer_norm2.")
    key = key.replace(".attn.qkv.", ".self_attn.qkv.").replace(".attn.proj.", ".self_attn.projection.")
    if key.startswith("norm."):
        key = "post_layernorm." + key[len("norm."):]
    return key


@dataclass(frozen=True)
class VisionShape:
    width: int
    depth: int
    patch: int
    image_size: int

    @property
    def heads(self) -> int:
        return max(1, self.width // 64)  # BLIP's ViT-B (768/12) and ViT-L (1024/16) use 64-wide heads


def vision_shape(state: dict[str, torch.Tensor]) -> VisionShape:
    width = int(state[VISION_PREFIX + "cls_token"].shape[-1])
    depth = len({k.split(".")[3] for k in state if k.startswith(VISION_PREFIX + "blocks.")})
    patch = int(state[VISION_PREFIX + "patch_embed.proj.weight"].shape[-1])
    grid = round((state[VISION_PREFIX + "pos_embed"].shape[1] - 1) ** 0.5)
    return VisionShape(width, depth, patch, grid * patch)


class ImageRewardModel(torch.nn.Module):
    """BLIP vision + cross-attending BERT + ImageReward's linear MLP head."""

    def __init__(self, shape: VisionShape, med_config: dict[str, Any], mlp: list[torch.nn.Linear]) -> None:
        super().__init__()
        from transformers import BlipTextConfig, BlipTextModel, BlipVisionConfig, BlipVisionModel

        vcfg = BlipVisionConfig(hidden_size=shape.width, intermediate_size=4 * shape.width,
                                num_hidden_layers=shape.depth, num_attention_heads=shape.heads,
                                image_size=shape.image_size, patch_size=shape.patch, hidden_act="gelu",
                                layer_norm_eps=1e-6, attention_dropout=0.0)
        tcfg = BlipTextConfig(vocab_size=med_config["vocab_size"], hidden_size=med_config["hidden_size"],
                              encoder_hidden_size=shape.width, intermediate_size=med_config["intermediate_size"],
                              num_hidden_layers=med_config["num_hidden_layers"],
                              num_attention_heads=med_config["num_attention_heads"],
                              max_position_embeddings=med_config["max_position_embeddings"],
                              hidden_act=med_config.get("hidden_act", "gelu"),
                              layer_norm_eps=med_config.get("layer_norm_eps", 1e-12),
                              pad_token_id=med_config.get("pad_token_id", 0),
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                              is_decoder=True)  # builds the cross-attention layers; forward runs bidirectionally
        self.vision = BlipVisionModel(vcfg)
        self.text = BlipTextModel(tcfg, add_pooling_layer=False)
        self.mlp = torch.nn.ModuleList(mlp)

    def fusion(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor,
               image_embeds: torch.Tensor | None = None) -> torch.Tensor:
        """The [CLS] feature of the image-grounded text encoder: what the reward MLP reads, and the
        feature ``gencritic train --backbone imagereward`` learns from. ``image_embeds`` (the vision
        tower's output) may be given when it was computed apart (fine-tuning keeps that tower frozen)."""
        if image_embeds is None:
            image_embeds = self.vision(pixel_values=pixels).last_hidden_state
        image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long, device=image_embeds.device)
        out = self.text(input_ids=input_ids, attention_mask=attention_mask, encoder_hidden_states=image_embeds,
                        encoder_attention_mask=image_atts, is_decoder=False, return_dict=True)
        return out.last_hidden_state[:, 0, :]  # type: ignore[no-any-return]

    def forward(self, pixels: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Normalised reward per (image, prompt) pair: ImageReward.score, batched."""
        x = self.fusion(pixels, input_ids, attention_mask).float()
        for layer in self.mlp:
            x = layer.float()(x)
        return ((x - IMAGEREWARD_MEAN) / IMAGEREWARD_STD)[:, 0]


def split_checkpoint(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor],
                                                               list[torch.nn.Linear]]:
    """ImageReward.pt -> (vision state, text state, MLP linears), or ModelUnavailableError."""
    vision = {vision_key(k[len(VISION_PREFIX):]): v for k, v in state.items() if k.startswith(VISION_PREFIX)}
    text = {k[len(TEXT_PREFIX):]: v for k, v in state.items()
            if k.startswith(TEXT_PREFIX) and not k.endswith("position_ids")}
    mlp: list[torch.nn.Linear] = []
    for i in MLP_LINEAR_INDICES:
        w, b = state.get(f"mlp.layers.{i}.weight"), state.get(f"mlp.layers.{i}.bias")
        if w is None or b is None:
            raise unavailable(IMAGEREWARD_WEIGHTS, f"checkpoint lacks the reward head (mlp.layers.{i}.*): "
                                                   "is this an ImageReward.pt?")
        lin = torch.nn.Linear(w.shape[1], w.shape[0])
        lin.load_state_dict({"weight": w.float(), "bias": b.float()})
        mlp.append(lin)
    if not vision or not text:
        raise unavailable(IMAGEREWARD_WEIGHTS, "checkpoint lacks blip.visual_encoder.* or blip.text_encoder.* weights")
    return vision, text, mlp


def load_tokenizer(source: str) -> Any:
    """BERT tokenizer as BLIP's init_tokenizer builds it: bert-base-uncased + [DEC] bos + [ENC]."""
    from transformers import BertTokenizer

    if not hub_repo_reachable(source, "vocab.txt"):
        raise unavailable(IMAGEREWARD_WEIGHTS, f"BERT tokenizer '{source}' is not in the Hugging Face cache and the "
                                               f"hub cannot be reached; pass imagereward:tokenizer=DIR")
    try:
        tok = BertTokenizer.from_pretrained(source, local_files_only=hub_offline())
    except (OSError, ValueError) as exc:
        raise unavailable(IMAGEREWARD_WEIGHTS, f"cannot load the BERT tokenizer '{source}' "
                                               f"({str(exc).splitlines()[0]}); pass imagereward:tokenizer=DIR") from None
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tok


def image_transform(size: int) -> Any:
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize(size, interpolation=InterpolationMode.BICUBIC), CenterCrop(size),
                    ToTensor(), Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])


class ImageRewardScorer:
    """A loaded ImageReward: preprocess, tokenise and score (image, prompt) pairs in batches."""

    def __init__(self, model: ImageRewardModel, tokenizer: Any, image_size: int, model_id: str,
                 device: torch.device, dtype: torch.dtype, int8: bool = False) -> None:
        model = model.eval()
        if int8:  # CPU fast mode, as for CLIP backbones: int8 weights in both towers, fp32 reward head
            quantise_linears(model.vision.float())
            quantise_linears(model.text.float())
            dtype = torch.float32
        else:
            model = model.to(device=device, dtype=dtype)
        self.model = model
        self.model.mlp.float()
        self.int8 = int8
        self.tokenizer = tokenizer
        self.transform = image_transform(image_size)
        self.model_id = model_id
        self.device, self.dtype = device, dtype
        self.lock = threading.Lock()
        self.pair_count = 0  # pairs scored (tests and benchmarks read it)

    @property
    def precision(self) -> str:
        return dtype_name(self.dtype, self.int8)

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image.convert("RGB"))  # type: ignore[no-any-return]

    @torch.inference_mode()
    def score(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> torch.Tensor:
        pixels = torch.stack([self.preprocess(im) for im in images]).to(self.device, self.dtype)
        tok = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                             return_tensors="pt")
        with self.lock:
            self.pair_count += len(prompts)
            out = self.model(pixels, tok["input_ids"].to(self.device), tok["attention_mask"].to(self.device))
        return out.float().cpu()


def read_med_config(path: Path) -> dict[str, Any]:
    try:
        cfg = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise unavailable(MED_CONFIG_WEIGHTS, f"cannot read '{path}': {exc}") from None
    needed = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "max_position_embeddings")
    missing = [k for k in needed if k not in cfg]
    if missing:
        raise unavailable(MED_CONFIG_WEIGHTS, f"'{path}' lacks {', '.join(missing)}: not a BLIP med_config.json")
    return dict(cfg)


def load_imagereward(checkpoint: str, med_config: str, tokenizer: str = "bert-base-uncased", device: str = "auto",
                     dtype: str = "auto") -> ImageRewardScorer:
    """Load ``ImageReward.pt`` + ``med_config.json`` into transformers' BLIP modules, strictly."""
    from gencritic.models.loader import _read_state_dict

    dev = resolve_device(device)
    torch_dtype, int8 = resolve_dtype(dtype, dev)
    try:
        state = _read_state_dict(Path(checkpoint))
    except ModelUnavailableError as exc:
        raise unavailable(IMAGEREWARD_WEIGHTS, str(exc).split(". ")[0]) from None
    cfg = read_med_config(Path(med_config))
    vision_state, text_state, mlp = split_checkpoint(state)
    try:
        shape = vision_shape(state)
        model = ImageRewardModel(shape, cfg, mlp)
        model.vision.load_state_dict(vision_state, strict=True)
        missing, unexpected = model.text.load_state_dict(text_state, strict=False)
    except (KeyError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise unavailable(IMAGEREWARD_WEIGHTS, f"'{checkpoint}' does not fit BLIP + {med_config}: {first}") from None
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise unavailable(IMAGEREWARD_WEIGHTS, f"'{checkpoint}' text encoder: {len(missing)} missing "
                                               f"(e.g. {missing[:1]}), {len(unexpected)} unexpected (e.g. {unexpected[:1]})")
    tok = load_tokenizer(tokenizer)
    if len(tok) > cfg["vocab_size"]:
        raise unavailable(IMAGEREWARD_WEIGHTS, f"tokenizer '{tokenizer}' has {len(tok)} tokens but the model only "
                                               f"{cfg['vocab_size']}")
    model_id = f"imagereward:{checkpoint}|med_config={med_config}|tokenizer={tokenizer}"
    return ImageRewardScorer(model, tok, shape.image_size, model_id, dev, torch_dtype, int8)
