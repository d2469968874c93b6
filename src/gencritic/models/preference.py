"""Loading learned human-preference scorers that are CLIP dual encoders: PickScore and HPSv2.

Both are CLIP models fine-tuned on human choices, distributed in formats ``load_clip`` does not
cover on its own, so they get small loaders here that return the same
:class:`~gencritic.models.clip.ClipBackbone` (and so share the embedding cache and batching):

* **PickScore** (Kirstain et al., NeurIPS 2023): transformers ``CLIPModel`` weights
  (``yuvalkirstain/PickScore_v1``) with the tokenizer and image processor of a *different*
  repo (``laion/CLIP-ViT-H-14-laion2B-s32B-b79K``), exactly as the authors' example does.
* **HPSv2** (Wu et al., 2023): an open_clip ``ViT-H-14`` whose weights come from a training
  checkpoint (``HPS_v2_compressed.pt`` / ``HPS_v2.1_compressed.pt``, ``{"state_dict": ...}``),
  with HPSv2's own eval preprocessing: resize the *longest* side to 224 and pad with black
  (its ``ResizeMaxSize``), not CLIP's resize-and-centre-crop, so the whole image is seen.

ImageReward is BLIP-based, not a CLIP dual encoder: see :mod:`gencritic.models.imagereward`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from PIL import Image

from gencritic.errors import ModelUnavailableError
from gencritic.models.clip import ClipBackbone, HFClipBackbone, OpenClipBackbone
from gencritic.models.defaults import HPSV2_FILES, HPSV2_REPO
from gencritic.models.defaults import PICKSCORE_MODEL as PICKSCORE_MODEL  # named here too, where it loads
from gencritic.models.defaults import PICKSCORE_PROCESSOR as PICKSCORE_PROCESSOR
from gencritic.models.device import resolve_device, resolve_dtype
from gencritic.models.hubfile import WeightsSource, hub_repo_reachable, unavailable
from gencritic.models.loader import _open_clip_token_counter, _read_state_dict, hub_offline

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

PICKSCORE_WEIGHTS = WeightsSource("PickScore", "GENCRITIC_PICKSCORE_MODEL",
                                  "--metrics 'pickscore:model=/path/to/PickScore_v1;processor=/path/to/laion-ViT-H-14'",
                                  None, None, kind="folder")


def hpsv2_weights(version: str) -> WeightsSource:
    return WeightsSource(f"HPS {version}", "GENCRITIC_HPSV2_MODEL", "--metrics hpsv2:model=/path/to/HPS_v2.1_compressed.pt",
                         HPSV2_REPO, HPSV2_FILES[version])


def load_pickscore(model_source: str, processor_source: str, device: str = "auto", dtype: str = "auto") -> ClipBackbone:
    """PickScore's CLIPModel with the processor (tokenizer + image processor) of another repo."""
    from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

    dev = resolve_device(device)
    torch_dtype, int8 = resolve_dtype(dtype, dev)
    for src, probe in ((model_source, "config.json"), (processor_source, "preprocessor_config.json")):
        if not hub_repo_reachable(src, probe):
            raise unavailable(PICKSCORE_WEIGHTS, f"'{src}' is not in the Hugging Face cache and the hub cannot be "
                                                 f"reached")
    try:
        model = CLIPModel.from_pretrained(model_source, local_files_only=hub_offline())  # float32 weights; HFClipBackbone casts
    except (OSError, ValueError) as exc:
        raise unavailable(PICKSCORE_WEIGHTS, f"cannot load model '{model_source}': {str(exc).splitlines()[0]}") from None
    try:
        tokenizer = AutoTokenizer.from_pretrained(processor_source, local_files_only=hub_offline())
        processor = CLIPImageProcessor.from_pretrained(processor_source, local_files_only=hub_offline())
    except (OSError, ValueError) as exc:
        raise unavailable(PICKSCORE_WEIGHTS,
                          f"cannot load processor '{processor_source}': {str(exc).splitlines()[0]}") from None
    model_id = f"pickscore:{model_source}|processor={processor_source}"
    return HFClipBackbone(model, tokenizer, processor, model_id, dev, torch_dtype, int8)


