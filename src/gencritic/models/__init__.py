"""The one place that loads weights. Every metric gets its models from here.

It owns: parsing what users pass (HF ids, local folders, safetensors/OpenAI checkpoints,
open_clip names and tags), device and dtype, sharing a loaded model between metrics, and
the single clear error a user sees when weights cannot be had.

The package's names are imported on first use (PEP 562): importing a light submodule such as
:mod:`gencritic.models.defaults` must not import torch, or every command's start-up pays for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from gencritic.models.defaults import DEFAULT_CLIP_MODEL

if TYPE_CHECKING:
    from gencritic.models.clip import ClipBackbone
    from gencritic.models.device import resolve_device, resolve_dtype
    from gencritic.models.loader import ModelPool, load_clip

_LAZY = {"ClipBackbone": "clip", "ModelPool": "loader", "load_clip": "loader", "resolve_device": "device",
         "resolve_dtype": "device"}

__all__ = ["DEFAULT_CLIP_MODEL", "ClipBackbone", "ModelPool", "load_clip", "resolve_device", "resolve_dtype"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gencritic.models' has no attribute {name!r}")
    return getattr(importlib.import_module(f"gencritic.models.{module}"), name)
