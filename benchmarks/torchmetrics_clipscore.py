"""The script a user writes to CLIP-score a folder with torchmetrics: load the model, loop over
batches, compute. Run as its own process by bench_startup.py (whole-process timing).

    python benchmarks/torchmetrics_clipscore.py MODEL_DIR MANIFEST.csv [--batch 32]
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchmetrics.multimodal.clip_score import CLIPScore
from transformers import CLIPModel, CLIPProcessor


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model")
    parser.add_argument("manifest", type=Path)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    model = CLIPModel.from_pretrained(args.model).eval()
    processor = CLIPProcessor.from_pretrained(args.model)
    metric = CLIPScore(model_name_or_path=lambda: (model, processor))
    with open(args.manifest, newline="") as fh:
        rows = list(csv.DictReader(fh))
    with torch.inference_mode():
        for start in range(0, len(rows), args.batch):
            batch = rows[start:start + args.batch]
            images = [torch.from_numpy(np.array(Image.open(args.manifest.parent / r["image"]).convert("RGB")))
                      .permute(2, 0, 1) for r in batch]
            metric.update(images, [r["prompt"] for r in batch])
        print(f"CLIPScore over {len(rows)} images: {float(metric.compute()):.4f}")


if __name__ == "__main__":
    main()
