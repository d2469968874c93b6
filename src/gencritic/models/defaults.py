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
