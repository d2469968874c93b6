"""Long-caption metrics: Long-CLIP loading, SPECS, and chunked CLIP, each against raw model calls.

The Long-CLIP checkpoints are tiny OpenAI-format state dicts with a 248-position text
embedding, built here and loaded back through the public ``load_clip``; the references are
open_clip / transformers calls on the same weights, written out step by step (for the
Long-CLIP variant, its published encode_text: ``pe * mask1 + pe_res * mask2``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch

try:  # tests/ may or may not be a package in this tree
    from tests.conftest import make_image
except ImportError:  # pragma: no cover
    from conftest import make_image  # type: ignore[no-redef]
from gencritic.errors import InputError, ModelUnavailableError
from gencritic.items import Item
from gencritic.metrics.longcaption import (
    aggregate_chunk_cosines,
    chunk_caption,
    specs_from_cosine,
    split_sentences,
)
from gencritic.models.loader import ModelPool, fold_long_clip_positions, load_clip
from gencritic.scoring import score

LONG_CAPTION = (
    "A small red wooden toy car with four black wheels sits on a grey concrete floor. "
    "The paint on its roof is chipped in several places, showing pale wood underneath. "
    "Behind it, slightly out of focus, stands a blue plastic bucket with a yellow handle. "
    "Soft light from a window on the left casts a long shadow to the right of the car. "
    "A child's drawing of a green dinosaur is taped to the wall in the far background, "
    "and a few scattered building blocks lie near the bucket, one of them orange and one purple."
)


def _tiny_openai_state(context_length: int, seed: int, tmp: Path) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A tiny open_clip CLIP in the OpenAI layout (QuickGELU, 64-wide heads, as OpenAI/Long-CLIP use)."""
    name = f"gencritic-longclip-tiny-{context_length}"
    cfg = {"embed_dim": 16, "quick_gelu": True,
           "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8},
           "text_cfg": {"context_length": context_length, "vocab_size": 49408, "width": 64, "heads": 1, "layers": 2}}
    path = tmp / f"{name}.json"
    path.write_text(json.dumps(cfg))
    open_clip.add_model_config(path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, pretrained=None).eval()
    # Released OpenAI/Long-CLIP checkpoints hold fp16 weights, and their build_model (like open_clip's)
    # casts to fp16 before loading; round here so the reference model holds exactly what is loaded.
    state = {k: v.half().float() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    return model, {k: v.clone() for k, v in state.items()}


@pytest.fixture(scope="module")
def long_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    """Plain 248-position OpenAI-format checkpoint (a Long-CLIP after folding)."""
    tmp = tmp_path_factory.mktemp("longclip")
    model, state = _tiny_openai_state(248, 1, tmp)
    path = tmp / "longclip-tiny.pt"
    torch.save(state, path)
    return model, path


@pytest.fixture(scope="module")
def long_res_ckpt(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, dict[str, torch.Tensor], Path]:
    """Long-CLIP's own layout: positional_embedding + positional_embedding_res (both 248 rows)."""
    tmp = tmp_path_factory.mktemp("longclip_res")
    model, state = _tiny_openai_state(248, 2, tmp)
    gen = torch.Generator().manual_seed(3)
    state["positional_embedding_res"] = 0.5 * torch.randn(state["positional_embedding"].shape, generator=gen)
    path = tmp / "longclip-res-tiny.pt"
    torch.save(state, path)
    return model, state, path


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True)


