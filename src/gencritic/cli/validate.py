"""``gencritic validate``, ``train`` and ``correlate``: parse flags, call the meta API, print a line."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from gencritic.cli.options import (
    DEFAULT_CLIP_MODEL,
    BatchSize,
    CacheDir,
    Device,
    Metrics,
    Model,
    NoCache,
    Quiet,
    cache_root,
    split_list,
)

DatasetFormat = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--format", help="Dataset layout: agiqa3k, aigciqa2023, mos-csv, pairs (default: detected from DATASET).")]


RESAMPLE_HELP = ("What the bootstrap draws: groups (whole prompts, or --group-by groups), items (one by one, as "
                 "published IQA tables do, too narrow when images share prompts) or auto (groups when items share one).")
GROUP_BY_HELP = ("Column whose values group the items for --resample (default: the prompt, or the dataset's group "
                 "column; correlate: no groups).")
BOOTSTRAP_HELP = "Bootstrap resamples for the 95% intervals (0 = none)."


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("validate")(validate_command)
    app.command("train")(train_command)
    app.command("correlate")(correlate_command)


def validate_command(
    dataset: Path = typer.Argument(..., help="A dataset folder (AGIQA-3K, AIGCIQA2023) or a ratings table "
                                             "(.csv/.jsonl/.parquet: 'image', optional 'prompt', rating columns)."),
    metrics: Metrics = "clip",
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: scores.csv, correlations.csv/.json, "
                                                      "comparisons.csv, report.md, scatter_<rating>.png."),
    fmt: DatasetFormat = None,
    ratings: Optional[str] = typer.Option(None, "--ratings", help="Rating columns to use (comma-separated). "  # noqa: UP045
                                          "Default: every numeric column starting with 'mos'."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help=BOOTSTRAP_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples (same seed, same intervals)."),
    resample: str = typer.Option("auto", "--resample", help=RESAMPLE_HELP),
    group_by: Optional[str] = typer.Option(None, "--group-by", help=GROUP_BY_HELP),  # noqa: UP045
    model: Model = DEFAULT_CLIP_MODEL,
    device: Device = "auto",
    batch_size: BatchSize = 32,
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    no_plots: bool = typer.Option(False, "--no-plots", help="Skip the scatter plot PNGs."),
    quiet: Quiet = False,
) -> None:
    """Measure how well metrics agree with human ratings, with bootstrap confidence intervals.

    Per rating × metric: PLCC (raw and after the VQEG 4-parameter logistic), SRCC, KRCC (tau-b), RMSE after the mapping and pairwise accuracy, each with a seeded 95% bootstrap interval; and for each pair of metrics, whether they differ (paired bootstrap, Williams' test). Images missing from the dataset folder are counted and reported, not faked.

    When images share a prompt, the bootstrap resamples whole prompts (or --group-by groups); --resample items gives the item bootstrap of published tables. Every output says which was used.

    Examples:

      gencritic validate data/AGIQA-3K --metrics clip,clip_torchmetrics --out val/

      gencritic validate ratings.csv --ratings appeal,realism --metrics clip --out val/ --bootstrap 2000 --seed 1

      gencritic validate data/AIGCIQA2023 --format aigciqa2023 --metrics clip,learned:heads/aigc --out val/

      gencritic validate data/AGIQA-3K --metrics clip --out val-items/ --resample items
    """
    from gencritic.agreement.validate import ValidateOptions, validate
    from gencritic.scoring import ScoreOptions

    scoring = ScoreOptions(metrics=split_list(metrics), model=model, device=device, batch_size=batch_size,
                           cache_dir=cache_root(cache_dir, no_cache), progress=not quiet)
    opts = ValidateOptions(scoring=scoring, bootstrap=bootstrap, seed=seed, resample=resample, group_by=group_by,
                           plots=not no_plots)
    report = validate(dataset, out, opts, fmt=fmt, ratings=split_list(ratings) or None)
    ds = report.provenance["dataset"]
    typer.echo(f"{ds['items_present']} of {ds['rows']} rated items present ({ds['items_missing']} missing), "
               f"{report.provenance['items_failed']} failed to score -> {out / 'report.md'}")
    for rating, plan in report.provenance["resampling"].items():
        unit = (f"{plan['n_groups']} {report.provenance['group_by']} groups" if plan["unit"] == "groups"
                else "items")
        typer.echo(f"  {rating}: intervals resample {unit} ({plan['reason']})")
    for row in report.rows:
        srcc = row["srcc"]
        if row["rating"] == "preference":
            stat = f"agrees with people on {row['pairwise_acc']:.3f} of decided pairs"
        elif srcc == srcc:
            stat = f"SRCC {srcc:.3f} [{row['srcc_lo']:.3f}, {row['srcc_hi']:.3f}]"
        else:
            stat = "SRCC undefined (metric or rating constant on these items)"
        typer.echo(f"  {row['rating']:<22} {row['column']:<28} n={row['n']:<5} {stat}")


def train_command(
    dataset: Path = typer.Argument(..., help="Rated images: a dataset folder or a ratings table (as for validate)."),
    out: Path = typer.Option(..., "--out", "-o", help="Head folder: head.safetensors, card.json, loss.png, "
                                                      "test_predictions.csv."),
    head: str = typer.Option("mlp", "--head", help="linear, mlp (one per task) or transformer (multi-task metric "
                                                   "transformer over embeddings + other metrics' scores)."),
    tasks: Optional[str] = typer.Option(None, "--tasks", "--ratings", help="Rating columns to learn "  # noqa: UP045
                                        "(comma-separated; default: all the dataset's ratings)."),
    fmt: DatasetFormat = None,
    model: Model = DEFAULT_CLIP_MODEL,
    with_metrics: Optional[str] = typer.Option(None, "--with-metrics", help="Other metrics whose scores are extra "  # noqa: UP045
                                               "inputs (tokens for the transformer), e.g. clip."),
    no_text: bool = typer.Option(False, "--no-text", help="Image features only (no prompt embedding)."),
    name: str = typer.Option("", "--name", help="Column prefix when used as a metric (default learned_<out folder>)."),
    epochs: int = typer.Option(300, "--epochs", help="Most epochs; early stopping usually ends sooner."),
    patience: int = typer.Option(30, "--patience", help="Epochs without validation improvement before stopping."),
    lr: float = typer.Option(1e-3, "--lr", help="AdamW learning rate."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", help="Training batch size."),
    seed: int = typer.Option(0, "--seed", help="Seed of initialisation and batch order."),
    split_seed: int = typer.Option(0, "--split-seed", help="Seed of the content-isolated split."),
    test_fraction: float = typer.Option(0.2, "--test-fraction", help="Share of items (whole prompts) held out for test."),
    val_fraction: float = typer.Option(0.1, "--val-fraction", help="Share of items (whole prompts) for early stopping."),
    folds: int = typer.Option(0, "--folds", help="k-fold cross-validation over prompt groups (0 = one split); "
                                                 "the saved head is fold 1's."),
    backbone: str = typer.Option("auto", "--backbone", help="clip (CLIP embeddings of image and prompt), imagereward "
                                 "(the BLIP image-text fusion feature ImageReward's reward head reads; --model "
                                 "ImageReward.pt) or auto (imagereward when --model is a checkpoint in ImageReward's layout)."),
    med_config: Optional[str] = typer.Option(None, "--med-config", help="ImageReward's med_config.json "  # noqa: UP045
                                             "(default: beside --model)."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="ImageReward's BERT tokenizer: a folder or hub "  # noqa: UP045
                                            "id (default: $GENCRITIC_IMAGEREWARD_TOKENIZER, else bert-base-uncased)."),
    finetune_blocks: int = typer.Option(0, "--finetune-blocks", help="ImageReward: train the last N fusion-encoder "
                                        "blocks with the head (0 = frozen backbone, features cached)."),
    backbone_lr: float = typer.Option(1e-5, "--backbone-lr", help="AdamW learning rate of the fine-tuned blocks."),
    task_weights: Optional[str] = typer.Option(None, "--task-weights", help="Loss weight per task, in --tasks order "  # noqa: UP045
                                               "(comma-separated, e.g. 1,0.5; default all 1)."),
    init: Optional[Path] = typer.Option(None, "--init", help="Start from this trained head (transfer; same backbone, "  # noqa: UP045
                                        "head kind and number of tasks)."),
    test_dataset: Optional[Path] = typer.Option(None, "--test-dataset", help="Also test the trained head on every "  # noqa: UP045
                                                "item of this other rated dataset (cross-dataset)."),
    test_format: Optional[str] = typer.Option(None, "--test-format", help="Layout of --test-dataset "  # noqa: UP045
                                              "(default: detected)."),
    test_map: Optional[str] = typer.Option(None, "--test-map", help="TASK=RATING pairs: which rating of --test-dataset "  # noqa: UP045
                                           "each task is compared with (default: the rating of the same name)."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help=BOOTSTRAP_HELP),
    resample: str = typer.Option("auto", "--resample", help=RESAMPLE_HELP),
    device: Device = "cpu",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
) -> None:
    """Train an assessment head on backbone features; use it as --metrics learned:OUT.

    --model is the backbone whose features the head reads: a CLIP model, or (--backbone imagereward) ImageReward.pt, frozen or with its last --finetune-blocks fusion blocks trained too. --device is where the backbone runs (a frozen backbone's features are cached by content, so a second run skips it); the head trains there when fine-tuning, else on the CPU.

    Images that share a prompt never straddle train, validation and test. Training is seeded and deterministic on CPU; the card records backbone, tasks, data hash, split seed and test metrics next to those of the untrained head.

    Examples:

      gencritic train data/AGIQA-3K --out heads/agiqa --head mlp --tasks mos_quality,mos_align

      gencritic train ratings.csv --out heads/t --head transformer --with-metrics clip --folds 5

      gencritic train data/AIGCIQA2023 --out heads/ir --head transformer --model ImageReward.pt --finetune-blocks 2 --patience 5

      gencritic train data/AGIQA-3K --out heads/x --model ImageReward.pt --head transformer --test-dataset data/AIGCIQA2023 --test-map mos_align=mos_correspondence

      gencritic score images/ --metrics clip,learned:heads/agiqa --out scores/
    """
    from gencritic.agreement.train import TrainOptions, train
    from gencritic.agreement.transfer import parse_test_map

    opts = TrainOptions(head=head, tasks=split_list(tasks) or None, model=model, with_metrics=split_list(with_metrics),
                        use_text=not no_text, name=name, epochs=epochs, patience=patience, lr=lr,
                        batch_size=batch_size, seed=seed, split_seed=split_seed, test_fraction=test_fraction,
                        val_fraction=val_fraction, folds=folds, device=device, cache_dir=cache_dir,
                        use_cache=not no_cache, backbone=backbone, med_config=med_config, tokenizer=tokenizer,
                        finetune_blocks=finetune_blocks, backbone_lr=backbone_lr,
                        task_weights=_floats("--task-weights", task_weights), init=init, bootstrap=bootstrap,
                        resample=resample)
    result = train(dataset, out, opts, fmt=fmt, test_dataset=test_dataset, test_format=test_format,
                   test_map=parse_test_map(test_map))
    card = result.card
    typer.echo(f"trained {head} head '{card['name']}' on {card['split']['train']} items "
               f"(best epoch {card['best_epoch'] + 1}/{card['epochs_run']}) -> {out}")
    for task, stats in card["test_metrics"].items():
        base = card["untrained_test_metrics"].get(task, {})
        typer.echo(f"  test {task}: SRCC {stats.get('srcc', float('nan')):.3f} "
                   f"[{stats.get('srcc_lo', float('nan')):.3f}, {stats.get('srcc_hi', float('nan')):.3f}] "
                   f"(untrained {base.get('srcc', float('nan')):.3f}), n={stats.get('n')}")
    cross = card.get("cross_dataset_test")
    if cross:
        for task, stats in cross["test_metrics"].items():
            typer.echo(f"  cross-dataset {cross['data']['name']} {task} vs {cross['task_map'][task]}: "
                       f"SRCC {stats.get('srcc', float('nan')):.3f} [{stats.get('srcc_lo', float('nan')):.3f}, "
                       f"{stats.get('srcc_hi', float('nan')):.3f}], n={stats.get('n')}")
    typer.echo(f"use it: gencritic score IMAGES --metrics learned:{out} --out OUT")


def _floats(option: str, text: str | None) -> list[float] | None:
    """A comma-separated list of numbers, or one line naming the option and the bad value."""
    from gencritic.errors import InputError

    if not text:
        return None
    out = []
    for part in split_list(text):
        try:
            out.append(float(part))
        except ValueError:
            raise InputError(f"{option} {text!r}: {part!r} is not a number; give numbers separated by commas") from None
    return out


def correlate_command(
    table: Path = typer.Argument(..., help="A CSV (or .tsv) with one row per item: predicted scores and ratings."),
    pred: str = typer.Option(..., "--pred", help="Column(s) of predicted scores (comma-separated; several are "
                                                 "compared pairwise)."),
    mos: str = typer.Option(..., "--mos", help="Column(s) of human ratings (comma-separated)."),
    group_by: Optional[str] = typer.Option(None, "--group-by", help=GROUP_BY_HELP),  # noqa: UP045
    resample: str = typer.Option("auto", "--resample", help=RESAMPLE_HELP),
    bootstrap: int = typer.Option(1000, "--bootstrap", help=BOOTSTRAP_HELP),
    seed: int = typer.Option(0, "--seed", help="Seed of the bootstrap resamples (same seed, same intervals)."),
    lower_is_better: Optional[str] = typer.Option(None, "--lower-is-better", help="--pred columns where lower "  # noqa: UP045
                                                  "means better (affects pairwise accuracy and comparisons)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the rows, comparisons and provenance "  # noqa: UP045
                                            "here as strict JSON (atomically)."),
) -> None:
    """Agreement of scores you already have with human ratings: validate's statistics on any CSV.

    PLCC (raw and after the VQEG 4-parameter logistic), SRCC, KRCC (tau-b), RMSE after the mapping and pairwise accuracy, each with a seeded 95% bootstrap interval, computed by the same code as validate. Empty cells leave their row out (counted); a cell that is not a number is an error.

    Examples:

      gencritic correlate scores/results.csv --pred clip_score --mos mos_quality --group-by prompt

      gencritic correlate preds.csv --pred model_a,model_b --mos mos --resample items --json corr.json
    """
    from gencritic.agreement.correlate import CorrelateOptions, correlate, text_table
    from gencritic.jsonio import write_json

    opts = CorrelateOptions(pred=split_list(pred), mos=split_list(mos), group_by=group_by, resample=resample,
                            bootstrap=bootstrap, seed=seed, lower_is_better=split_list(lower_is_better))
    result = correlate(table, opts)
    typer.echo(text_table(result))
    if json_out is not None:
        write_json(json_out, result.payload())
        typer.echo(f"-> {json_out}")
