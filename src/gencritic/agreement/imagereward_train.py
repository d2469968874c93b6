"""Training on the ImageReward backbone: which backbone a run means, and fine-tuning its last blocks.

Frozen (``finetune_blocks=0``): the fusion features are computed once per (image, prompt) and
cached by content (:func:`gencritic.scoring.embed.embed_fusion`), then the head trains on them
exactly as on CLIP features. Fine-tuned: the last N layers of the fusion encoder train with the
head (their own learning rate, ``backbone_lr``), the vision tower stays frozen and runs under
``no_grad``; the best epoch on the content-isolated validation part is kept, for the head and
the layers together. The fine-tuned layers are then saved beside the head and every feature
used for evaluation is recomputed with them.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from gencritic.agreement.head_fit import FitResult, fit_epochs, masked_mse
from gencritic.agreement.splits import Split
from gencritic.errors import InputError, ModelUnavailableError
from gencritic.items import Item
from gencritic.models.assessment_heads import AssessmentHead

if TYPE_CHECKING:
    from gencritic.models.imagereward_backbone import FusionBackbone
    from gencritic.models.loader import ModelPool

BACKBONE_KINDS = ("auto", "clip", "imagereward")


def backbone_kind(opts: TrainSettings) -> str:
    """``clip`` or ``imagereward``: as asked, or (``auto``) imagereward for a checkpoint file in
    ImageReward.pt's layout, which the CLIP loader would refuse as an unrecognised layout."""
    if opts.backbone not in BACKBONE_KINDS:
        raise InputError(f"unknown --backbone {opts.backbone!r}: use {', '.join(BACKBONE_KINDS)}")
    if opts.backbone != "auto":
        return opts.backbone
    from gencritic.models.imagereward_backbone import is_imagereward_checkpoint

    return "imagereward" if is_imagereward_checkpoint(opts.model) else "clip"


def med_config_for(checkpoint: str, given: str | None) -> str:
    """med_config.json: the option, else the file beside the checkpoint (as the imagereward score finds it)."""
    path = Path(given).expanduser() if given else Path(checkpoint).expanduser().with_name("med_config.json")
    if not path.is_file():
        raise InputError(f"ImageReward needs its med_config.json: {path} not found; pass --med-config PATH "
                         f"(THUDM/ImageReward's med_config.json)")
    return str(path.resolve())


def tokenizer_for(given: str | None) -> str:
    import os

    return given or os.environ.get("GENCRITIC_IMAGEREWARD_TOKENIZER") or "bert-base-uncased"


def load_fusion_backbone(pool: ModelPool, checkpoint: str, med_config: str, tokenizer: str, device: str,
                         finetuned: dict[str, torch.Tensor] | None = None) -> FusionBackbone:
    """One FusionBackbone per (weights, device) in the run's pool; a fine-tuned one is never shared."""
    from gencritic.models.imagereward_backbone import FusionBackbone

    if not Path(checkpoint).expanduser().is_file():
        raise ModelUnavailableError(f"ImageReward checkpoint {checkpoint} not found: pass --model /path/to/ImageReward.pt")

    def make() -> FusionBackbone:
        return FusionBackbone(checkpoint, med_config, tokenizer, device=device, finetuned=finetuned)

    if finetuned is not None:  # a private copy ({} = base weights, about to be fine-tuned)
        return make()
    return pool.get(("imagereward-fusion", f"{checkpoint}|{med_config}|{tokenizer}|{device}"), make)  # type: ignore[no-any-return]


def _images_and_prompts(items: Sequence[Item]) -> tuple[list[Any], list[str]]:
    from gencritic.io.images import WHITE
    from gencritic.prepare import prepare_item

    views, prompts = [], []
    for item in items:
        prepared = prepare_item(item, WHITE, decode=False)
        if prepared.error is not None:  # cannot happen: these items produced features already
            raise RuntimeError(f"{item.item_id}: {prepared.error}")
        views.append(prepared.views[0])
        prompts.append(str(item.prompt))
    return views, prompts


class TrainSettings(Protocol):
    """The settings of :class:`gencritic.agreement.train.TrainOptions` read here."""

    backbone: str
    model: str
    epochs: int
    batch_size: int
    lr: float
    backbone_lr: float
    weight_decay: float
    patience: int
    seed: int
    finetune_blocks: int


def fit_finetune(head: AssessmentHead, backbone: FusionBackbone, items: Sequence[Item], y: np.ndarray,
                 split: Split, opts: TrainSettings, weights: torch.Tensor) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Train head + the last ``opts.finetune_blocks`` fusion layers; early-stop on ``split.val``.

    Returns the best epoch's fit and the fine-tuned layers' weights. Pixels are prepared once and
    kept in memory (3 x S x S float32 per item: 0.6 MB at ImageReward's 224 px)."""
    if backbone.device.type == "cuda":  # deterministic cuBLAS (train runs under use_deterministic_algorithms)
        import os

        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    baseline = copy.deepcopy(head).eval()
    params = backbone.set_trainable(opts.finetune_blocks)
    views, prompts = _images_and_prompts(items)
    pixels = backbone.pixels([v.image for v in views])
    ids, mask = backbone.tokens(prompts)
    y_all = torch.from_numpy(y.astype(np.float32))
    optim = torch.optim.AdamW([{"params": head.parameters(), "lr": opts.lr},
                               {"params": params, "lr": opts.backbone_lr}], weight_decay=opts.weight_decay)
    gen = torch.Generator().manual_seed(opts.seed)
    val_idx = torch.from_numpy(split.val if split.val.size else split.train)
    train_idx = torch.from_numpy(split.train)
    dev = backbone.device
    head.to(dev)

    def forward(idx: torch.Tensor) -> torch.Tensor:
        feats = backbone.features(pixels[idx], ids[idx], mask[idx])
        return head(feats, None, torch.zeros((int(idx.numel()), 0), device=dev))

    w = weights.to(dev)

    def step(positions: torch.Tensor) -> float:
        b = train_idx[positions]
        loss = masked_mse(forward(b), y_all[b].to(dev), w)
        optim.zero_grad(set_to_none=True)
        loss.backward()
        optim.step()
        return float(loss.detach()) * int(b.numel())

    def validate() -> float:
        total = 0.0
        for s in range(0, int(val_idx.numel()), opts.batch_size):
            b = val_idx[s:s + opts.batch_size]
            total += float(masked_mse(forward(b), y_all[b].to(dev), w)) * int(b.numel())
        return total / max(int(val_idx.numel()), 1)

    def set_training(on: bool) -> None:
        head.train(on)
        backbone.model.train(on)

    log = fit_epochs(int(train_idx.numel()), opts.epochs, opts.batch_size, opts.patience, gen, step, validate,
                     set_training, snapshot=lambda: (copy.deepcopy(head.state_dict()), backbone.trainable_state()))
    best_head, best_layers = log.best_state
    head.load_state_dict(best_head)
    backbone.load_trainable(best_layers)
    backbone.model.requires_grad_(False)
    head.cpu().eval()
    return FitResult(head=head, train_loss=log.train_loss, val_loss=log.val_loss, best_epoch=log.best_epoch,
                     baseline=baseline), best_layers