def _longclip_encode_text(model: torch.nn.Module, state: dict[str, torch.Tensor], tokens: torch.Tensor) -> torch.Tensor:
    """Long-CLIP's published encode_text, written out: token + pe*mask1 + pe_res*mask2, causal transformer,
    ln_final, the EOT token's feature, text projection."""
    n = state["positional_embedding"].shape[0]
    mask1 = torch.zeros(n, 1)
    mask1[:20] = 1
    mask2 = torch.zeros(n, 1)
    mask2[20:] = 1
    x = model.token_embedding(tokens)
    x = x + state["positional_embedding"] * mask1 + state["positional_embedding_res"] * mask2
    x = model.transformer(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    x = x[torch.arange(x.shape[0]), tokens.argmax(dim=-1)] @ model.text_projection
    return _unit(x)


@torch.no_grad()
def test_248_token_checkpoint_keeps_long_captions(long_ckpt: tuple[torch.nn.Module, Path]) -> None:
    model, path = long_ckpt
    bb = load_clip(str(path), device="cpu")
    assert bb.context_length == 248
    n_tokens = bb.count_tokens(LONG_CAPTION)
    assert 77 < n_tokens <= 248, n_tokens
    assert bb.truncation_report(LONG_CAPTION) == 0

    emb = bb.encode_texts([LONG_CAPTION])[0]
    full = _unit(model.encode_text(open_clip.tokenize([LONG_CAPTION], context_length=248)))[0]
    torch.testing.assert_close(emb, full, atol=1e-5, rtol=1e-5)

    # what a 77-token CLIP would have seen: the first 77 tokens, EOT forced at the end
    tokens = open_clip.tokenize([LONG_CAPTION], context_length=248)
    cut = torch.zeros_like(tokens)
    cut[0, :77] = tokens[0, :77]
    cut[0, 76] = tokens.max()  # the EOT id is the largest in CLIP's vocabulary
    truncated = _unit(model.encode_text(cut))[0]
    assert float(emb @ truncated) < 0.999, "the tail of a long caption must change its embedding"


@torch.no_grad()
def test_long_clip_residual_positions_match_published_forward(
        long_res_ckpt: tuple[torch.nn.Module, dict[str, torch.Tensor], Path]) -> None:
    model, state, path = long_res_ckpt
    bb = load_clip(str(path), device="cpu")
    assert bb.context_length == 248
    texts = [LONG_CAPTION, "a red toy car"]
    ours = bb.encode_texts(texts)
    ref = _longclip_encode_text(model, state, open_clip.tokenize(texts, context_length=248))
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
    # and positional_embedding alone (ignoring the residual) would have been different
    plain = _unit(model.encode_text(open_clip.tokenize(texts, context_length=248)))
    assert float((ours[0] * plain[0]).sum()) < 0.9999


def test_fold_accepts_explicit_masks() -> None:
    gen = torch.Generator().manual_seed(0)
    pe, res = torch.randn(248, 8, generator=gen), torch.randn(248, 8, generator=gen)
    mask1 = torch.zeros(248, 1)
    mask1[:20] = 1
    implicit = fold_long_clip_positions({"positional_embedding": pe, "positional_embedding_res": res})
    explicit = fold_long_clip_positions({"positional_embedding": pe, "positional_embedding_res": res,
                                         "mask1": mask1, "mask2": 1 - mask1})
    expected = torch.cat([pe[:20], res[20:]])
    torch.testing.assert_close(implicit["positional_embedding"], expected)
    torch.testing.assert_close(explicit["positional_embedding"], expected)
    assert set(explicit) == {"positional_embedding"}


def test_specs_formula_by_hand() -> None:
    got = specs_from_cosine(np.array([-1.0, 0.0, 0.3, 1.0, np.nan]))
    np.testing.assert_allclose(got[:4], [0.0, 0.5, 0.65, 1.0])
    assert np.isnan(got[4])


@torch.no_grad()
def test_specs_and_longclip_against_raw_model(long_res_ckpt: tuple[torch.nn.Module, dict[str, torch.Tensor], Path],
                                              tmp_path: Path) -> None:
    model, state, path = long_res_ckpt
    prompts = [LONG_CAPTION, "a blue square on a yellow field"]
    items = [Item(f"i{k}", "image", make_image(tmp_path / f"{k}.png", color), prompt=p)
             for k, (color, p) in enumerate(zip([(220, 20, 20), (20, 40, 220)], prompts, strict=True))]
    pool = ModelPool("cpu")
    run = score(items, metrics=f"specs:model={path},longclip:model={path}", cache_dir=None, pool=pool,
                progress=False, device="cpu")
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]
    assert pool.clip(str(path)).image_encode_count == 2  # both metrics share one backbone

    from PIL import Image

    transform = open_clip.image_transform(32, is_train=False)
    pixels = torch.stack([transform(Image.open(i.path).convert("RGB")) for i in items])
    img = _unit(model.encode_image(pixels))
    txt = _longclip_encode_text(model, state, open_clip.tokenize(prompts, context_length=248))
    cos = (img * txt).sum(-1).double().numpy()
    got_specs = np.array([r["specs"] for r in run.rows])
    got_cos = np.array([r["longclip_score"] for r in run.rows])
    np.testing.assert_allclose(got_cos, cos, atol=1e-5)
    np.testing.assert_allclose(got_specs, np.maximum((cos + 1) / 2, 0), atol=1e-5)
    assert all(r["prompt_tokens_cut"] == 0 for r in run.rows)
    # the run's --model is used when it is a checkpoint file and no model= option is given
    again = score(items, metrics="longclip", model=str(path), cache_dir=None, pool=pool, progress=False, device="cpu")
    np.testing.assert_allclose([r["longclip_score"] for r in again.rows], cos, atol=1e-5)


def test_longclip_refuses_a_77_token_model(tmp_path: Path) -> None:
    _, state = _tiny_openai_state(77, 0, tmp_path)
    ckpt = tmp_path / "short.pt"
    torch.save(state, ckpt)
    items = [Item("a", "image", make_image(tmp_path / "a.png"), prompt="a red square")]
    with pytest.raises(InputError, match="248"):
        score(items, metrics=f"longclip:model={ckpt}", cache_dir=None, progress=False, device="cpu")


