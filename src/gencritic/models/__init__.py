"""The one place that loads weights. Every metric gets its models from here.

It owns: parsing what users pass (HF ids, local folders, safetensors/OpenAI checkpoints,
open_clip names and tags), device and dtype, sharing a loaded model between metrics, and
the single clear error a user sees when weights cannot be had.
"""

from gencritic.models.clip import ClipBackbone
from gencritic.models.device import resolve_device, resolve_dtype
from gencritic.models.loader import DEFAULT_CLIP_MODEL, ModelPool, load_clip

__all__ = ["DEFAULT_CLIP_MODEL", "ClipBackbone", "ModelPool", "load_clip", "resolve_device", "resolve_dtype"]
