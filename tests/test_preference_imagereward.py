"""ImageReward from its own checkpoint format, against a hand-written BLIP forward.

The checkpoint is built here key by key in ImageReward.pt's layout (``blip.visual_encoder.*``
from BLIP's vit.py, ``blip.text_encoder.*`` from its med.py, ``mlp.layers.{0,2,4,6,7}``), tiny
and random, with a med_config.json and a WordPiece vocabulary beside it. The reference below
is written from those modules' published forward passes with plain torch ops, independently
of the transformers BLIP classes the loader uses.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

try:  # tests/ may or may not be a package in this tree
    from tests.conftest import make_image
except ImportError:  # pragma: no cover
    from conftest import make_image  # type: ignore[no-redef]
from gencritic.errors import ModelUnavailableError
from gencritic.items import Item
from gencritic.models.imagereward import IMAGEREWARD_MEAN, IMAGEREWARD_STD, load_imagereward
from gencritic.models.loader import ModelPool
from gencritic.scoring import score

V_WIDTH, V_DEPTH, PATCH, IMG = 64, 2, 8, 32  # 1 head of 64, as BLIP's width/64 rule gives
T_WIDTH, T_HEADS, T_LAYERS, T_INTER, T_MAXPOS = 32, 2, 2, 64, 40
WORDS = ["a", "red", "blue", "square", "on", "yellow", "noise", "in", "wide", "frame", "cat", "dog", "the"]
MED_CONFIG = {"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": T_WIDTH, "intermediate_size": T_INTER,
              "layer_norm_eps": 1e-12, "max_position_embeddings": T_MAXPOS, "model_type": "bert",
              "num_attention_heads": T_HEADS, "num_hidden_layers": T_LAYERS, "pad_token_id": 0, "type_vocab_size": 2,
              "encoder_width": V_WIDTH, "add_cross_attention": True}


def _build(folder: Path, seed: int = 0) -> tuple[dict[str, torch.Tensor], Path]:
    gen = torch.Generator().manual_seed(seed)

    def rnd(*shape: int, std: float = 0.2) -> torch.Tensor:
        return std * torch.randn(*shape, generator=gen)

    def ln(prefix: str, width: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": 1 + rnd(width, std=0.1), f"{prefix}.bias": rnd(width, std=0.1)}

    def lin(prefix: str, n_in: int, n_out: int) -> dict[str, torch.Tensor]:
        return {f"{prefix}.weight": rnd(n_out, n_in, std=1 / math.sqrt(n_in)), f"{prefix}.bias": rnd(n_out, std=0.1)}

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    med = dict(MED_CONFIG, vocab_size=len(vocab) + 2)  # + BLIP's [DEC] and [ENC]
    (folder / "med_config.json").write_text(json.dumps(med))

    s: dict[str, torch.Tensor] = {}
    v = "blip.visual_encoder."
    s[v + "cls_token"] = rnd(1, 1, V_WIDTH)
    s[v + "pos_embed"] = rnd(1, (IMG // PATCH) ** 2 + 1, V_WIDTH)
    s[v + "patch_embed.proj.weight"] = rnd(V_WIDTH, 3, PATCH, PATCH, std=0.05)
    s[v + "patch_embed.proj.bias"] = rnd(V_WIDTH, std=0.1)
    for i in range(V_DEPTH):
        b = f"{v}blocks.{i}."
        s |= ln(b + "norm1", V_WIDTH) | ln(b + "norm2", V_WIDTH)
        s |= lin(b + "attn.qkv", V_WIDTH, 3 * V_WIDTH) | lin(b + "attn.proj", V_WIDTH, V_WIDTH)
        s |= lin(b + "mlp.fc1", V_WIDTH, 4 * V_WIDTH) | lin(b + "mlp.fc2", 4 * V_WIDTH, V_WIDTH)
    s |= ln(v + "norm", V_WIDTH)
    t = "blip.text_encoder."
    s[t + "embeddings.word_embeddings.weight"] = rnd(med["vocab_size"], T_WIDTH, std=0.5)
    s[t + "embeddings.position_embeddings.weight"] = rnd(T_MAXPOS, T_WIDTH, std=0.5)
    s[t + "embeddings.position_ids"] = torch.arange(T_MAXPOS)[None]
    s |= ln(t + "embeddings.LayerNorm", T_WIDTH)
    for i in range(T_LAYERS):
        b = f"{t}encoder.layer.{i}."
        for att, kv_width in (("attention", T_WIDTH), ("crossattention", V_WIDTH)):
            s |= lin(f"{b}{att}.self.query", T_WIDTH, T_WIDTH)
            s |= lin(f"{b}{att}.self.key", kv_width, T_WIDTH) | lin(f"{b}{att}.self.value", kv_width, T_WIDTH)
            s |= lin(f"{b}{att}.output.dense", T_WIDTH, T_WIDTH) | ln(f"{b}{att}.output.LayerNorm", T_WIDTH)
        s |= lin(b + "intermediate.dense", T_WIDTH, T_INTER)
        s |= lin(b + "output.dense", T_INTER, T_WIDTH) | ln(b + "output.LayerNorm", T_WIDTH)
    # BLIP_Pretrain also holds projection heads that ImageReward.score never uses
    s |= lin("blip.vision_proj", V_WIDTH, 16) | lin("blip.text_proj", T_WIDTH, 16)
    for idx, (n_in, n_out) in zip((0, 2, 4, 6, 7), [(T_WIDTH, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)],
                                  strict=True):
        s |= lin(f"mlp.layers.{idx}", n_in, n_out)
    ckpt = folder / "ImageReward.pt"
    torch.save(s, ckpt)
    return s, ckpt


@pytest.fixture(scope="module")
def tiny_ir(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Path]:
    return _build(tmp_path_factory.mktemp("imagereward"))


# --- reference: BLIP vit.py + med.py + ImageReward.score, in plain torch ---------------------------


def _vit(s: dict[str, torch.Tensor], pixels: torch.Tensor) -> torch.Tensor:
    p = "blip.visual_encoder."
    x = F.conv2d(pixels, s[p + "patch_embed.proj.weight"], s[p + "patch_embed.proj.bias"], stride=PATCH)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([s[p + "cls_token"].expand(x.shape[0], -1, -1), x], dim=1) + s[p + "pos_embed"]
    heads = V_WIDTH // 64
    for i in range(V_DEPTH):
        b = f"{p}blocks.{i}."
        h = F.layer_norm(x, (V_WIDTH,), s[b + "norm1.weight"], s[b + "norm1.bias"], eps=1e-6)
        B, N, C = h.shape
        qkv = F.linear(h, s[b + "attn.qkv.weight"], s[b + "attn.qkv.bias"]).reshape(B, N, 3, heads, C // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        att = ((q @ k.transpose(-2, -1)) * (C // heads) ** -0.5).softmax(-1)
        h = (att @ v).transpose(1, 2).reshape(B, N, C)
        x = x + F.linear(h, s[b + "attn.proj.weight"], s[b + "attn.proj.bias"])
        h = F.layer_norm(x, (V_WIDTH,), s[b + "norm2.weight"], s[b + "norm2.bias"], eps=1e-6)
        h = F.linear(F.gelu(F.linear(h, s[b + "mlp.fc1.weight"], s[b + "mlp.fc1.bias"])),
                     s[b + "mlp.fc2.weight"], s[b + "mlp.fc2.bias"])
        x = x + h
    return F.layer_norm(x, (V_WIDTH,), s[p + "norm.weight"], s[p + "norm.bias"], eps=1e-6)


def _attend(s: dict[str, torch.Tensor], pre: str, hidden: torch.Tensor, context: torch.Tensor,
            mask: torch.Tensor) -> torch.Tensor:
    def split(x: torch.Tensor) -> torch.Tensor:
        return x.view(x.shape[0], x.shape[1], T_HEADS, T_WIDTH // T_HEADS).permute(0, 2, 1, 3)

    q = split(F.linear(hidden, s[pre + "self.query.weight"], s[pre + "self.query.bias"]))
    k = split(F.linear(context, s[pre + "self.key.weight"], s[pre + "self.key.bias"]))
    v = split(F.linear(context, s[pre + "self.value.weight"], s[pre + "self.value.bias"]))
    scores = q @ k.transpose(-1, -2) / math.sqrt(T_WIDTH // T_HEADS) + mask
    ctx = (scores.softmax(-1) @ v).permute(0, 2, 1, 3).reshape(hidden.shape)
    out = F.linear(ctx, s[pre + "output.dense.weight"], s[pre + "output.dense.bias"])
    return F.layer_norm(out + hidden, (T_WIDTH,), s[pre + "output.LayerNorm.weight"],
                        s[pre + "output.LayerNorm.bias"], eps=1e-12)


def _reward(s: dict[str, torch.Tensor], pixels: torch.Tensor, ids: torch.Tensor, attn: torch.Tensor) -> torch.Tensor:
    image = _vit(s, pixels)
    t = "blip.text_encoder."
    x = s[t + "embeddings.word_embeddings.weight"][ids] + s[t + "embeddings.position_embeddings.weight"][:ids.shape[1]]
    x = F.layer_norm(x, (T_WIDTH,), s[t + "embeddings.LayerNorm.weight"], s[t + "embeddings.LayerNorm.bias"], eps=1e-12)
    self_mask = (1.0 - attn[:, None, None, :].float()) * torch.finfo(torch.float32).min
    no_mask = torch.zeros(1)
    for i in range(T_LAYERS):
        b = f"{t}encoder.layer.{i}."
        x = _attend(s, b + "attention.", x, x, self_mask)
        x = _attend(s, b + "crossattention.", x, image, no_mask)
        h = F.gelu(F.linear(x, s[b + "intermediate.dense.weight"], s[b + "intermediate.dense.bias"]))
        h = F.linear(h, s[b + "output.dense.weight"], s[b + "output.dense.bias"])
        x = F.layer_norm(h + x, (T_WIDTH,), s[b + "output.LayerNorm.weight"], s[b + "output.LayerNorm.bias"], eps=1e-12)
    z = x[:, 0, :]
    for idx in (0, 2, 4, 6, 7):
        z = F.linear(z, s[f"mlp.layers.{idx}.weight"], s[f"mlp.layers.{idx}.bias"])
    return ((z - IMAGEREWARD_MEAN) / IMAGEREWARD_STD)[:, 0]


def _pixels(image: Image.Image) -> torch.Tensor:
    """ImageReward's _transform(n_px): shortest side to n_px (bicubic), centre crop, CLIP normalisation."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose([Resize(IMG, interpolation=InterpolationMode.BICUBIC), CenterCrop(IMG), ToTensor(),
                    Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])(
        image.convert("RGB"))


