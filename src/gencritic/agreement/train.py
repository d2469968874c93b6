"""``train``: fit an assessment head on frozen backbone features, reproducibly.

Steps: load the human-rated dataset; compute CLIP image (+ text) embeddings through the same
cached path the metrics use (so the ``learned`` metric later sees identical features); add
the scores of any other registered metrics (``with_metrics``) through
:func:`gencritic.scoring.score`; split by content group (prompts never straddle
train/val/test); train with masked MSE on standardised ratings (a task's missing rating is
masked, not imputed); stop early on the validation loss; evaluate the best epoch and the
untrained head on the test part; save weights (safetensors), a JSON card and the loss PNG.

Determinism: seeded parameter init and batch order, ``torch.use_deterministic_algorithms``
and a fixed thread count during training (both restored afterwards), features in float32
from the deterministic cache. Two runs with the same data and seed give identical weights.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import logging
import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gencritic.agreement.bootstrap import RESAMPLE_CHOICES, agreement, bootstrap_counts
from gencritic.agreement.head_fit import FitResult, fit_epochs, masked_mse
from gencritic.agreement.imagereward_train import (
    backbone_kind,
    load_fusion_backbone,
    med_config_for,
    tokenizer_for,
)
from gencritic.agreement.splits import Split, group_kfold, group_split, straddling_groups
from gencritic.agreement.transfer import ratings_matrix
from gencritic.datasets.human import HumanDataset, load_human_dataset
from gencritic.errors import InputError
from gencritic.models.assessment_heads import HEAD_KINDS, AssessmentHead, save_head
from gencritic.models.loader import DEFAULT_CLIP_MODEL, ModelPool
from gencritic.scoring.embed import embed

if TYPE_CHECKING:
    from gencritic.models.imagereward_backbone import FusionBackbone

log = logging.getLogger("gencritic")


@dataclass
class TrainOptions:
    """Every setting of a training run (all recorded in the card)."""

    head: str = "mlp"
    tasks: Sequence[str] | None = None  # rating columns; None = every rating of the dataset
    model: str = DEFAULT_CLIP_MODEL
    with_metrics: Sequence[str] = ()
    use_text: bool = True
    name: str = ""  # column prefix of the learned metric; "" = "learned_<out folder name>"
    epochs: int = 300
    batch_size: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 30
    hidden: int = 256
    d_model: int = 64
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    seed: int = 0
    split_seed: int = 0
    test_fraction: float = 0.2
    val_fraction: float = 0.1
    folds: int = 0
    threads: int = 1
    bootstrap: int = 1000
    device: str = "cpu"
    embed_batch_size: int = 32
    cache_dir: Path | None = None
    use_cache: bool = True
    backbone: str = "auto"  # clip, imagereward, or auto (imagereward for an ImageReward.pt file)
    med_config: str | None = None  # ImageReward's med_config.json; None: beside the checkpoint
    tokenizer: str | None = None  # ImageReward's BERT tokenizer; None: $GENCRITIC_IMAGEREWARD_TOKENIZER or bert-base-uncased
    finetune_blocks: int = 0  # ImageReward: last N fusion layers trained with the head (0 = frozen)
    backbone_lr: float = 1e-5
    task_weights: Sequence[float] | None = None  # loss weight per task (None: all 1)
    init: Path | None = None  # start from this trained head (transfer)
    resample: str = "auto"  # test intervals: groups (whole prompts) when items share them, or items


@dataclass
class FeatureSet:
    """Per item: image/text embeddings, other metrics' scores; ``ok`` marks usable items."""

    image: np.ndarray
    text: np.ndarray | None
    scores: np.ndarray
    score_columns: list[str]
    ok: np.ndarray
    errors: list[str | None]
    backbone: str
    backbone_namespace: str
    backbone_info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainResult:
    card: dict[str, Any]
    out_dir: Path | None
    head: AssessmentHead
    folds: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# features


