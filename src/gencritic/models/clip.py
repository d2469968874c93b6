"""CLIP-family backbones behind one small interface.

Two implementations: Hugging Face ``CLIPModel`` (hub ids, ``save_pretrained`` folders) and
open_clip (names + pretrained tags, hf-hub repos, OpenAI-format checkpoints whose text
context may be longer than 77, e.g. Long-CLIP's 248). Metrics only see
:class:`ClipBackbone`: preprocess an image, encode images, encode texts, count tokens.

Embeddings leave the backbone L2-normalised, in float32, on the CPU, because every CLIP
metric is a cosine and keeping one convention avoids a family of subtle bugs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from gencritic.io.resize import bicubic_resize
from gencritic.models.activations import speed_up_quick_gelu
from gencritic.models.cls_only import skip_unread_tokens, skip_unread_tokens_open_clip
from gencritic.models.device import dtype_name
from gencritic.models.int8 import Int8DynamicLinear, quantise_linears, quantise_patch_embedding
from gencritic.models.streams import cpu_streams, map_in_streams, split_evenly


def _normalise(x: torch.Tensor) -> torch.Tensor:
    x = x.float()
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


CPU_MICRO_BATCH = 16
"""Images per vision-tower call on CPU. ViT-B/32 activations at 16 images (800 tokens x 3072)
stay closer to cache than at 32 or 64; measured ~5-8% more images/s than 32 on a 2-core AVX2 CPU."""


def _standard_clip_preprocess(image: Image.Image, processor: Any) -> torch.Tensor | None:
    """HF's slow ``CLIPImageProcessor`` (shortest-edge bicubic resize, centre crop, rescale,
    normalise), step for step, without its per-call overhead: ~4x faster, and the tests
    assert identical output. Returns None for configurations it does not cover."""
    p = processor
    if _tensor_backend(p):
        return None  # its resize is torchvision's, not Pillow's: only HF's own call gives its pixels
    size = getattr(p, "size", None) or {}
    crop = getattr(p, "crop_size", None) or {}
    if not (getattr(p, "do_resize", False) and getattr(p, "do_center_crop", False) and getattr(p, "do_rescale", False)
            and getattr(p, "do_normalize", False) and set(size) == {"shortest_edge"}
            and int(getattr(p, "resample", -1)) == int(Image.Resampling.BICUBIC) and {"height", "width"} <= set(crop)):
        return None
    target = int(size["shortest_edge"])
    crop_h, crop_w = int(crop["height"]), int(crop["width"])
    width, height = image.size
    short, long = (width, height) if width <= height else (height, width)
    new_long = int(target * long / short)
    new_h, new_w = (new_long, target) if width <= height else (target, new_long)
    if new_h < crop_h or new_w < crop_w or min(width, height) < 4:
        return None  # HF pads (or mis-infers channels) here; let it do its own thing
    if image.mode != "RGB":
        image = image.convert("RGB")
    arr = bicubic_resize(image, (new_w, new_h))  # Pillow's, bit for bit; skips a marked uniform margin
    top, left = (new_h - crop_h) // 2, (new_w - crop_w) // 2
    chw = arr[top:top + crop_h, left:left + crop_w].transpose(2, 0, 1)
    table = _normalise_table(float(p.rescale_factor), tuple(p.image_mean), tuple(p.image_std))
    return torch.from_numpy(np.stack([table[c][chw[c]] for c in range(3)]))


def _tensor_backend(processor: Any) -> bool:
    """Whether the image processor resizes tensors with torchvision (transformers 4.x's ``...Fast``
    classes, and every processor of transformers 5) rather than PIL images with Pillow."""
    return type(processor).__name__.endswith("Fast") or any(
        "Torchvision" in cls.__name__ for cls in type(processor).__mro__)


@functools.lru_cache(maxsize=8)
def _normalise_table(rescale: float, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, 256) float32: HF's rescale-then-normalise of every uint8 value, per channel.

    The same float64 -> float32 steps as the processor, done once per value instead of once per
    pixel, so a lookup gives bit-identical output ~2.5x faster than the arithmetic.
    """
    scaled = (np.arange(256, dtype=np.float64) * rescale).astype(np.float32)[None, :]
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    return np.ascontiguousarray((scaled - m) / s)


