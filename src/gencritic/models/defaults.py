"""The models used when none is named, as plain strings.

Why a module of its own: command-line help, metric metadata (``gencritic metrics``) and
option defaults need these names, and importing them from the loaders would import torch and
transformers, which made ``gencritic --help`` take seconds (tests/test_startup.py).
"""

from __future__ import annotations

DEFAULT_CLIP_MODEL = "openai/clip-vit-base-patch32"
DEFAULT_DINO_MODEL = "facebook/dinov2-small"

# Human-preference scorers (gencritic.models.preference loads them)
PICKSCORE_MODEL = "yuvalkirstain/PickScore_v1"
PICKSCORE_PROCESSOR = "laion/CLIP-ViT-H-14-laion2B-s32B-b79K"
HPSV2_FILES = {"v2.0": "HPS_v2_compressed.pt", "v2.1": "HPS_v2.1_compressed.pt"}
HPSV2_REPO = "xswu/HPSv2"

# Vision-language judges (gencritic.models.vlm loads them)
DEFAULT_VLM_MODEL = "Qwen/Qwen2-VL-2B-Instruct"
VLM_MODEL_ENV = "GENCRITIC_VLM_MODEL"
VLM_MAX_SIDE = 448  # the resolution the speed target names; views are 512² and come down to 448²


def default_vlm_spec() -> str:
    """``$GENCRITIC_VLM_MODEL``, else :data:`DEFAULT_VLM_MODEL`: what every judge uses unless told."""
    import os

    return os.environ.get(VLM_MODEL_ENV, "").strip() or DEFAULT_VLM_MODEL