@torch.no_grad()
def test_imagereward_matches_hand_written_blip_forward(tiny_ir: tuple[dict[str, torch.Tensor], Path],
                                                       tmp_path: Path) -> None:
    from transformers import BertTokenizer

    state, ckpt = tiny_ir
    prompts = ["a red square", "a blue square on yellow", "the cat on the dog in a wide frame " * 4]
    items = [Item(f"i{k}", "image", make_image(tmp_path / f"{k}.png", c), prompt=p)
             for k, (c, p) in enumerate(zip([(220, 20, 20), (20, 40, 220), (30, 200, 40)], prompts, strict=True))]
    pool = ModelPool("cpu")
    run = score(items, metrics=f"imagereward:model={ckpt};tokenizer={ckpt.parent}", cache_dir=None, pool=pool,
                progress=False, device="cpu")
    assert all(r["success"] for r in run.rows), [r["error"] for r in run.rows]

    tok = BertTokenizer.from_pretrained(ckpt.parent)
    tok.add_special_tokens({"bos_token": "[DEC]"})
    tok.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    for item, row in zip(items, run.rows, strict=True):
        enc = tok(item.prompt, padding="max_length", truncation=True, max_length=35, return_tensors="pt")
        expected = float(_reward(state, _pixels(Image.open(item.path))[None], enc["input_ids"],
                                 enc["attention_mask"])[0])
        assert row["imagereward"] == pytest.approx(expected, abs=1e-4)
    values = [r["imagereward"] for r in run.rows]
    assert np.ptp(values) > 1e-3, "rewards should differ between pairs"
    scorer = pool.get(("imagereward", f"{ckpt}|{ckpt.parent / 'med_config.json'}|{ckpt.parent}"), lambda: None)
    assert scorer is not None and scorer.pair_count == 3


