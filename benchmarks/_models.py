"""Full-size architectures with random weights (same FLOPs as the real ones), saved to disk
and loaded back through gencritic's public loader, as a user's local model would be."""

from __future__ import annotations

from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def build_vit_b32(folder: Path, seed: int = 0) -> Path:
    """openai/clip-vit-base-patch32's architecture (transformers' CLIPConfig defaults) with
    random weights, the real tokenizer when ../shared/data has it, and its preprocessing."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    if (folder / "config.json").exists():
        return folder
    tok_dir = SHARED / "clip-vit-b32-tokenizer"
    if not tok_dir.exists():
        raise SystemExit("benchmarks need ../shared/data/clip-vit-b32-tokenizer (the real CLIP tokenizer)")
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig()).eval()
    model.save_pretrained(folder)
    CLIPTokenizerFast.from_pretrained(tok_dir).save_pretrained(folder)
    CLIPImageProcessor.from_pretrained(tok_dir).save_pretrained(folder)
    return folder


IMAGEREWARD_VOCAB = 30522  # bert-base-uncased; BLIP adds [DEC] and [ENC]
BENCH_WORDS = ["a", "photo", "of", "cat", "dog", "red", "blue", "green", "square", "on", "the", "table", "in", "garden",
               "painting", "city", "night", "bright", "small", "large", "portrait", "landscape", "car", "tree"]


def build_imagereward(folder: Path, image_size: int = 224, seed: int = 0) -> Path:
    """ImageReward.pt's architecture at full size with random weights, in its own key layout:
    BLIP ViT-L/16 (width 1024, 24 blocks; ``image_size`` sets only the position table, so a
    smaller image keeps every weight matrix and costs fewer tokens), the BERT-base fusion encoder
    of med_config.json (768 wide, 12 blocks with cross-attention to the image, vocabulary 30,524)
    and the 5-layer reward MLP. A synthetic WordPiece vocabulary of bert-base-uncased's size
    stands in for the real one (no download here). Returns the checkpoint path."""
    import json
    import math

    import torch

    ckpt = folder / "ImageReward.pt"
    if ckpt.exists():
        return ckpt
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    vw, vd, patch, tw, tl, ti, tmax = 1024, 24, 16, 768, 12, 3072, 512
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *BENCH_WORDS]
    vocab += [f"tok{i}" for i in range(IMAGEREWARD_VOCAB - len(vocab))]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    med = {"architectures": ["BertModel"], "hidden_act": "gelu", "hidden_size": tw, "intermediate_size": ti,
           "layer_norm_eps": 1e-12, "max_position_embeddings": tmax, "model_type": "bert", "num_attention_heads": 12,
           "num_hidden_layers": tl, "pad_token_id": 0, "type_vocab_size": 2, "vocab_size": IMAGEREWARD_VOCAB + 2,
           "encoder_width": vw, "add_cross_attention": True}
    (folder / "med_config.json").write_text(json.dumps(med))

    def rnd(*shape: int, std: float = 0.02) -> torch.Tensor:
        return std * torch.randn(*shape, generator=gen)

    def ln(p: str, w: int) -> dict[str, torch.Tensor]:
        return {f"{p}.weight": torch.ones(w), f"{p}.bias": torch.zeros(w)}

    def lin(p: str, n_in: int, n_out: int) -> dict[str, torch.Tensor]:
        return {f"{p}.weight": rnd(n_out, n_in, std=1 / math.sqrt(n_in)), f"{p}.bias": torch.zeros(n_out)}

    s: dict[str, torch.Tensor] = {}
    v = "blip.visual_encoder."
    s[v + "cls_token"] = rnd(1, 1, vw)
    s[v + "pos_embed"] = rnd(1, (image_size // patch) ** 2 + 1, vw)
    s[v + "patch_embed.proj.weight"] = rnd(vw, 3, patch, patch)
    s[v + "patch_embed.proj.bias"] = torch.zeros(vw)
    for i in range(vd):
        b = f"{v}blocks.{i}."
        s |= ln(b + "norm1", vw) | ln(b + "norm2", vw)
        s |= lin(b + "attn.qkv", vw, 3 * vw) | lin(b + "attn.proj", vw, vw)
        s |= lin(b + "mlp.fc1", vw, 4 * vw) | lin(b + "mlp.fc2", 4 * vw, vw)
    s |= ln(v + "norm", vw)
    t = "blip.text_encoder."
    s[t + "embeddings.word_embeddings.weight"] = rnd(med["vocab_size"], tw)
    s[t + "embeddings.position_embeddings.weight"] = rnd(tmax, tw)
    s[t + "embeddings.position_ids"] = torch.arange(tmax)[None]
    s |= ln(t + "embeddings.LayerNorm", tw)
    for i in range(tl):
        b = f"{t}encoder.layer.{i}."
        for att, kv in (("attention", tw), ("crossattention", vw)):
            s |= lin(f"{b}{att}.self.query", tw, tw) | lin(f"{b}{att}.self.key", kv, tw)
            s |= lin(f"{b}{att}.self.value", kv, tw) | lin(f"{b}{att}.output.dense", tw, tw)
            s |= ln(f"{b}{att}.output.LayerNorm", tw)
        s |= lin(b + "intermediate.dense", tw, ti) | lin(b + "output.dense", ti, tw) | ln(b + "output.LayerNorm", tw)
    for idx, (n_in, n_out) in zip((0, 2, 4, 6, 7), [(tw, 1024), (1024, 128), (128, 64), (64, 16), (16, 1)],
                                  strict=True):
        s |= lin(f"mlp.layers.{idx}", n_in, n_out)
    torch.save(s, ckpt)
    return ckpt
