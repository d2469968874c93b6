"""``gencritic score`` and ``gencritic metrics``."""

from __future__ import annotations

from typing import Optional

import typer

from gencritic.cli.options import (
    DEFAULT_CLIP_MODEL,
    AllowUntextured,
    Background,
    BatchSize,
    CacheDir,
    Device,
    Dtype,
    Lighting,
    Metrics,
    Model,
    NoCache,
    Overwrite,
    Quiet,
    Renderer,
    Resolution,
    ResultFormats,
    Rig,
    Spp,
    Workers,
    cache_root,
    render_settings_from_cli,
    split_list,
)


def register(app: typer.Typer) -> None:
    app.command("score")(score_command)
    app.command("metrics")(metrics_command)


def score_command(
    input: str = typer.Argument(..., help="An image, a mesh, a folder (images, meshes, sub-folders of views) "
                                          "or a manifest .csv/.jsonl/.parquet with 'image' and 'prompt' columns; "
                                          "local, or an address (s3://, gs://, az://, https://)."),
    out: str = typer.Option(..., "--out", "-o", help="Output folder: results.csv, views.csv, summary.json; or an "
                                                     "address (s3://bucket/run/, gs://, az://). "
                                                     "Re-running into the same folder resumes."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Prompt for every item (overrides manifest/sidecar prompts)."),  # noqa: UP045
    model: Model = DEFAULT_CLIP_MODEL,
    metrics: Metrics = "clip",
    device: Device = "auto",
    dtype: Dtype = "auto",
    batch_size: BatchSize = 32,
    workers: Workers = None,
    background: Background = "white",
    formats: ResultFormats = "csv",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    overwrite: Overwrite = False,
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
    renderer: Renderer = "gl",
    spp: Spp = None,
    lighting: Lighting = "default",
    allow_untextured: AllowUntextured = False,
    reference_dir: Optional[str] = typer.Option(None, "--reference-dir", help="Folder (or address) of reference images paired by file stem (for lpips, ssim, psnr, clip_i2i, dino...)."),  # noqa: UP045
    quiet: Quiet = False,
    engine: str = typer.Option("local", "--engine", help="local, or ray (Ray Data actors; same files, same numbers)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (default: start a local one)."),  # noqa: UP045
) -> None:
    """Score images (or 3D assets, via rendered views) against their prompts.

    Examples:

      gencritic score examples/images --out out/

      gencritic score manifest.csv --out out/ --metrics clip,clip_torchmetrics --format parquet

      gencritic score photo.png --prompt "a red apple" --out out/ --device cpu --dtype int8
    """
    from gencritic.io.urls import as_path
    from gencritic.scoring import ScoreOptions, score

    # lighting is given only when not the default, so earlier output folders keep their fingerprints
    render = render_settings_from_cli(rig=rig, resolution=resolution, renderer=renderer, spp=spp,
                                      lighting=None if lighting == "default" else lighting,
                                      allow_untextured=allow_untextured)
    options = ScoreOptions(
        metrics=split_list(metrics), model=model, device=device, dtype=dtype, batch_size=batch_size, workers=workers,
        background=background, cache_dir=cache_root(cache_dir, no_cache), formats=split_list(formats),
        overwrite=overwrite, progress=not quiet, render=render,
        reference_dir=None if reference_dir is None else as_path(reference_dir),
    )
    source, target = as_path(input), as_path(out)
    if engine == "ray":
        from gencritic.engines.ray_engine import score_with_ray

        run = score_with_ray(source, out=target, prompt=prompt, options=options, ray_address=ray_address)
    elif engine == "local":
        run = score(source, out=target, prompt=prompt, options=options)
    else:
        from gencritic.errors import InputError

        raise InputError(f"--engine {engine!r}: use local or ray")
    s = run.summary
    mean = "n/a" if s["mean"] is None else f"{s['mean']:.4f}"
    typer.echo(f"{s['successes']}/{s['count']} items scored; mean {s['primary_metric']} = {mean} "
               f"-> {target / 'results.csv'}")
    failed = s["count"] - s["successes"]
    if failed:
        typer.echo(f"{failed} item(s) failed; see the 'error' column of {target / 'results.csv'}", err=True)
    warned = (s.get("warnings") or {}).get("items", 0)
    if warned:
        typer.echo(f"{warned} item(s) were drawn degraded; see the 'warnings' column of {target / 'results.csv'}",
                   err=True)


def metrics_command(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
) -> None:
    """List every metric: inputs, range, direction, default model, the paper it comes from and
    (with --json) its options: keys, types, defaults and what each does."""
    from gencritic.jsonio import dumps_strict
    from gencritic.metrics.registry import all_metrics

    classes = list(all_metrics().values())
    infos = [cls.info for cls in classes]
    if as_json:
        typer.echo(dumps_strict([cls.describe() for cls in classes], indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="gencritic metrics", show_lines=False)
    for col in ("name", "family", "inputs", "columns", "range", "better", "default model"):
        table.add_column(col)
    for i in infos:
        table.add_row(i.name, i.family, ",".join(i.inputs), ",".join(i.columns),
                      f"[{i.range[0]:g}, {i.range[1]:g}]", "higher" if i.higher_is_better else "lower",
                      i.default_model or "-")
    Console().print(table)