def extract_features(ds: HumanDataset, opts: TrainOptions, pool: ModelPool) -> FeatureSet:
    """Backbone embeddings plus other metrics' primary scores for every item of ``ds``."""
    from gencritic.cache import default_cache_dir

    kinds = {i.kind for i in ds.items}
    if kinds - {"image"}:
        raise InputError(f"train works on image datasets; this one has {', '.join(sorted(kinds))} items")
    cache_dir = (opts.cache_dir or default_cache_dir()) if opts.use_cache else None
    if backbone_kind(opts) == "imagereward":
        return _imagereward_features(ds, opts, pool, cache_dir)
    backbone = pool.clip(opts.model)
    embedded = embed(ds.items, backbone, cache_dir, opts.embed_batch_size, opts.use_text)
    image, text, errors = embedded.image, embedded.text, embedded.errors
    if opts.use_text:
        for i, item in enumerate(ds.items):
            if errors[i] is None and not (item.prompt and item.prompt.strip()):
                errors[i] = "no prompt (train with --no-text to use image features only)"
    scores = np.zeros((len(ds.items), 0), dtype=np.float32)
    score_columns: list[str] = []
    if opts.with_metrics:
        from gencritic.metrics.registry import create_metric
        from gencritic.scoring import ScoreOptions, score

        score_columns = [create_metric(s, opts.model).info.columns[0] for s in opts.with_metrics]
        run = score(ds.items, options=ScoreOptions(metrics=list(opts.with_metrics), model=opts.model,
                                                   cache_dir=cache_dir, progress=False, device=opts.device), pool=pool)
        by_id: dict[str, dict[str, Any]] = {str(r["item_id"]): r for r in run.rows}
        scores = np.full((len(ds.items), len(score_columns)), np.nan, dtype=np.float32)
        for i, item in enumerate(ds.items):
            row: dict[str, Any] = by_id.get(item.item_id, {})
            for j, col in enumerate(score_columns):
                v = row.get(col)
                scores[i, j] = np.nan if v is None else float(v)
            if not row.get("success", False) and errors[i] is None:
                errors[i] = f"metric scores failed: {row.get('error') or 'not scored'}"
    ok = np.array([e is None for e in errors]) & np.isfinite(image).all(1) & np.isfinite(scores).all(1)
    if text is not None:
        ok &= np.isfinite(text).all(1)
    return FeatureSet(image=image, text=text, scores=scores, score_columns=score_columns, ok=ok, errors=errors,
                      backbone=opts.model, backbone_namespace=backbone.cache_namespace,
                      backbone_info={"kind": "clip", "model": opts.model, "sha256": backbone_sha256(opts.model)})


def backbone_sha256(spec: str) -> str | None:
    """sha256 of a local backbone's weights (a file; or a folder's weight files, by name and
    content); None for a hub id, whose cache namespace the card records instead."""
    from gencritic.hashing import sha256_file

    path = Path(spec).expanduser()
    if path.is_file():
        return sha256_file(path)
    if path.is_dir():
        import hashlib

        h = hashlib.sha256()
        for f in sorted(path.rglob("*")):
            if f.is_file() and f.suffix in (".safetensors", ".bin", ".pt", ".pth", ".json", ".txt"):
                h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
        return h.hexdigest()
    return None


def _imagereward_features(ds: HumanDataset, opts: TrainOptions, pool: ModelPool, cache_dir: Path | None,
                          finetuned: dict[str, torch.Tensor] | None = None) -> FeatureSet:
    """ImageReward fusion features (image + prompt in one vector), cached by content."""
    from gencritic.models.imagereward_backbone import backbone_identity
    from gencritic.scoring.embed import embed_fusion

    if opts.with_metrics:
        raise InputError("--with-metrics is not available with --backbone imagereward: its fusion feature "
                         "already reads image and prompt together; train without --with-metrics")
    backbone = ir_backbone(opts, pool, finetuned)
    embedded = embed_fusion(ds.items, backbone, cache_dir, opts.embed_batch_size)
    ok = np.array([e is None for e in embedded.errors]) & np.isfinite(embedded.image).all(1)
    return FeatureSet(image=embedded.image, text=None, scores=np.zeros((len(ds.items), 0), np.float32),
                      score_columns=[], ok=ok, errors=embedded.errors, backbone=opts.model,
                      backbone_namespace=backbone.cache_namespace, backbone_info=backbone_identity(backbone))


