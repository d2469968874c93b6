"""The image tower's last layer for the class token only: same embeddings as the whole layer."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gencritic.models.cls_only import ClassTokenLastLayer, skip_unread_tokens
from gencritic.models.loader import ModelPool


def _pixels(n: int, size: int) -> torch.Tensor:
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_class_token_layer_matches_the_unmodified_model(tiny_clip_dir: Path) -> None:
    from transformers import CLIPModel

    reference = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    backbone = ModelPool("cpu", "fp32").clip(str(tiny_clip_dir))
    assert isinstance(backbone.model.vision_model.encoder.layers[-1], ClassTokenLastLayer)
    size = int(reference.config.vision_config.image_size)
    pixels = _pixels(5, size)
    with torch.inference_mode():
        expected = reference.vision_model(pixel_values=pixels)
        got = backbone.model.vision_model(pixel_values=pixels)
        expected_emb = reference.visual_projection(expected.pooler_output)
        expected_emb = expected_emb / expected_emb.norm(dim=-1, keepdim=True)
    assert got.last_hidden_state.shape[1] == 1  # the other tokens' rows were never computed
    torch.testing.assert_close(got.last_hidden_state[:, 0], expected.last_hidden_state[:, 0], rtol=0, atol=2e-6)
    torch.testing.assert_close(got.pooler_output, expected.pooler_output, rtol=0, atol=2e-6)
    torch.testing.assert_close(backbone.encode_images(pixels), expected_emb, rtol=0, atol=1e-6)


def test_masks_or_attention_weights_run_the_whole_layer(tiny_clip_dir: Path) -> None:
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(tiny_clip_dir, attn_implementation="eager").eval()
    original = model.vision_model.encoder.layers[-1]
    assert skip_unread_tokens(model.vision_model)
    assert skip_unread_tokens(model.vision_model)  # idempotent: not wrapped twice
    assert model.vision_model.encoder.layers[-1].layer is original
    size = int(model.config.vision_config.image_size)
    with torch.inference_mode():
        out = model.vision_model(pixel_values=_pixels(2, size), output_attentions=True)
    assert out.last_hidden_state.shape[1] > 1 and len(out.attentions) == len(model.vision_model.encoder.layers)


def test_a_tower_of_another_shape_is_left_alone() -> None:
    tower = torch.nn.Module()
    tower.encoder = torch.nn.Module()
    tower.encoder.layers = torch.nn.ModuleList([torch.nn.Linear(4, 4)])
    assert not skip_unread_tokens(tower)
    assert isinstance(tower.encoder.layers[-1], torch.nn.Linear)
    assert not skip_unread_tokens(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("dtype", ["int8"])
def test_int8_tower_still_agrees_with_fp32(tiny_clip_dir: Path, dtype: str) -> None:
    fp32 = ModelPool("cpu", "fp32").clip(str(tiny_clip_dir))
    quantised = ModelPool("cpu", dtype).clip(str(tiny_clip_dir))
    assert isinstance(quantised.model.vision_model.encoder.layers[-1], ClassTokenLastLayer)
    pixels = _pixels(6, int(fp32.model.config.vision_config.image_size))
    cos = (fp32.encode_images(pixels) * quantised.encode_images(pixels)).sum(-1)
    assert float(cos.min()) > 0.99


def test_open_clip_class_token_block_matches_the_unmodified_model(tiny_open_clip: tuple[str, Path]) -> None:
    import open_clip

    from gencritic.models.cls_only import ClassTokenLastBlock, skip_unread_tokens_open_clip

    name, ckpt = tiny_open_clip
    reference = open_clip.create_model(name, pretrained=str(ckpt)).eval()
    backbone = ModelPool("cpu", "fp32").clip(f"open_clip:{name}@{ckpt}")
    assert isinstance(backbone.model.visual.transformer.resblocks[-1], ClassTokenLastBlock)
    pixels = _pixels(5, int(reference.visual.image_size[0]))
    with torch.inference_mode():
        expected = reference.encode_image(pixels)
        expected = expected / expected.norm(dim=-1, keepdim=True)
    torch.testing.assert_close(backbone.encode_images(pixels), expected, rtol=0, atol=1e-6)
    reference.visual.pool_type = "avg"  # a mean over tokens needs every token: left alone
    assert not skip_unread_tokens_open_clip(reference.visual)