def test_longclip_without_weights_is_reported_unavailable(tiny_clip_dir: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENCRITIC_LONGCLIP_MODEL", raising=False)
    monkeypatch.delenv("GENCRITIC_SPECS_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = [Item("a", "image", make_image(tmp_path / "a.png"), prompt="a red square")]
    run = score(items, metrics="clip,longclip,specs", model=str(tiny_clip_dir), cache_dir=None, progress=False,
                device="cpu")
    unavailable = run.summary["unavailable_metrics"]
    assert set(unavailable) == {"longclip", "specs"}
    assert "GENCRITIC_LONGCLIP_MODEL" in unavailable["longclip"] and "Long-CLIP" in unavailable["longclip"]
    assert "GENCRITIC_SPECS_MODEL" in unavailable["specs"]
    assert "longclip_score" not in run.rows[0] and "specs" not in run.rows[0]
    with pytest.raises(ModelUnavailableError, match="longclip:model="):
        score(items, metrics="longclip", cache_dir=None, progress=False, device="cpu")
    monkeypatch.setenv("GENCRITIC_LONGCLIP_MODEL", str(tmp_path / "missing.pt"))
    with pytest.raises(ModelUnavailableError, match=r"missing\.pt"):
        score(items, metrics="longclip", cache_dir=None, progress=False, device="cpu")


# --- chunked CLIP -------------------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split()) + 2


def test_chunk_caption_fits_and_keeps_every_word() -> None:
    chunks = chunk_caption(LONG_CAPTION, _words, 20)
    assert len(chunks) > 1
    assert all(_words(c) <= 20 for c in chunks)
    assert " ".join(chunks).split() == LONG_CAPTION.split()
    assert chunk_caption("a red toy car.", _words, 20) == ["a red toy car."]
    assert chunk_caption("   ", _words, 20) == []
    one_long_sentence = " ".join(f"w{i}" for i in range(50))
    parts = chunk_caption(one_long_sentence, _words, 12)
    assert [len(p.split()) for p in parts] == [10] * 5
    assert split_sentences("One. Two!  Three?\nFour") == ["One.", "Two!", "Three?", "Four"]
    assert aggregate_chunk_cosines(np.array([0.1, 0.3, 0.2])) == pytest.approx((0.2, 0.1))


@torch.no_grad()
def test_clip_chunked_against_raw_transformers(tiny_clip_dir: Path, tmp_path: Path) -> None:
    from PIL import Image
    from transformers import CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    model = CLIPModel.from_pretrained(tiny_clip_dir).eval()
    tok = CLIPTokenizerFast.from_pretrained(tiny_clip_dir)
    proc = CLIPImageProcessor.from_pretrained(tiny_clip_dir)
    long_text = LONG_CAPTION + " " + LONG_CAPTION.replace("red", "green")
    assert len(tok(long_text)["input_ids"]) > 77
    prompts = [long_text, "a red square"]
    items = [Item(f"i{k}", "image", make_image(tmp_path / f"{k}.png", c), prompt=p)
             for k, (c, p) in enumerate(zip([(220, 20, 20), (20, 200, 40)], prompts, strict=True))]
    pool = ModelPool("cpu")
    run = score(items, metrics="clip_chunked,clip", model=str(tiny_clip_dir), cache_dir=None, pool=pool,
                progress=False, device="cpu")
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]

    def count(t: str) -> int:
        return len(tok(t)["input_ids"])

    pixels = proc(images=[Image.open(i.path).convert("RGB") for i in items], return_tensors="pt")["pixel_values"]
    img = _unit(model.visual_projection(model.vision_model(pixel_values=pixels)[1]))
    for k, prompt in enumerate(prompts):
        chunks = chunk_caption(prompt, count, 77)
        enc = tok(chunks, padding=True, return_tensors="pt")
        txt = _unit(model.text_projection(model.text_model(**enc)[1]))
        cos = (txt @ img[k]).double().numpy()
        assert run.rows[k]["clip_chunked"] == pytest.approx(cos.mean(), abs=1e-5)
        assert run.rows[k]["clip_chunked_min"] == pytest.approx(cos.min(), abs=1e-5)
        assert run.rows[k]["clip_chunked_chunks"] == len(chunks)
    assert run.rows[0]["clip_chunked_chunks"] > 1
    # a caption that fits is one chunk, so chunked == plain CLIP score
    assert run.rows[1]["clip_chunked"] == pytest.approx(run.rows[1]["clip_score"], abs=1e-6)
    assert pool.clip(str(tiny_clip_dir)).image_encode_count == 2