def ir_backbone(opts: TrainOptions, pool: ModelPool, finetuned: dict[str, torch.Tensor] | None = None
                ) -> FusionBackbone:
    return load_fusion_backbone(pool, opts.model, med_config_for(opts.model, opts.med_config),
                                tokenizer_for(opts.tokenizer), opts.device, finetuned)


# ---------------------------------------------------------------------------------------------
# fitting (pure apart from torch)


@contextlib.contextmanager
def deterministic_torch(seed: int, threads: int) -> Iterator[None]:
    """Seeded, deterministic kernels and a fixed thread count; the previous state is restored."""
    was_det = torch.are_deterministic_algorithms_enabled()
    was_threads = torch.get_num_threads()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(max(1, threads))
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_det)
        torch.set_num_threads(was_threads)


def task_weight_tensor(opts: TrainOptions, n_tasks: int) -> torch.Tensor:
    """The per-task loss weights, checked: one finite, non-negative weight per task, not all 0."""
    if opts.task_weights is None:
        return torch.ones(n_tasks)
    w = [float(v) for v in opts.task_weights]
    if len(w) != n_tasks:
        raise InputError(f"--task-weights gives {len(w)} weight(s) for {n_tasks} task(s); give one per task, in "
                         f"--tasks order")
    if not all(math.isfinite(v) and v >= 0 for v in w) or not any(w):
        raise InputError(f"--task-weights {','.join(map(str, w))}: weights must be finite, at least 0, not all 0")
    return torch.tensor(w, dtype=torch.float32)


def head_config(opts: TrainOptions, feats: FeatureSet, n_tasks: int) -> dict[str, Any]:
    return {"kind": opts.head, "image_dim": int(feats.image.shape[1]),
            "text_dim": int(feats.text.shape[1]) if feats.text is not None else 0,
            "n_scores": len(feats.score_columns), "n_tasks": n_tasks, "hidden": opts.hidden,
            "d_model": opts.d_model, "layers": opts.layers, "heads": opts.heads, "dropout": opts.dropout}


