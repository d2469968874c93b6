"""``gencritic cache``: see what the render and embedding caches hold, prune or clear them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from gencritic.cli.options import CacheDir

if TYPE_CHECKING:
    from gencritic.cache_maintenance import CacheReport

cache_app = typer.Typer(
    name="cache",
    help=(
        "See and tidy the caches that make re-runs fast: rendered views (one file per asset and render "
        "settings) and embeddings (one row per image and model).\n\n"
        "gencritic cache info  (location, entries, sizes)\n\n"
        "gencritic cache prune --unused-days 30  (leftovers, and renders unused for 30 days)\n\n"
        "gencritic cache clear --renders --embeddings  (empty both; the next run recomputes)\n\n"
        "The location is --cache-dir, else $GENCRITIC_CACHE_DIR, else ~/.cache/gencritic. Safe beside a "
        "running job: it re-renders or re-encodes what it no longer finds."
    ),
    no_args_is_help=True,
)

AsJson = Annotated[bool, typer.Option("--json", help="Print the counts as JSON.")]
DryRun = Annotated[bool, typer.Option("--dry-run", help="Only list the counts that would go.")]


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.add_typer(cache_app, name="cache")


def _root(cache_dir: Optional[Path]) -> Path:  # noqa: UP045
    from gencritic.cache import default_cache_dir

    return cache_dir if cache_dir is not None else default_cache_dir()


def _print(report: CacheReport, as_json: bool, verb: str) -> None:
    from gencritic.cache_maintenance import human_bytes
    from gencritic.jsonio import dumps_strict

    if as_json:
        typer.echo(dumps_strict(report.as_dict(), indent=2))
        return
    typer.echo(f"{verb} {report.root}")
    lines = [("renders", report.renders, "entries"),
             ("old-format render folders", report.legacy_render_folders, "folders"),
             ("temporary files", report.temporaries, "files"),
             ("embeddings", report.embeddings, "rows"),
             (".blend conversions", report.conversions, "files"),
             ("VLM answers", report.vlm_answers, "rows"),
             ("objects fetched (s3:// ...)", report.remote, "files")]
    for label, tally, unit in lines:
        typer.echo(f"  {label:<27} {tally.count:>8} {unit:<8} {human_bytes(tally.bytes):>10}")


@cache_app.command("info")
def info_command(
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Show where the caches are and how much they hold (changes nothing)."""
    from gencritic.cache_maintenance import inspect_cache

    report = inspect_cache(_root(cache_dir))
    _print(report, as_json, "cache at")
    if not as_json and (report.legacy_render_folders.count or report.temporaries.count):
        typer.echo("  (old-format folders and leftovers are never read: `gencritic cache prune` removes them)")


@cache_app.command("prune")
def prune_command(
    unused_days: Optional[float] = typer.Option(  # noqa: UP045
        None, "--unused-days", help="Also remove renders and fetched objects not read or written for this many days."),
    dry_run: DryRun = False,
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Remove what is never read again (old-format PNG render folders, temporary files of dead processes) and, with --unused-days, renders not used lately."""
    from gencritic.cache_maintenance import prune_cache

    _print(prune_cache(_root(cache_dir), unused_days, dry_run), as_json, "would remove from" if dry_run else "removed from")


@cache_app.command("clear")
def clear_command(
    renders: bool = typer.Option(False, "--renders", help="Empty the render cache."),
    embeddings: bool = typer.Option(False, "--embeddings", help="Empty the embedding cache."),
    conversions: bool = typer.Option(False, "--conversions", help="Remove .blend files' GLB conversions."),
    vlm_answers: bool = typer.Option(False, "--vlm-answers", help="Empty the VLM judges' answer cache "
                                                                  "(vqascore, critique, judge3d)."),
    remote: bool = typer.Option(False, "--remote", help="Remove the local copies of objects fetched from addresses "
                                                        "(s3://, gs://, az://, https://)."),
    dry_run: DryRun = False,
    cache_dir: CacheDir = None,
    as_json: AsJson = False,
) -> None:
    """Empty the render cache, the embedding cache, the .blend conversions, the VLM answers or the fetched objects
    (the next run recomputes or fetches them again)."""
    from gencritic.cache_maintenance import clear_cache

    _print(clear_cache(_root(cache_dir), renders, embeddings, dry_run, conversions, vlm_answers=vlm_answers,
                       remote=remote), as_json,
           "would remove from" if dry_run else "removed from")