class ClipBackbone(ABC):
    """A loaded CLIP-like dual encoder. Thread-safe for concurrent callers (one lock)."""

    model_id: str
    context_length: int
    device: torch.device
    dtype: torch.dtype
    int8: bool

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.image_encode_count = 0  # images pushed through the vision tower (tests assert on it)
        self.text_encode_count = 0

    #: submodules that make up the image tower (what ``int8`` quantises)
    vision_modules: tuple[str, ...] = ()
    #: the image tower's patchify convolution (int8 also turns it into an int8 matrix product)
    patch_embedding: str = ""

    def _place(self, model: Any, model_id: str, device: torch.device, dtype: torch.dtype, int8: bool) -> Any:
        """Record identity and put the model where it runs: eval mode, int8 (with QuickGELU folded
        into the int8 MLPs) or device/dtype, and the bit-identical in-place QuickGELU elsewhere
        (``models/activations.py``).

        int8 quantises the image tower only: that is where the compute is (8.7 GFLOP per
        ViT-B/32 image, every image), while texts are deduplicated and cached, so an fp32 text
        tower costs little, halves the score error and skips ~0.3 s of weight packing per load.
        """
        self.model_id = model_id
        self.device, self.dtype, self.int8 = device, dtype, int8
        model = model.eval()
        if int8:
            model = model.float()
            for name in self.vision_modules:
                speed_up_quick_gelu(model.get_submodule(name), make_linear=Int8DynamicLinear.from_linear)
            model = quantise_linears(model, only=self.vision_modules)
            if self.patch_embedding:
                quantise_patch_embedding(model, self.patch_embedding)
        speed_up_quick_gelu(model)  # whatever QuickGELU is left (all of them outside int8 towers)
        return model if int8 else model.to(device=device, dtype=dtype)

    # -- identity -----------------------------------------------------------------------------
    @property
    @abstractmethod
    def preprocess_config(self) -> dict[str, Any]:
        """What preprocessing does, as plain data; hashed into cache keys."""

    @functools.cached_property
    def preprocess_id(self) -> str:
        """Hashed once: the preprocessing is fixed at load, and this is asked for every image."""
        blob = json.dumps(self.preprocess_config, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    @property
    def precision(self) -> str:
        return dtype_name(self.dtype, self.int8)

    @property
    def cache_namespace(self) -> str:
        """Embeddings from this backbone are interchangeable only within this namespace."""
        return f"{self.model_id}|{self.preprocess_id}|{self.precision}|{self.device.type}"

    @property
    def embedding_dim(self) -> int | None:
        """Output size of the image tower, read from the model without running it (None when the
        model does not say)."""
        model: Any = getattr(self, "model", None)
        config = getattr(model, "config", None)
        if config is not None and getattr(config, "projection_dim", None):
            return int(config.projection_dim)
        visual = getattr(model, "visual", None)
        if visual is not None and getattr(visual, "output_dim", None):
            return int(visual.output_dim)
        proj = getattr(model, "text_projection", None)
        if isinstance(proj, torch.Tensor):
            return int(proj.shape[-1])
        return None

    @property
    @abstractmethod
    def logit_scale(self) -> float:
        """CLIP's learned temperature (exp of the stored log value), used by softmax-style metrics."""

    # -- work ---------------------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """RGB PIL image -> CHW float32 tensor on CPU. Pure; safe to call from worker threads."""

    @abstractmethod
    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor: ...

    @abstractmethod
    def _encode_tokens(self, texts: Sequence[str]) -> torch.Tensor: ...

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens the text needs, start/end tokens included (compare with ``context_length``)."""

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Batch of preprocessed images -> (N, D) unit vectors, float32 CPU."""
        with self.lock:
            self.image_encode_count += int(pixels.shape[0])

            def encode(part: slice) -> torch.Tensor:
                x = pixels[part].to(self.device, non_blocking=True)
                x = x.to(self.dtype) if not self.int8 else x.float()
                return _normalise(self._encode_pixels(x)).cpu()

            return self._in_parts(int(pixels.shape[0]), CPU_MICRO_BATCH, encode)

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Texts -> (N, D) unit vectors. Over-long texts are truncated (see ``truncation_report``)."""
        with self.lock:
            self.text_encode_count += len(texts)
            items = list(texts)

            def encode(part: slice) -> torch.Tensor:
                return _normalise(self._encode_tokens(items[part])).cpu()

            return self._in_parts(len(items), max(1, len(items)), encode)

    def _in_parts(self, n: int, cpu_part_size: int, encode: Callable[[slice], torch.Tensor]) -> torch.Tensor:
        """``encode`` over slices of ``n`` items, concatenated: on CPU parts of at most
        ``cpu_part_size`` split evenly over the encoder streams (``models/streams.py``), on a GPU
        one call for all."""
        on_cpu = self.device.type == "cpu"
        streams = cpu_streams() if on_cpu else 1
        parts = split_evenly(n, cpu_part_size if on_cpu else max(1, n), streams)
        out = map_in_streams(encode, parts, streams)
        return torch.cat(out) if len(out) != 1 else out[0]

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """:meth:`count_tokens` of each text."""
        return [self.count_tokens(t) for t in texts]

    def truncation_report(self, text: str) -> int:
        """How many tokens of ``text`` do not fit the context and will be cut (0 when it fits)."""
        return max(0, self.count_tokens(text) - self.context_length)


class HFClipBackbone(ClipBackbone):
    """transformers ``CLIPModel`` + its tokenizer and image processor."""

    vision_modules = ("vision_model", "visual_projection")
    patch_embedding = "vision_model.embeddings.patch_embedding"

    def __init__(self, model: Any, tokenizer: Any, image_processor: Any, model_id: str,
                 device: torch.device, dtype: torch.dtype, int8: bool) -> None:
        super().__init__()
        self.model = self._place(model, model_id, device, dtype, int8)
        skip_unread_tokens(self.model.vision_model)  # ~7% of ViT-B/32's work; see models/cls_only.py
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.context_length = int(self.model.config.text_config.max_position_embeddings)
        self._logit_scale = float(self.model.logit_scale.detach().float().exp().item())

    @property
    def preprocess_config(self) -> dict[str, Any]:
        cfg = self.image_processor.to_dict()
        out = {k: cfg.get(k) for k in ("size", "crop_size", "do_center_crop", "image_mean", "image_std",
                                       "resample", "do_resize", "do_rescale", "rescale_factor", "do_normalize",
                                       "do_convert_rgb")}
        if _tensor_backend(self.image_processor):  # other resize, other pixels: other cache entries
            out["backend"] = "torchvision"
        return out

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        fast = _standard_clip_preprocess(image, self.image_processor)
        if fast is not None:
            return fast
        out = self.image_processor(images=image, return_tensors="pt")
        return out["pixel_values"][0]

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        # Call the towers directly: identical to get_image_features in transformers 4.x and
        # immune to 5.x returning an output object instead of a tensor.
        vision = self.model.vision_model(pixel_values=pixels)
        return self.model.visual_projection(vision[1])

    def _encode_tokens(self, texts: Sequence[str]) -> torch.Tensor:
        tok = self.tokenizer(list(texts), padding=True, truncation=True, max_length=self.context_length,
                             return_tensors="pt")
        text = self.model.text_model(input_ids=tok["input_ids"].to(self.device),
                                     attention_mask=tok["attention_mask"].to(self.device))
        return self.model.text_projection(text[1])

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, truncation=False)["input_ids"])


class OpenClipBackbone(ClipBackbone):
    """An open_clip ``CLIP`` module with its tokenizer and eval transform."""

    vision_modules = ("visual",)
    patch_embedding = "visual.conv1"

    def __init__(self, model: Any, tokenizer: Callable[..., torch.Tensor], transform: Any, model_id: str,
                 device: torch.device, dtype: torch.dtype, int8: bool, count_tokens: Callable[[str], int]) -> None:
        super().__init__()
        self.model = self._place(model, model_id, device, dtype, int8)
        skip_unread_tokens_open_clip(self.model.visual)  # see models/cls_only.py
        self.tokenizer = tokenizer
        self.transform = transform
        self._count_tokens = count_tokens
        self.context_length = int(getattr(self.model, "context_length", 77))
        self._logit_scale = float(self.model.logit_scale.detach().float().exp().item())

    @property
    def preprocess_config(self) -> dict[str, Any]:
        return {"transform": repr(self.transform)}

    @property
    def logit_scale(self) -> float:
        return self._logit_scale

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.transform(image)

    def _encode_pixels(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.encode_image(pixels)

    def _encode_tokens(self, texts: Sequence[str]) -> torch.Tensor:
        tokens = self.tokenizer(list(texts), context_length=self.context_length).to(self.device)
        return self.model.encode_text(tokens)

    def count_tokens(self, text: str) -> int:
        return self._count_tokens(text)