def _tensors(feats: FeatureSet, idx: np.ndarray, score_mean: np.ndarray, score_std: np.ndarray
             ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
    image = torch.from_numpy(feats.image[idx])
    text = torch.from_numpy(feats.text[idx]) if feats.text is not None else None
    scores = torch.from_numpy(((feats.scores[idx] - score_mean) / score_std).astype(np.float32))
    return image, text, scores


def new_head(config: dict[str, Any], init: AssessmentHead | None, feats: FeatureSet, split: Split,
             score_mean: np.ndarray, score_std: np.ndarray) -> AssessmentHead:
    """A fresh head standardising inputs with the training split's statistics, or a copy of
    ``init`` (transfer: its weights and its input standardisation are kept, so what it learned
    still applies)."""
    if init is not None:
        return copy.deepcopy(init).train()
    head = AssessmentHead(config)
    tr = _tensors(feats, split.train, score_mean, score_std)
    head.set_feature_stats(tr[0], tr[1])
    return head


def fit_head(config: dict[str, Any], feats: FeatureSet, y: np.ndarray, split: Split, opts: TrainOptions,
             score_mean: np.ndarray, score_std: np.ndarray, init: AssessmentHead | None = None) -> FitResult:
    """Train on ``split.train`` (standardised targets ``y``), early-stop on ``split.val``."""
    weights = task_weight_tensor(opts, int(config["n_tasks"]))
    with deterministic_torch(opts.seed, opts.threads):
        head = new_head(config, init, feats, split, score_mean, score_std)
        tr = _tensors(feats, split.train, score_mean, score_std)
        baseline = copy.deepcopy(head).eval()
        optim = torch.optim.AdamW(head.parameters(), lr=opts.lr, weight_decay=opts.weight_decay)
        gen = torch.Generator().manual_seed(opts.seed)
        y_tr = torch.from_numpy(y[split.train].astype(np.float32))
        val_idx = split.val if split.val.size else split.train
        va = _tensors(feats, val_idx, score_mean, score_std)
        y_va = torch.from_numpy(y[val_idx].astype(np.float32))

        def step(b: torch.Tensor) -> float:
            pred = head(tr[0][b], None if tr[1] is None else tr[1][b], tr[2][b])
            loss = masked_mse(pred, y_tr[b], weights)
            optim.zero_grad(set_to_none=True)
            loss.backward()
            optim.step()
            return float(loss.detach()) * int(b.numel())

        log = fit_epochs(int(split.train.size), opts.epochs, opts.batch_size, opts.patience, gen, step,
                         validate=lambda: float(masked_mse(head(*va), y_va, weights)),
                         set_training=head.train, snapshot=lambda: copy.deepcopy(head.state_dict()))
        head.load_state_dict(log.best_state)
        head.eval()
    return FitResult(head=head, train_loss=log.train_loss, val_loss=log.val_loss, best_epoch=log.best_epoch,
                     baseline=baseline)


def predict(head: AssessmentHead, feats: FeatureSet, idx: np.ndarray, score_mean: np.ndarray, score_std: np.ndarray,
            target_mean: np.ndarray, target_std: np.ndarray) -> np.ndarray:
    """Ratings on their original scale for items ``idx``."""
    with torch.no_grad():
        out = head(*_tensors(feats, idx, score_mean, score_std)).double().numpy()
    return out * target_std + target_mean


def evaluate(pred: np.ndarray, truth: np.ndarray, tasks: Sequence[str], n_boot: int, seed: int,
             groups: Sequence[str] | None = None, resample: str = "auto") -> dict[str, Any]:
    """Per task: agreement of predictions with the held-out ratings, with bootstrap intervals
    drawn as ``validate`` draws them: whole content groups when test items share one (images of a
    prompt move together), items when asked or when none do."""
    out: dict[str, Any] = {}
    for j, task in enumerate(tasks):
        m = np.isfinite(truth[:, j]) & np.isfinite(pred[:, j])
        if m.sum() < 3:
            out[task] = {"n": int(m.sum())}
            continue
        kept = None if groups is None else [g for g, k in zip(groups, m, strict=True) if k]
        try:
            counts, plan = bootstrap_counts(int(m.sum()), n_boot, seed, kept, resample)
        except ValueError as exc:
            raise InputError(f"--resample {resample}: {exc}") from None
        row: dict[str, Any] = agreement(pred[m, j], truth[m, j], counts, True, 0.95, seed, resampling=plan).row()
        row.update({"resample": plan.unit if n_boot > 0 else "none", "n_groups": plan.n_groups})
        out[task] = row
    return out


# ---------------------------------------------------------------------------------------------
# the whole job


def _check_options(opts: TrainOptions) -> None:
    if opts.head not in HEAD_KINDS:
        raise InputError(f"unknown --head {opts.head!r}: use {', '.join(HEAD_KINDS)}")
    if opts.epochs < 1 or opts.batch_size < 1:
        raise InputError("--epochs and --batch-size must be at least 1")
    if opts.patience < 1:
        raise InputError("--patience must be at least 1 (epochs without validation improvement before stopping)")
    if opts.resample not in RESAMPLE_CHOICES:
        raise InputError(f"--resample {opts.resample!r}: use one of {', '.join(RESAMPLE_CHOICES)}")
    if opts.finetune_blocks < 0:
        raise InputError("--finetune-blocks must be 0 (frozen backbone) or more")
    if opts.finetune_blocks and opts.folds >= 2:
        raise InputError("--finetune-blocks with --folds: fine-tune one split at a time (drop --folds)")
    if opts.backbone_lr <= 0:
        raise InputError("--backbone-lr must be above 0")


def train(dataset: str | Path | HumanDataset, out: str | Path | None = None, options: TrainOptions | None = None,
          fmt: str | None = None, ratings: Sequence[str] | None = None, pool: ModelPool | None = None,
          test_dataset: str | Path | HumanDataset | None = None, test_format: str | None = None,
          test_map: dict[str, str] | None = None) -> TrainResult:
    """Python API behind ``gencritic train``.

    ``test_dataset``: another rated dataset every item of which the trained head is tested on
    (cross-dataset transfer); ``test_map`` maps a task to that dataset's rating (default: same name)."""
    from gencritic.cache import default_cache_dir
    from gencritic.scoring.outputs import software_versions

    opts = options or TrainOptions()
    _check_options(opts)
    started = time.perf_counter()
    ds = dataset if isinstance(dataset, HumanDataset) else load_human_dataset(dataset, fmt, ratings)
    if ds.format == "pairs":
        raise InputError("train needs per-image ratings (agiqa3k, aigciqa2023 or mos-csv), not preference pairs")
    tasks = list(opts.tasks or ds.ratings)
    absent = [t for t in tasks if t not in ds.ratings and (not ds.items or t not in ds.items[0].columns)]
    if absent:
        raise InputError(f"unknown task(s) {', '.join(absent)}; the dataset's ratings are: {', '.join(ds.ratings)}")
    local = Path(opts.model).expanduser()
    if local.exists():  # a head must find its backbone from any working directory
        opts = dataclasses.replace(opts, model=str(local.resolve()))
    kind = backbone_kind(opts)
    if opts.finetune_blocks and kind != "imagereward":
        raise InputError("--finetune-blocks fine-tunes the ImageReward backbone; use --backbone imagereward "
                         "--model ImageReward.pt")
    task_weight_tensor(opts, len(tasks))  # fails fast, before any feature is computed
    test_ds = None
    if test_dataset is not None:
        test_ds = (test_dataset if isinstance(test_dataset, HumanDataset)
                   else load_human_dataset(test_dataset, test_format, None))
    pool = pool or ModelPool(opts.device)
    cache_dir = (opts.cache_dir or default_cache_dir()) if opts.use_cache else None
    if opts.finetune_blocks and opts.finetune_blocks > ir_backbone(opts, pool).n_blocks:
        raise InputError(f"--finetune-blocks {opts.finetune_blocks}: this ImageReward's fusion encoder has "
                         f"{ir_backbone(opts, pool).n_blocks} blocks")
    init_head, init_card, init_layers = None, None, None
    if opts.init is not None:
        from gencritic.agreement.transfer import load_init

        init_path = Path(opts.init).expanduser()
        init_layers = _init_layers(init_path)
    feats = (_imagereward_features(ds, opts, pool, cache_dir, init_layers) if kind == "imagereward"
             else extract_features(ds, opts, pool))
    config = head_config(opts, feats, len(tasks))
    if opts.init is not None:
        init_head, init_card, _ = load_init(init_path, tasks, config, feats.backbone_info)
        config = dict(init_head.config)
    y_all = ratings_matrix(ds, tasks)
    usable = np.flatnonzero(feats.ok & np.isfinite(y_all).any(1))
    used = set(usable.tolist())
    dropped = {ds.items[i].item_id: feats.errors[i] or "no rating" for i in range(len(ds.items)) if i not in used}
    if usable.size == 0:
        reason = next(iter(dropped.values()), "no items")
        raise InputError(f"{ds.source}: no item can be used for training (e.g. {reason})")
    if dropped:
        log.warning("%d item(s) not used for training (e.g. %s: %s)", len(dropped), *next(iter(dropped.items())))
    groups = [ds.groups[i] for i in usable]
    try:
        splits = (group_kfold(groups, opts.folds, opts.val_fraction, opts.split_seed) if opts.folds >= 2
                  else [group_split(groups, opts.test_fraction, opts.val_fraction, opts.split_seed)])
    except ValueError as exc:
        raise InputError(f"{ds.source}: {exc}") from None
    sub = _subset(feats, usable)
    y = y_all[usable]
    fold_reports: list[dict[str, Any]] = []
    first: dict[str, Any] = {}
    finetuned: dict[str, torch.Tensor] | None = init_layers
    for k, split in enumerate(splits):
        bad = straddling_groups(groups, split)
        if bad:  # cannot happen by construction; checked because the whole point rests on it
            raise RuntimeError(f"content isolation broken for groups {bad[:3]}")
        tmean = np.nanmean(y[split.train], axis=0)
        tstd = np.nanstd(y[split.train], axis=0)
        tstd = np.where(np.isfinite(tstd) & (tstd > 0), tstd, 1.0)
        smean = sub.scores[split.train].mean(0) if sub.scores.shape[1] else np.zeros(0)
        sstd = sub.scores[split.train].std(0) if sub.scores.shape[1] else np.ones(0)
        sstd = np.where(sstd > 0, sstd, 1.0)
        yz = (y - tmean) / tstd
        if opts.finetune_blocks:
            fit, finetuned = _fit_finetuned(config, sub, yz, split, opts, pool, init_head, init_layers,
                                            [ds.items[i] for i in usable])
            # every figure below reads features of the fine-tuned backbone
            feats = _imagereward_features(ds, opts, pool, cache_dir, finetuned)
            sub = _subset(feats, usable)
        else:
            fit = fit_head(config, sub, yz, split, opts, smean, sstd, init_head)
        test_pred = predict(fit.head, sub, split.test, smean, sstd, tmean, tstd)
        base_pred = predict(fit.baseline, sub, split.test, smean, sstd, tmean, tstd)
        test_groups = [groups[i] for i in split.test]
        report = {"fold": k, "sizes": split.sizes(), "best_epoch": fit.best_epoch, "epochs_run": len(fit.train_loss),
                  "test": evaluate(test_pred, y[split.test], tasks, opts.bootstrap, opts.seed, test_groups,
                                   opts.resample),
                  "untrained_test": evaluate(base_pred, y[split.test], tasks, opts.bootstrap, opts.seed, test_groups,
                                             opts.resample)}
        fold_reports.append(report)
        if k == 0:
            first = {"fit": fit, "split": split, "tmean": tmean, "tstd": tstd, "smean": smean, "sstd": sstd,
                     "test_pred": test_pred}
    fit0: FitResult = first["fit"]
    out_dir = Path(out) if out is not None else None
    name = opts.name or ("learned" if out_dir is None else "learned_" + _safe_name(out_dir.resolve().name))
    weights = task_weight_tensor(opts, len(tasks)).tolist()
    card: dict[str, Any] = {
        "name": name, "tasks": tasks, "backbone": feats.backbone, "backbone_namespace": feats.backbone_namespace,
        "backbone_info": {**feats.backbone_info, "finetuned_blocks": opts.finetune_blocks if finetuned else 0},
        "features": _feature_kind(feats),
        "with_metrics": list(opts.with_metrics), "with_metrics_model": opts.model, "score_columns": feats.score_columns,
        "score_mean": first["smean"].tolist(), "score_std": first["sstd"].tolist(),
        "target_mean": first["tmean"].tolist(), "target_std": first["tstd"].tolist(),
        "data": {"name": f"{ds.format}:{Path(ds.source).name}", **ds.describe(), "items_used": int(usable.size),
                 "items_dropped": len(dropped)},
        "split": {"seed": opts.split_seed, "by": "prompt (content group)", "test_fraction": opts.test_fraction,
                  "val_fraction": opts.val_fraction, "folds": opts.folds or None, **first["split"].sizes(),
                  "test_groups": sorted({groups[i] for i in first["split"].test}),
                  "val_groups": sorted({groups[i] for i in first["split"].val})},
        "training": {k: v for k, v in asdict(opts).items()
                     if k not in ("cache_dir", "tasks", "with_metrics", "task_weights", "init")},
        "loss_weights": dict(zip(tasks, weights, strict=True)),
        "best_epoch": fit0.best_epoch, "epochs_run": len(fit0.train_loss),
        "early_stopped": len(fit0.train_loss) < opts.epochs,
        "early_stop_epoch": len(fit0.train_loss) - 1 if len(fit0.train_loss) < opts.epochs else None,
        "test_metrics": fold_reports[0]["test"], "untrained_test_metrics": fold_reports[0]["untrained_test"],
        "versions": software_versions(),
    }
    if init_card is not None:
        from gencritic.agreement.transfer import init_summary

        card["init"] = init_summary(init_path, init_card)
    if len(fold_reports) > 1:
        card["cross_validation"] = fold_reports
        card["cv_mean_srcc"] = {t: float(np.nanmean([f["test"].get(t, {}).get("srcc", np.nan) for f in fold_reports]))
                                for t in tasks}
    cross_rows: list[dict[str, Any]] = []
    if test_ds is not None:
        card["cross_dataset_test"], cross_rows = _cross_dataset(test_ds, fit0.head, opts, pool, cache_dir, finetuned,
                                                                tasks, test_map or {}, first)
    card["wall_time_s"] = round(time.perf_counter() - started, 3)
    if out_dir is not None:
        card = save_head(out_dir, fit0.head, card, extra=_finetuned_files(finetuned if opts.finetune_blocks else
                                                                          init_layers))
        _write_artifacts(out_dir, fit0, ds, usable, first, tasks, y, name)
        if cross_rows:
            from gencritic.io.tables import write_table

            write_table(cross_rows, list(cross_rows[0]), out_dir / "cross_test_predictions.csv")
    return TrainResult(card=card, out_dir=out_dir, head=fit0.head, folds=fold_reports)


def _feature_kind(feats: FeatureSet) -> str:
    if feats.backbone_info.get("kind") == "imagereward":
        return "imagereward-fusion"
    return "image+text" if feats.text is not None else "image"


def _subset(feats: FeatureSet, idx: np.ndarray) -> FeatureSet:
    return FeatureSet(image=feats.image[idx], text=None if feats.text is None else feats.text[idx],
                      scores=feats.scores[idx], score_columns=feats.score_columns, ok=feats.ok[idx],
                      errors=[feats.errors[i] for i in idx], backbone=feats.backbone,
                      backbone_namespace=feats.backbone_namespace, backbone_info=feats.backbone_info)


def _init_layers(folder: Path) -> dict[str, torch.Tensor] | None:
    """The fine-tuned backbone layers an ``--init`` head carries (its card lists them), or None."""
    from gencritic.models.assessment_heads import head_files
    from gencritic.models.imagereward_backbone import FINETUNED_FILE, load_finetuned

    return load_finetuned(folder) if FINETUNED_FILE in head_files(folder) else None


def _finetuned_files(layers: dict[str, torch.Tensor] | None) -> dict[str, dict[str, torch.Tensor]]:
    from gencritic.models.imagereward_backbone import FINETUNED_FILE

    return {FINETUNED_FILE: layers} if layers else {}


def _fit_finetuned(config: dict[str, Any], feats: FeatureSet, yz: np.ndarray, split: Split, opts: TrainOptions,
                   pool: ModelPool, init_head: AssessmentHead | None, init_layers: dict[str, torch.Tensor] | None,
                   items: Sequence[Any]) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Head + last fusion layers, on a private copy of the backbone (the pool's stays frozen)."""
    from gencritic.agreement.imagereward_train import fit_finetune

    backbone = ir_backbone(opts, pool, init_layers or {})
    with deterministic_torch(opts.seed, opts.threads):
        head = new_head(config, init_head, feats, split, np.zeros(0), np.ones(0))
        return fit_finetune(head, backbone, items, yz, split, opts, task_weight_tensor(opts, int(config["n_tasks"])))


def _cross_dataset(test_ds: HumanDataset, head: AssessmentHead, opts: TrainOptions, pool: ModelPool,
                   cache_dir: Path | None, finetuned: dict[str, torch.Tensor] | None, tasks: Sequence[str],
                   mapping: dict[str, str], first: dict[str, Any]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Test the trained head on every item of another dataset (tasks mapped to its ratings)."""
    from gencritic.agreement.transfer import ratings_matrix, task_columns

    columns = task_columns(test_ds, tasks, mapping)
    feats = (_imagereward_features(test_ds, opts, pool, cache_dir, finetuned) if backbone_kind(opts) == "imagereward"
             else extract_features(test_ds, opts, pool))
    ok = np.flatnonzero(feats.ok)
    if ok.size == 0:
        raise InputError(f"--test-dataset {test_ds.source}: no item has features (e.g. {feats.errors[0]})")
    pred = predict(head, _subset(feats, ok), np.arange(ok.size), first["smean"], first["sstd"], first["tmean"],
                   first["tstd"])
    kept_tasks = list(columns)
    idx = [tasks.index(t) for t in kept_tasks]
    truth = ratings_matrix(test_ds, [columns[t] for t in kept_tasks])[ok]
    groups = [test_ds.groups[i] for i in ok]
    metrics = evaluate(pred[:, idx], truth, kept_tasks, opts.bootstrap, opts.seed, groups, opts.resample)
    rows = []
    for r, i in enumerate(ok):
        item = test_ds.items[int(i)]
        row: dict[str, Any] = {"item_id": item.item_id, "prompt": item.prompt}
        for j, t in enumerate(kept_tasks):
            row[columns[t]] = float(truth[r, j])
            row[f"pred_{t}"] = float(pred[r, tasks.index(t)])
        rows.append(row)
    summary = {"data": {"name": f"{test_ds.format}:{Path(test_ds.source).name}", **test_ds.describe()},
               "task_map": columns, "tasks_not_tested": [t for t in tasks if t not in columns], "items_tested": int(ok.size), "items_failed": int(len(test_ds.items) - ok.size),
               "test_metrics": metrics}
    return summary, rows


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower() or "head"


def _write_artifacts(out_dir: Path, fit: FitResult, ds: HumanDataset, usable: np.ndarray, first: dict[str, Any],
                     tasks: Sequence[str], y: np.ndarray, name: str) -> None:
    from gencritic.agreement.plots import loss_curves
    from gencritic.io.tables import write_table

    loss_curves(out_dir / "loss.png", fit.train_loss, fit.val_loss, fit.best_epoch,
                f"{name}: {', '.join(tasks)} ({len(fit.train_loss)} epochs)")
    split: Split = first["split"]
    rows = []
    for r, idx in enumerate(split.test):
        item = ds.items[int(usable[idx])]
        row: dict[str, Any] = {"item_id": item.item_id, "prompt": item.prompt}
        for j, t in enumerate(tasks):
            row[t] = float(y[idx, j])
            row[f"pred_{t}"] = float(first["test_pred"][r, j])
        rows.append(row)
    write_table(rows, ["item_id", "prompt", *[c for t in tasks for c in (t, f"pred_{t}")]],
                out_dir / "test_predictions.csv")