class HpsResizeMaxSize:
    """HPSv2's eval transform: to tensor, resize the longest side to ``size`` (bicubic), pad the
    short side with ``fill`` centred (extra pixel right/bottom), normalise with CLIP's mean/std.

    Resizing happens on the float tensor, as in HPSv2; torchvision >= 0.17 antialiases tensor
    resizes by default, which is what the ``hpsv2`` package computes when installed today.
    """

    def __init__(self, size: int, fill: float = 0.0, mean: tuple[float, ...] = OPENAI_MEAN,
                 std: tuple[float, ...] = OPENAI_STD) -> None:
        self.size, self.fill, self.mean, self.std = int(size), float(fill), tuple(mean), tuple(std)

    def __repr__(self) -> str:  # hashed into the cache namespace: must describe every setting
        return (f"HpsResizeMaxSize(size={self.size}, fill={self.fill}, interpolation=bicubic, antialias=True, "
                f"mean={self.mean}, std={self.std})")

    def __call__(self, image: Image.Image) -> torch.Tensor:
        import torchvision.transforms.functional as F

        x = F.to_tensor(image.convert("RGB"))
        height, width = x.shape[1:]
        scale = self.size / float(max(height, width))
        if scale != 1.0:
            new_h, new_w = round(height * scale), round(width * scale)
            x = F.resize(x, [new_h, new_w], interpolation=F.InterpolationMode.BICUBIC, antialias=True)
            pad_h, pad_w = self.size - new_h, self.size - new_w
            x = F.pad(x, [pad_w // 2, pad_h // 2, pad_w - pad_w // 2, pad_h - pad_h // 2], fill=self.fill)
        return F.normalize(x, self.mean, self.std)


def load_hpsv2(checkpoint: str, arch: str = "ViT-H-14", version: str = "v2.1", device: str = "auto",
               dtype: str = "auto") -> ClipBackbone:
    """An open_clip ``arch`` with an HPSv2 training checkpoint loaded strictly, and HPSv2's preprocessing."""
    import open_clip

    source = hpsv2_weights(version)
    dev = resolve_device(device)
    torch_dtype, int8 = resolve_dtype(dtype, dev)
    if arch not in open_clip.list_models():
        raise unavailable(source, f"unknown open_clip architecture '{arch}'")
    try:
        state = _read_state_dict(Path(checkpoint))
    except ModelUnavailableError as exc:
        raise unavailable(source, str(exc).split(". ")[0]) from None
    try:
        model = open_clip.create_model(arch, pretrained=None, device="cpu")
    except Exception as exc:  # a broken architecture config
        raise unavailable(source, f"cannot build open_clip {arch}: {type(exc).__name__}: {exc}") from None
    if "logit_scale" in state and state["logit_scale"].ndim != model.logit_scale.ndim:
        state["logit_scale"] = state["logit_scale"].reshape(model.logit_scale.shape)
    try:
        result = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        first = next((ln.strip() for ln in str(exc).splitlines() if "size mismatch" in ln), str(exc)[:160])
        raise unavailable(source, f"'{checkpoint}' does not fit open_clip {arch}: {first}") from None
    missing = list(result.missing_keys)
    if missing or result.unexpected_keys:
        detail = f"{len(missing)} missing (e.g. {missing[:1]}), {len(result.unexpected_keys)} unexpected " \
                 f"(e.g. {list(result.unexpected_keys)[:1]})"
        raise unavailable(source, f"'{checkpoint}' does not fit open_clip {arch}: {detail}")
    tokenizer = open_clip.get_tokenizer(arch)
    transform = HpsResizeMaxSize(_image_size(model))
    model_id = f"hpsv2:{checkpoint}|arch={arch}"
    return OpenClipBackbone(model, tokenizer, transform, model_id, dev, torch_dtype, int8,
                            _open_clip_token_counter(tokenizer))


def _image_size(model: Any) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)
