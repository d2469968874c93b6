"""DINOv2 image encoder for reference similarity (Oquab et al., 2023).

Loaded with transformers from a hub id (``facebook/dinov2-small`` by default, from the local HF
cache when offline) or a folder saved with ``save_pretrained``. The embedding is the CLS token
after the final layer norm (``pooler_output``), L2-normalised, so a cosine is a dot product.
Like the CLIP loader, a missing model is a :class:`ModelUnavailableError` that says how to
provide it; nothing is substituted.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any

import torch
from PIL import Image

from gencritic.errors import ModelUnavailableError
from gencritic.models.defaults import DEFAULT_DINO_MODEL
from gencritic.models.device import resolve_device
from gencritic.models.loader import hub_offline


class DinoEncoder:
    """A loaded DINOv2 model and its image processor; thread-safe encode."""

    def __init__(self, model: Any, processor: Any, model_id: str, device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.processor = processor
        self.model_id = model_id
        self.device = device
        self.lock = threading.Lock()
        self.encode_count = 0

    @property
    def cache_namespace(self) -> str:
        cfg = self.processor.to_dict()
        keep = {k: cfg.get(k) for k in ("size", "crop_size", "do_center_crop", "image_mean", "image_std", "resample")}
        pid = hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()[:16]
        return f"dinov2-cls|{self.model_id}|{pid}|fp32|{self.device.type}"

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        return self.processor(images=image, return_tensors="pt")["pixel_values"][0]

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) preprocessed -> (N, D) unit CLS embeddings, float32 on CPU."""
        with self.lock:
            self.encode_count += int(pixels.shape[0])
            out = self.model(pixel_values=pixels.to(self.device, torch.float32))
            cls = out.pooler_output.float()
            return (cls / cls.norm(dim=-1, keepdim=True).clamp_min(1e-12)).cpu()


def load_dino(spec: str = DEFAULT_DINO_MODEL, device: str = "auto") -> DinoEncoder:
    """Load a DINOv2 model by hub id or local folder, or raise an actionable error."""
    from transformers import AutoImageProcessor, Dinov2Model

    dev = resolve_device(device)
    try:
        model = Dinov2Model.from_pretrained(spec, local_files_only=hub_offline())
        processor = AutoImageProcessor.from_pretrained(spec, local_files_only=hub_offline())
    except (OSError, ValueError) as exc:
        reason = " ".join(str(exc).split("\n")[0].split())[:200]
        raise ModelUnavailableError(
            f"cannot load DINOv2 model '{spec}': {reason}. Pass dino:model=/path/to/folder (saved with "
            f"save_pretrained, with preprocessor_config.json) or place '{spec}' in the Hugging Face cache "
            f"(HF_HOME) from a machine with internet access.") from None
    return DinoEncoder(model, processor, spec, dev)
