"""``gencritic diagnose``, ``gencritic profiles``, ``gencritic temporal`` and ``gencritic calibrate``.

Each command parses options and calls the Python API in :mod:`gencritic.diagnose`; no logic here.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated, Optional

import typer

from gencritic.cli.options import Device, Model, OptionalModel, Profile, Vlm
from gencritic.errors import InputError


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("diagnose")(diagnose_command)
    app.command("profiles")(profiles_command)
    app.command("temporal")(temporal_command)
    app.command("calibrate")(calibrate_command)
    app.command("sets")(sets_command)


def _emit(data: dict, out: Optional[Path]) -> None:  # noqa: UP045
    from gencritic.jsonio import dumps_strict

    text = dumps_strict(data, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    from gencritic.atomic import atomic_write_text

    atomic_write_text(out, text + "\n")
    typer.echo(f"wrote {out}", err=True)


def diagnose_command(
    input: Path = typer.Argument(..., help="An image, or a frame sequence: folder of frames, GIF, MP4/WebM."),
    profile: Profile = "explosion",
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Text the image should match (CLIP score; needs --model)."),  # noqa: UP045
    reference: Optional[Path] = typer.Option(None, "--reference", "-r",  # noqa: UP045
                                             help="Reference image: every diagnostic also reports its value on it."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the JSON here instead of printing it."),  # noqa: UP045
    model: OptionalModel = None,
    archive: Optional[Path] = typer.Option(None, "--archive", help="Loop mode: SQLite archive; adds a 'loop' block "  # noqa: UP045
                                                                   "with the improvement since the last iteration."),
    device: Device = "auto",
    vlm: Vlm = None,
) -> None:
    """Diagnose an image or animation against a profile and print an action plan as JSON.

    Without --model only model-free diagnostics run; with it, CLIP probes and (with --prompt) a CLIP score.
    With --vlm, a 'vlm' block adds a vision-language model's critique beside the rules (see `gencritic critique`).

    JSON: passed, overall (0-10), scores, diagnostics, suggested_parameters, issues.

    Examples:

      gencritic diagnose render.png --profile explosion

      gencritic diagnose frames/ --profile campfire --out diagnosis.json

      gencritic diagnose shot.png --profile product-shot --model openai/clip-vit-base-patch32 --prompt "a red toy car"

      gencritic diagnose iter_007.png --profile my_profile.yaml --archive loop.sqlite
    """
    pool = None
    if model is not None or vlm is not None:
        from gencritic.models import ModelPool

        pool = ModelPool(device=device)
    if archive is not None:
        from gencritic.diagnose.archive import diagnose_loop

        if vlm is not None:  # refused rather than dropped: the archive would not hold the critique
            raise InputError("--vlm cannot be combined with --archive yet; run `gencritic critique` on the iteration")

        result = diagnose_loop(input, archive, profile=profile, prompt=prompt, reference=reference, pool=pool,
                               model=model)
    else:
        from gencritic.diagnose.api import diagnose

        result = diagnose(input, profile=profile, prompt=prompt, reference=reference, pool=pool, model=model, vlm=vlm)
    _emit(result, out)


def profiles_command(
    as_json: bool = typer.Option(False, "--json", help="Print name, description and path as JSON."),
    show: Optional[str] = typer.Option(None, "--show", help="Print one profile's YAML (a good start for your own)."),  # noqa: UP045
) -> None:
    """List the shipped diagnosis profiles.

    Examples:

      gencritic profiles

      gencritic profiles --show explosion > my_explosion.yaml
    """
    from gencritic.diagnose.profiles import list_profiles, resolve_profile_path
    from gencritic.jsonio import dumps_strict

    if show is not None:
        typer.echo(resolve_profile_path(show).read_text(encoding="utf-8"), nl=False)
        return
    profiles = list_profiles()
    if as_json:
        typer.echo(dumps_strict(profiles, indent=2))
        return
    for p in profiles:
        typer.echo(f"{p['name']:<14} {p['description']}")
    typer.echo("\nUse one with: gencritic diagnose IMAGE --profile NAME  (or --profile path/to/own.yaml)")


def temporal_command(
    input: Path = typer.Argument(..., help="Folder of frames, GIF/WebP, or MP4/WebM video."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: temporal.json, curves.csv, curves.png."),
    profile: Profile = "explosion",
    no_flow: bool = typer.Option(False, "--no-flow", help="Skip optical-flow warping error (faster)."),
    max_frames: Optional[int] = typer.Option(None, "--max-frames", help="Read at most this many frames."),  # noqa: UP045
    lpips: Optional[str] = typer.Option(None, "--lpips", help="Also LPIPS between consecutive frames with this net "  # noqa: UP045
                                                              "(alex, vgg, squeeze); reported unavailable without weights."),
    lpips_weights: Optional[str] = typer.Option(None, "--lpips-weights", help="Backbone weights file for --lpips."),  # noqa: UP045
) -> None:
    """Temporal quality of a frame sequence: flicker, consecutive SSIM, warping error, peak/decay.

    The profile's segmentation defines the foreground (the size curve) and the background colour.

    Examples:

      gencritic temporal renders/explosion_frames/ --out out/temporal

      gencritic temporal clip.mp4 --out out/clip --no-flow

      gencritic temporal fx.gif --out out/fx --lpips alex
    """
    from gencritic.diagnose.temporal_report import temporal_report
    from gencritic.jsonio import dumps_strict

    summary = temporal_report(input, out, profile=profile, flow=not no_flow, max_frames=max_frames, lpips=lpips,
                              lpips_weights=lpips_weights)
    typer.echo(dumps_strict(summary, indent=2))


def _read_choices(path: Path) -> tuple[list[tuple[str, str]] | None, dict[str, float] | None]:
    """(pairs, None) for a winner,loser CSV; (None, ratings) for an image,rating CSV."""
    if not path.is_file():
        raise InputError(f"choices file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    base = path.parent

    def resolve(p: str) -> str:
        q = Path(p.strip())
        return str(q if q.is_absolute() else base / q)

    cols = set(rows[0]) if rows else set()
    if {"winner", "loser"} <= cols:
        return [(resolve(r["winner"]), resolve(r["loser"])) for r in rows], None
    if {"image", "rating"} <= cols:
        try:
            return None, {resolve(r["image"]): float(r["rating"]) for r in rows}
        except ValueError as exc:
            raise InputError(f"{path}: every 'rating' must be a number ({exc})") from None
    raise InputError(f"{path} needs a CSV header with winner,loser (pairwise choices) or image,rating (scores)")


def calibrate_command(
    pairs: Path = typer.Argument(..., help="CSV of human judgements, image paths relative to the CSV: columns "
                                           "winner,loser (pairwise choices) or image,rating (mean opinion scores)."),
    profile: Profile = "explosion",
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the calibrated profile YAML here."),  # noqa: UP045
    labels: Optional[Path] = typer.Option(None, "--labels", help="CSV image,acceptable (1/0) to fit the pass threshold."),  # noqa: UP045
    l2: float = typer.Option(1.0, "--l2", help="L2 regularisation of the Bradley-Terry fit."),
    holdout: float = typer.Option(0.25, "--holdout", help="Share of pairs held out to report accuracy."),
    seed: int = typer.Option(0, "--seed", help="Seed of the held-out split."),
    margin: float = typer.Option(0.0, "--margin", help="With ratings: only pairs whose ratings differ by more."),
    holdout_by: str = typer.Option("pairs", "--holdout-by", help="pairs (a share of the choices) or items (a share "
                                                                 "of the images: none of them seen in training)."),
) -> None:
    """Fit a profile's weights (and pass threshold) to human pairwise choices or ratings.

    Prints held-out pair accuracy of the calibrated weights vs equal and current weights.

    Examples:

      gencritic calibrate choices.csv --profile explosion --out explosion_calibrated.yaml

      gencritic calibrate mos.csv --profile product-shot --margin 0.5 --labels accept.csv
    """
    from gencritic.diagnose.calibrate import calibrate_from_ratings, calibrate_profile
    from gencritic.jsonio import dumps_strict

    pair_list, ratings = _read_choices(pairs)
    acceptable = None
    if labels is not None:
        if not labels.is_file():
            raise InputError(f"labels file not found: {labels}")
        with open(labels, newline="", encoding="utf-8") as fh:
            acceptable = {str(labels.parent / r["image"].strip()): r["acceptable"].strip() in ("1", "true", "yes")
                          for r in csv.DictReader(fh)}
    if ratings is not None:
        result = calibrate_from_ratings(profile, ratings, margin, acceptable=acceptable, l2=l2, holdout=holdout,
                                        seed=seed, holdout_by=holdout_by)
    else:
        result = calibrate_profile(profile, pair_list or [], acceptable, l2=l2, holdout=holdout, seed=seed,
                                   holdout_by=holdout_by)
    yaml_text = result.pop("yaml")
    if out is not None:
        from gencritic.atomic import atomic_write_text

        atomic_write_text(out, yaml_text)
        result["written"] = str(out)
    typer.echo(dumps_strict(result, indent=2))


def sets_command(
    images: Annotated[Path, typer.Argument(help="Folder of images (one loop's results, or one generator's).")],
    model: Model,  # required here: set metrics compare embeddings, so there is no model-free mode
    reference: Optional[Path] = typer.Option(None, "--reference-set", "-r",  # noqa: UP045
                                             help="Folder of reference/earlier images: adds FID, KID and novelty."),
    clusters: Optional[int] = typer.Option(None, "--clusters", "-k", help="Group the images into this many approach types."),  # noqa: UP045
    neighbours: int = typer.Option(3, "--neighbours", help="k of the k-nearest-neighbour novelty."),
    seed: int = typer.Option(0, "--seed", help="Seed for k-means and KID subsets."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the JSON here instead of printing it."),  # noqa: UP045
    device: Device = "auto",
) -> None:
    """Set metrics for exploration: diversity, approach clusters, FID/KID and novelty vs a reference set.

    Examples:

      gencritic sets loop_results/ --model openai/clip-vit-base-patch32 --clusters 4

      gencritic sets new_batch/ --reference-set archive/ --model openai/clip-vit-base-patch32
    """
    from gencritic.diagnose.sets_report import set_report
    from gencritic.models import ModelPool

    _emit(set_report(images, model, reference, clusters, k=neighbours, seed=seed, pool=ModelPool(device=device)), out)
