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
