"""ImageReward as a training backbone: BLIP's image-text fusion feature, frozen or fine-tuned.

ImageReward's reward MLP reads one vector per (image, prompt) pair: the [CLS] output of the
BLIP text encoder that attends to every image token. That vector is what ``gencritic train
--backbone imagereward`` learns from (AAPMT trains its metric transformer on it). This module
loads the checkpoint through :func:`gencritic.models.imagereward.load_imagereward` (the same
strict key mapping the ``imagereward`` score uses), drops nothing, and adds:

* :meth:`FusionBackbone.encode`: fusion features of PIL images + prompts, in float32;
* :func:`fusion_features`: the same, cached by content (image sha256 + prompt) under a
  namespace that holds the checkpoint's sha256, so a second training run never runs the
  backbone, and any change to the weights (or a fine-tuned copy) misses;
* fine-tuning: :meth:`FusionBackbone.set_trainable` unfreezes the last N layers of the fusion
  (text) encoder; the vision tower stays frozen, as in ImageReward's own training, where the
  lower layers are fixed. Their weights travel in the head folder (``backbone.safetensors``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from gencritic.cache import EmbeddingCache
from gencritic.hashing import sha256_file
from gencritic.models.imagereward import MAX_TEXT_TOKENS, ImageRewardModel, load_imagereward

FINETUNED_FILE = "backbone.safetensors"
FEATURE_KIND = "irfusion"


def is_imagereward_checkpoint(path: str | Path) -> bool:
    """True when ``path`` is a checkpoint file in ImageReward.pt's layout (``blip.visual_encoder.*``
    and the reward MLP); read memory-mapped, so a 1.7 GB file costs no copy."""
    p = Path(path).expanduser()
    if not p.is_file() or p.suffix not in (".pt", ".pth", ".bin"):
        return False
    try:
        state = torch.load(str(p), map_location="cpu", weights_only=True, mmap=True)
    except Exception:
        return False
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    keys = state.keys() if isinstance(state, dict) else ()
    return any(str(k).startswith("blip.visual_encoder.") for k in keys) and "mlp.layers.0.weight" in keys


class FusionBackbone:
    """ImageReward without its reward MLP, in float32, for features and fine-tuning.

    The weights load on first use: the cache namespace needs only file hashes and the feature
    width only med_config.json, so a run whose features are all cached never loads the model."""

    def __init__(self, checkpoint: str, med_config: str, tokenizer: str, device: str = "cpu",
                 finetuned: dict[str, torch.Tensor] | None = None) -> None:
        from gencritic.models.device import resolve_device
        from gencritic.models.imagereward import read_med_config

        self.checkpoint, self.med_config, self.tokenizer_source = checkpoint, med_config, tokenizer
        self.device_name = device
        self.device = resolve_device(device)
        self.med = read_med_config(Path(med_config))
        self.checkpoint_sha256 = sha256_file(Path(checkpoint))
        self._model: ImageRewardModel | None = None
        self._lock = threading.Lock()
        self.finetuned_sha256: str | None = None
        self.finetuned_blocks = 0
        self._pending = finetuned or None
        if finetuned:
            self.finetuned_sha256 = state_sha256(finetuned)
            self.finetuned_blocks = _blocks_in(finetuned)
        self.pairs_encoded = 0  # (image, prompt) pairs run through the backbone (tests, benchmarks)

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def _load(self) -> ImageRewardModel:
        with self._lock:
            if self._model is None:
                scorer = load_imagereward(self.checkpoint, self.med_config, self.tokenizer_source,
                                          device=self.device_name, dtype="fp32")
                model = scorer.model
                model.requires_grad_(False)
                self._tokenizer, self._transform = scorer.tokenizer, scorer.transform
                self._model = model
                if self._pending:
                    self._apply(self._pending)
                    self._pending = None
            return self._model

    @property
    def model(self) -> ImageRewardModel:
        return self._model if self._model is not None else self._load()

    @property
    def tokenizer(self) -> Any:
        self._load()
        return self._tokenizer

    @property
    def transform(self) -> Any:
        self._load()
        return self._transform

    # -- identity ----------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return int(self.med["hidden_size"])

    @property
    def n_blocks(self) -> int:
        return int(self.med["num_hidden_layers"])

    @property
    def model_id(self) -> str:
        return f"imagereward:{self.checkpoint}"

    @property
    def cache_namespace(self) -> str:
        """Everything that changes the features: weights (base and fine-tuned), config, tokenizer
        and the device type (CUDA kernels round differently from CPU ones)."""
        med = sha256_file(Path(self.med_config))[:16]
        ft = self.finetuned_sha256[:16] if self.finetuned_sha256 else "base"
        return (f"irfusion|{self.checkpoint_sha256[:16]}|med={med}|tok={self.tokenizer_source}|"
                f"ft={ft}|len={MAX_TEXT_TOKENS}|fp32|{self.device.type}")

    # -- inputs ------------------------------------------------------------------------------
    def pixels(self, images: Sequence[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform(im.convert("RGB")) for im in images])

    def tokens(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self.tokenizer(list(prompts), padding="max_length", truncation=True, max_length=MAX_TEXT_TOKENS,
                             return_tensors="pt")
        return tok["input_ids"], tok["attention_mask"]

    # -- features ----------------------------------------------------------------------------
    def vision(self, pixels: torch.Tensor) -> torch.Tensor:
        """The (frozen) vision tower's tokens; never tracks gradients."""
        with torch.no_grad():
            return self.model.vision(pixel_values=pixels.to(self.device)).last_hidden_state  # type: ignore[no-any-return]

    def features(self, pixels: torch.Tensor, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(N, dim) fusion features; gradients flow into the unfrozen text layers, if any."""
        self.pairs_encoded += int(ids.shape[0])
        return self.model.fusion(pixels, ids.to(self.device), mask.to(self.device),
                                 image_embeds=self.vision(pixels)).float()

    def encode(self, images: Sequence[Image.Image], prompts: Sequence[str]) -> np.ndarray:
        """Fusion features of (image, prompt) pairs, float32 on the CPU."""
        self.model.eval()
        with torch.no_grad():
            return self.features(self.pixels(images), *self.tokens(prompts)).cpu().numpy().astype(np.float32)

    # -- fine-tuning -------------------------------------------------------------------------
    def set_trainable(self, n_blocks: int) -> list[torch.nn.Parameter]:
        """Unfreeze the last ``n_blocks`` layers of the fusion encoder; return their parameters."""
        if not 0 <= n_blocks <= self.n_blocks:
            raise ValueError(f"the fusion encoder has {self.n_blocks} blocks; cannot fine-tune {n_blocks}")
        self.model.requires_grad_(False)
        self.finetuned_blocks = n_blocks
        params: list[torch.nn.Parameter] = []
        for layer in list(self.model.text.encoder.layer)[self.n_blocks - n_blocks:]:
            layer.requires_grad_(True)
            params += list(layer.parameters())
        return params

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The fine-tuned layers' weights, named as in ``model.text`` (what ``backbone.safetensors`` holds)."""
        first = self.n_blocks - self.finetuned_blocks
        prefixes = tuple(f"encoder.layer.{i}." for i in range(first, self.n_blocks))
        return {k: v.detach().contiguous().cpu() for k, v in self.model.text.state_dict().items()
                if k.startswith(prefixes)}

    def load_trainable(self, state: dict[str, torch.Tensor]) -> None:
        """Put fine-tuned layers (from :meth:`trainable_state`) over the base weights, strictly."""
        self._apply(state)
        self.finetuned_sha256 = state_sha256(state)
        self.finetuned_blocks = _blocks_in(state)

    def _apply(self, state: dict[str, torch.Tensor]) -> None:
        own = self.model.text.state_dict()
        unknown = [k for k in state if k not in own]
        if unknown:
            raise ValueError(f"fine-tuned weights name layers this backbone lacks (e.g. {unknown[0]})")
        for k, v in state.items():
            if own[k].shape != v.shape:
                raise ValueError(f"fine-tuned weight {k} has shape {tuple(v.shape)}, backbone {tuple(own[k].shape)}")
        self.model.text.load_state_dict(state, strict=False)


def _blocks_in(state: dict[str, torch.Tensor]) -> int:
    return len({k.split(".")[2] for k in state if k.startswith("encoder.layer.")})


def state_sha256(state: dict[str, torch.Tensor]) -> str:
    """A content hash of a state dict (names, shapes and bytes, in name order)."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().contiguous().cpu()
        h.update(k.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def pair_key(image_sha256: str, prompt: str, namespace: str) -> str:
    """Cache key of one (image, prompt) pair: the fusion feature depends on both."""
    return EmbeddingCache.key(hashlib.sha256(f"{image_sha256}\n{prompt}".encode()).hexdigest(), namespace,
                              FEATURE_KIND)


def fusion_features(backbone: FusionBackbone, cache: EmbeddingCache, image_shas: Sequence[str],
                    prompts: Sequence[str], image: Callable[[int], Image.Image], batch_size: int = 32
                    ) -> list[np.ndarray | str]:
    """Per pair: its fusion feature (from ``cache``, else computed and stored), or why it has none.

    A batch that fails is retried one pair at a time, so one unreadable image costs only its row."""
    keys = [pair_key(s, p, backbone.cache_namespace) for s, p in zip(image_shas, prompts, strict=True)]
    found = cache.get_many(keys)
    out: list[np.ndarray | str] = [found.get(k, "") for k in keys]
    todo = [i for i, k in enumerate(keys) if k not in found]

    def run(idx: list[int]) -> None:
        vecs = backbone.encode([image(i) for i in idx], [prompts[i] for i in idx])
        cache.put_many((keys[i], v) for i, v in zip(idx, vecs, strict=True))
        for i, v in zip(idx, vecs, strict=True):
            out[i] = v

    for start in range(0, len(todo), batch_size):
        chunk = todo[start:start + batch_size]
        try:
            run(chunk)
        except Exception:
            for i in chunk:
                try:
                    run([i])
                except Exception as exc:
                    out[i] = f"cannot compute ImageReward features: {exc}"
    return out


def load_finetuned(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return dict(load_file(str(folder / FINETUNED_FILE)))


def backbone_identity(backbone: FusionBackbone) -> dict[str, Any]:
    """What a head card records about its ImageReward backbone."""
    return {"kind": "imagereward", "checkpoint": backbone.checkpoint, "sha256": backbone.checkpoint_sha256,
            "med_config": backbone.med_config, "tokenizer": backbone.tokenizer_source, "dim": backbone.dim,
            "fusion_blocks": backbone.n_blocks}
