"""How long does training the multi-task head on ImageReward features take, and what does the
backbone cost?

The model is ImageReward.pt's full-size architecture (BLIP ViT-L/16 + the BERT-base fusion
encoder + reward MLP) with random weights (:func:`benchmarks._models.build_imagereward`),
loaded through gencritic's real ImageReward loader. Images are small (``--size``, 64 px by
default: a ViT-L/16 sees 16 patches instead of 196; every weight matrix is full size, so the
text side costs what it costs at 224 px) and the rating set is synthetic (3 ratings, 4 images
per prompt). ``gencritic.agreement.train.train`` runs as ``gencritic train --backbone imagereward
--head transformer`` would:

* run 1, cold cache: backbone load + fusion features of every item (the backbone) + training
  of the metric transformer (per epoch) + evaluation;
* run 2, same data, new process state (a fresh model pool): every feature comes from the
  cache, the backbone is never loaded.

    python benchmarks/bench_train.py [--n 3000] [--size 64] [--epochs 20] [--work DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks._models import BENCH_WORDS, build_imagereward  # noqa: E402


def rated_set(folder: Path, n: int, size: int, seed: int = 0) -> Path:
    """n images (4 per prompt) whose three ratings follow what they show."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        g = i // 4
        side = int(rng.integers(size // 8, size))
        colour = rng.integers(0, 255, 3)
        arr = np.full((size, size, 3), 255 - colour, np.uint8)
        o = (size - side) // 2
        arr[o:o + side, o:o + side] = colour
        path = folder / f"{i}.png"
        if not path.exists():
            Image.fromarray(arr).save(path)
        words = [BENCH_WORDS[(g * 7 + k) % len(BENCH_WORDS)] for k in range(4)]
        rows.append({"image": path.name, "prompt": f"a photo of {' '.join(words)} {g}",
                     "mos_quality": side / size * 5, "mos_align": float(colour.mean()) / 51,
                     "mos_aesthetic": float(rng.normal(3, 1))})
    path = folder / "ratings.csv"
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path


class Timers:
    """Wall time spent inside wrapped functions (the benchmark's instrument, not the product's)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, label: str) -> None:
        fn = getattr(owner, name)

        def timed(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t

        setattr(owner, name, timed)

    def take(self) -> dict[str, float]:
        out, self.seconds = self.seconds, {}
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=3000)
    ap.add_argument("--size", type=int, default=64, help="image side in pixels (ViT-L/16 patches: (size/16)^2)")
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=32, help="backbone batch")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "gencritic-bench-train")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--head-n", type=int, default=3000, help="items for the head-alone epoch timing")
    ap.add_argument("--finetune-n", type=int, default=0, help="also time fine-tuning (--finetune-blocks) on this "
                                                              "many items, 2 epochs")
    ap.add_argument("--finetune-blocks", type=int, default=2)
    args = ap.parse_args()

    import torch

    import gencritic.agreement.train as train_mod
    from gencritic.agreement.train import TrainOptions, train
    from gencritic.models.imagereward_backbone import FusionBackbone
    from gencritic.models.loader import ModelPool

    t = time.perf_counter()
    ckpt = build_imagereward(args.work / f"imagereward_{args.size}px", args.size)
    build_s = time.perf_counter() - t
    data = rated_set(args.work / f"data_{args.n}_{args.size}", args.n, args.size)
    cache = args.work / f"cache_{args.n}_{args.size}_{int(time.time())}"
    timers = Timers()
    timers.wrap(FusionBackbone, "_load", "backbone_load")
    timers.wrap(FusionBackbone, "encode", "backbone_features")
    timers.wrap(train_mod, "fit_head", "fit")
    opts = TrainOptions(model=str(ckpt), tokenizer=str(ckpt.parent), backbone="imagereward", head="transformer",
                        epochs=args.epochs, patience=args.epochs, bootstrap=1000, cache_dir=cache,
                        embed_batch_size=args.batch_size, device="cpu")
    runs = []
    for label in ("cold cache", "warm cache"):
        pool = ModelPool("cpu")
        t = time.perf_counter()
        result = train(data, args.work / f"head_{label.split()[0]}", opts, pool=pool)
        total = time.perf_counter() - t
        parts = timers.take()
        backbone = next(v for k, v in pool._models.items() if k[0] == "imagereward-fusion")
        epochs = int(result.card["epochs_run"])
        run = {"run": label, "total_s": total, "backbone_load_s": parts.get("backbone_load", 0.0),
               "backbone_features_s": parts.get("backbone_features", 0.0), "fit_s": parts.get("fit", 0.0),
               "epochs": epochs, "pairs_encoded": backbone.pairs_encoded, "backbone_loaded": backbone.loaded,
               "test_srcc": {k: v.get("srcc") for k, v in result.card["test_metrics"].items()}}
        # encode() loads the model on first use, so its time holds the load
        run["backbone_s"] = max(run["backbone_features_s"], run["backbone_load_s"])
        run["backbone_features_s"] = run["backbone_s"] - run["backbone_load_s"]
        run["per_epoch_s"] = run["fit_s"] / max(epochs, 1)
        run["backbone_share"] = run["backbone_s"] / total
        run["other_s"] = total - run["backbone_s"] - run["fit_s"]
        runs.append(run)
    print(f"ImageReward full-size architecture (random weights), {args.size}px images, N={args.n}, "
          f"{torch.get_num_threads()} torch threads; checkpoint built in {build_s:.1f}s")
    print(f"{'run':<11} {'total':>8} {'backbone':>9} {'(load)':>7} {'share':>6} {'fit':>7} {'/epoch':>7} "
          f"{'other':>6} {'pairs run':>9}")
    for r in runs:
        print(f"{r['run']:<11} {r['total_s']:>7.1f}s {r['backbone_s']:>8.1f}s {r['backbone_load_s']:>6.1f}s "
              f"{r['backbone_share']:>6.1%} {r['fit_s']:>6.1f}s {r['per_epoch_s']:>6.2f}s {r['other_s']:>5.1f}s "
              f"{r['pairs_encoded']:>9}")
    cold = runs[0]
    per_pair = cold["backbone_features_s"] / max(cold["pairs_encoded"], 1)
    print(f"backbone: {per_pair * 1000:.0f} ms per (image, prompt) pair (load excluded) -> "
          f"{per_pair * 3000 / 60:.1f} min for 3,000 pairs (linear extrapolation)")
    head = head_epoch_at(args.head_n, 768, args.epochs)
    print(f"head alone on {args.head_n} items of 768-d fusion features (3 tasks, transformer, CPU, 1 thread as "
          f"train uses): {head:.2f} s per epoch")
    finetune: dict[str, float] = {}
    if args.finetune_n:
        import gencritic.agreement.imagereward_train as ir_train

        timers.wrap(ir_train, "fit_finetune", "finetune")
        ft_data = rated_set(args.work / f"data_{args.finetune_n}_{args.size}", args.finetune_n, args.size)
        ft_opts = TrainOptions(**{**opts.__dict__, "finetune_blocks": args.finetune_blocks, "epochs": 2, "patience": 2})
        result = train(ft_data, args.work / "head_ft", ft_opts, pool=ModelPool("cpu"))
        parts = timers.take()
        finetune = {"items": args.finetune_n, "blocks": args.finetune_blocks, "epochs": result.card["epochs_run"],
                    "fit_s": parts["finetune"], "per_epoch_s": parts["finetune"] / result.card["epochs_run"]}
        print(f"fine-tuning the last {args.finetune_blocks} fusion blocks with the head, {args.finetune_n} items: "
              f"{finetune['per_epoch_s']:.1f} s per epoch (backbone forward every epoch, backward through "
              f"{args.finetune_blocks} blocks) -> {finetune['per_epoch_s'] / args.finetune_n * 3000 / 60:.0f} min per "
              f"epoch at 3,000 items (linear extrapolation)")
    if args.json:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                         "head_epoch_s_at_head_n": head, "finetune": finetune}, indent=2))


def head_epoch_at(n: int, dim: int, epochs: int) -> float:
    """Seconds per epoch of the metric transformer on ``n`` items of ``dim``-wide features, through
    the same ``fit_head`` train runs (features synthetic: the cost does not depend on them)."""
    from gencritic.agreement.splits import group_split
    from gencritic.agreement.train import FeatureSet, TrainOptions, fit_head, head_config

    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = np.stack([x[:, :8].sum(1), x[:, 8:16].sum(1), x[:, 16:24].sum(1)], 1)
    feats = FeatureSet(image=x, text=None, scores=np.zeros((n, 0), np.float32), score_columns=[], ok=np.ones(n, bool),
                       errors=[None] * n, backbone="synthetic", backbone_namespace="synthetic")
    opts = TrainOptions(head="transformer", epochs=epochs, patience=epochs)
    split = group_split([f"g{i // 4}" for i in range(n)], 0.2, 0.1, 0)
    t = time.perf_counter()
    fit = fit_head(head_config(opts, feats, 3), feats, (y - y.mean(0)) / y.std(0), split, opts, np.zeros(0),
                   np.ones(0))
    return (time.perf_counter() - t) / len(fit.train_loss)


if __name__ == "__main__":
    main()