def test_imagereward_without_weights_is_unavailable(tiny_clip_dir: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GENCRITIC_IMAGEREWARD_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    items = [Item("a", "image", make_image(tmp_path / "a.png"), prompt="a red square")]
    run = score(items, metrics="clip,imagereward", model=str(tiny_clip_dir), cache_dir=None, progress=False,
                device="cpu")
    reason = run.summary["unavailable_metrics"]["imagereward"]
    assert "ImageReward" in reason and "GENCRITIC_IMAGEREWARD_MODEL" in reason and "ImageReward.pt" in reason
    assert "imagereward" not in run.rows[0]


def test_imagereward_rejects_foreign_checkpoints(tiny_ir: tuple[dict[str, torch.Tensor], Path], tmp_path: Path) -> None:
    state, ckpt = tiny_ir
    headless = tmp_path / "headless.pt"
    torch.save({k: v for k, v in state.items() if not k.startswith("mlp.")}, headless)
    with pytest.raises(ModelUnavailableError, match="reward head"):
        load_imagereward(str(headless), str(ckpt.parent / "med_config.json"), str(ckpt.parent), device="cpu")
    bad_cfg = tmp_path / "med_config.json"
    bad_cfg.write_text(json.dumps(dict(MED_CONFIG, vocab_size=len(WORDS) + 7, num_attention_heads=3,
                                       hidden_size=33)))
    with pytest.raises(ModelUnavailableError, match="does not fit"):
        load_imagereward(str(ckpt), str(bad_cfg), str(ckpt.parent), device="cpu")


@torch.no_grad()
def test_imagereward_int8_stays_close(tiny_ir: tuple[dict[str, torch.Tensor], Path], tmp_path: Path) -> None:
    """The CPU fast mode quantises both towers; on this tiny model the rewards move by little."""
    _, ckpt = tiny_ir
    args = (str(ckpt), str(ckpt.parent / "med_config.json"), str(ckpt.parent))
    fp32 = load_imagereward(*args, device="cpu", dtype="fp32")
    int8 = load_imagereward(*args, device="cpu", dtype="int8")
    assert int8.precision == "int8" and fp32.precision == "fp32"
    images = [Image.open(make_image(tmp_path / f"{k}.png", c)) for k, c in enumerate([(220, 20, 20), (20, 40, 220)])]
    prompts = ["a red square", "a blue square"]
    a, b = fp32.score(images, prompts), int8.score(images, prompts)
    assert not torch.equal(a, b)
    torch.testing.assert_close(b, a, atol=0.05, rtol=0.05)
