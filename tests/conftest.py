"""Shared fixtures: tiny random CLIP models saved to disk and loaded back through the public
loader, small images of every awkward kind, and the path to ../shared/data when present."""

from __future__ import annotations

import os

# Tests never touch the network: huggingface_hub reads this once at import, so set it first.
# (Without it, a "weights absent" check waits on connection retries instead of failing fast.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pytest
from PIL import Image

if TYPE_CHECKING:
    import torch

    from tests.fake_csm import FakeCsm

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
TOKENIZER_DIR = SHARED_DATA / "clip-vit-b32-tokenizer"


def installed_blender() -> str | None:
    """Blender for the tests: GENCRITIC_BLENDER, the checkout's .venv-blender, or a blender binary."""
    import shutil

    if os.environ.get("GENCRITIC_BLENDER"):
        return os.environ["GENCRITIC_BLENDER"]
    local = ROOT / ".venv-blender" / "bin" / "python"
    return str(local) if local.exists() else shutil.which("blender")


@pytest.fixture()
def blender(monkeypatch: pytest.MonkeyPatch) -> str:
    """Blender's executable, set as GENCRITIC_BLENDER; skip cleanly where it is not installed."""
    exe = installed_blender()
    if exe is None:
        pytest.skip("Blender not installed (bash scripts/setup.sh --with-blender)")
    monkeypatch.setenv("GENCRITIC_BLENDER", exe)
    return exe


# meshes-small files whose OBJ names a material library (used by its faces) that the data set does
# not ship: loading them fails naming it unless untextured drawing is allowed
MESHES_WITHOUT_THEIR_MTL = {"capsule.obj": "capsule.mtl", "ico4uv.obj": "ico4uv.mtl",
                            "quadknot.obj": "./quadknot.obj.mtl"}


def shared_data(name: str) -> Path:
    """Path of a folder under ../shared/data, or skip the test cleanly when it is absent."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"../shared/data/{name} not present")
    return path


def hf_features(output: object) -> torch.Tensor:
    """The projected embeddings from ``CLIPModel.get_image_features``/``get_text_features``:
    a tensor in transformers 4.x, a model output whose ``pooler_output`` holds them in 5.x."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    return output.pooler_output  # type: ignore[attr-defined, no-any-return]


def _write_char_tokenizer(folder: Path) -> int:
    """A character-level CLIP BPE vocabulary (no merges) for when the real tokenizer is absent."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    for c in chars:
        vocab[c + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return len(vocab)


def build_tiny_hf_clip(folder: Path, seed: int = 0, max_positions: int = 77) -> Path:
    """A tiny random transformers CLIP, saved with save_pretrained (model, tokenizer, processor)."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    if TOKENIZER_DIR.exists():
        tokenizer = CLIPTokenizerFast.from_pretrained(TOKENIZER_DIR)
        vocab_size = len(tokenizer)
    else:
        tok_dir = folder / "_tok"
        tok_dir.mkdir(exist_ok=True)
        vocab_size = _write_char_tokenizer(tok_dir)
        from transformers import CLIPTokenizer

        tokenizer = CLIPTokenizer(str(tok_dir / "vocab.json"), str(tok_dir / "merges.txt"))
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config={"vocab_size": vocab_size, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": max_positions,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
                     "pad_token_id": tokenizer.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    model = CLIPModel(config).eval()
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


# Widths are multiples of 64 with 64-wide heads and QuickGELU, because that is what the
# OpenAI checkpoint format implies (heads = width // 64): the same weights then rebuild
# identically from a bare OpenAI-format state dict (Long-CLIP checkpoints are that format).
TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 16,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 64},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2},
}


def build_tiny_open_clip(folder: Path, name: str = "gencritic-tiny-test", seed: int = 0,
                         context_length: int = 77) -> tuple[str, Path]:
    """Register a tiny open_clip architecture and save random weights for it; returns (name, ckpt)."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(json.dumps(TINY_OPEN_CLIP_CONFIG))
    cfg["text_cfg"]["context_length"] = context_length
    cfg_path = folder / f"{name}.json"
    cfg_path.write_text(json.dumps(cfg))
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None)
    ckpt = folder / f"{name}.pt"
    torch.save(model.state_dict(), ckpt)
    return name, ckpt


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_hf_clip(tmp_path_factory.mktemp("tiny_clip"))


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny_open_clip"))


def make_image(path: Path, color: tuple[int, int, int] = (200, 30, 30), size: int = 48, mode: str = "RGB") -> Path:
    """A small image with a coloured square on a contrasting field (not uniform, so encoders vary)."""
    rng = np.random.default_rng(abs(hash((color, size))) % 2**32)
    arr = np.full((size, size, 3), 255 - np.array(color), dtype=np.uint8)
    q = size // 4
    arr[q:3 * q, q:3 * q] = color
    arr = np.clip(arr.astype(int) + rng.integers(-10, 10, arr.shape), 0, 255).astype(np.uint8)
    img = Image.fromarray(arr, "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)
    return path


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    """Six images with sidecar prompts."""
    folder = tmp_path / "images"
    colors = {"red": (220, 20, 20), "green": (20, 200, 40), "blue": (20, 40, 220), "yellow": (230, 220, 30),
              "purple": (140, 30, 160), "orange": (240, 140, 20)}
    for name, color in colors.items():
        make_image(folder / f"{name}.png", color)
        (folder / f"{name}.txt").write_text(f"a {name} square")
    return folder


@pytest.fixture()
def no_cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture()
def fake() -> Iterator[FakeCsm]:
    """A fake CSM.ai server on 127.0.0.1 for the generate tests (tests/fake_csm.py)."""

    from tests.fake_csm import FakeCsm

    server = FakeCsm().start()
    yield server
    server.stop()
