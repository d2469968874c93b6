"""``gencritic score`` and ``gencritic metrics``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gencritic.jsonio import dumps_strict
from gencritic.models.loader import DEFAULT_CLIP_MODEL


def register(app: typer.Typer) -> None:
    app.command("score")(score_command)
    app.command("metrics")(metrics_command)


def score_command(
    input: Path = typer.Argument(..., help="An image, a mesh, a folder (images, meshes, sub-folders of views) "
                                           "or a manifest .csv/.jsonl/.parquet with 'image' and 'prompt' columns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: results.csv, views.csv, summary.json. "
                                                      "Re-running into the same folder resumes."),
    prompt: Optional[str] = typer.Option(None, "--prompt", "-p", help="Prompt for every item (overrides manifest/sidecar prompts)."),  # noqa: UP045
    model: str = typer.Option(DEFAULT_CLIP_MODEL, "--model", "-m",
                              help="CLIP model: HF id, local folder, checkpoint file, or open_clip NAME/TAG."),
    metrics: str = typer.Option("clip", "--metrics", help="Comma-separated metric specs, e.g. clip,clip_torchmetrics "
                                                          "(list them with `gencritic metrics`)."),
    device: str = typer.Option("auto", "--device", help="auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N, mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto (fp16 on GPU, fp32 on CPU), fp32, fp16, bf16, "
                                                      "int8 (CPU fast mode: dynamic quantisation)."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Views per model batch."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads that decode/render/preprocess items (default: beside a GPU one per mesh-loader process, at least 2; on a CPU whose cores torch uses, one per core in bursts between encoder calls; 0 = inline)."),  # noqa: UP045
    background: str = typer.Option("white", "--background", help="Colour under transparent pixels: white, black, grey, #rrggbb."),
    formats: str = typer.Option("csv", "--format", help="Extra result formats besides CSV: parquet, jsonl (comma-separated)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Embedding/render cache (default ~/.cache/gencritic or $GENCRITIC_CACHE_DIR)."),  # noqa: UP045
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not read or write the embedding cache."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard earlier results in --out instead of resuming."),
    rig: str = typer.Option("toys4k8", "--rig", help="Camera rig for meshes (see `gencritic render --help`)."),
    resolution: int = typer.Option(512, "--resolution", help="Rendered view size in pixels for meshes."),
    renderer: str = typer.Option("gl", "--renderer", help="Meshes: gl (rasteriser, default) or cycles (Blender's path tracer, see `gencritic render --help`)."),
    spp: int = typer.Option(16, "--spp", help="Cycles samples per pixel (with --renderer cycles)."),
    allow_untextured: bool = typer.Option(False, "--allow-untextured", help="Meshes whose textures or material library are missing: draw them in plain colours and name it in the row's warnings column, instead of failing the row."),
    reference_dir: Optional[Path] = typer.Option(None, "--reference-dir", help="Folder of reference images paired by file stem (for lpips, ssim, psnr, clip_i2i, dino...)."),  # noqa: UP045
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print only the summary line."),
    engine: str = typer.Option("local", "--engine", help="local, or ray (Ray Data actors; same files, same numbers)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Ray cluster to join (default: start a local one)."),  # noqa: UP045
) -> None:
    """Score images (or 3D assets, via rendered views) against their prompts.

    Examples:

      gencritic score examples/images --out out/

      gencritic score manifest.csv --out out/ --metrics clip,clip_torchmetrics --format parquet

      gencritic score photo.png --prompt "a red apple" --out out/ --device cpu --dtype int8
    """
    from gencritic.cache import default_cache_dir
    from gencritic.render.settings import render_settings
    from gencritic.scoring import ScoreOptions, score

    options = ScoreOptions(
        metrics=[m.strip() for m in metrics.split(",") if m.strip()],
        model=model, device=device, dtype=dtype, batch_size=batch_size, workers=workers, background=background,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()),
        formats=[f.strip() for f in formats.split(",") if f.strip()], overwrite=overwrite, progress=not quiet,
        render=render_settings({"rig": rig, "resolution": resolution,
                                **({"renderer": renderer, "spp": spp} if renderer != "gl" else {}),  # gl runs keep their fingerprint
                                **({"allow_untextured": True} if allow_untextured else {})}),
        reference_dir=reference_dir,
    )
    if engine == "ray":
        from gencritic.engines.ray_engine import score_with_ray

        run = score_with_ray(input, out=out, prompt=prompt, options=options, ray_address=ray_address)
    elif engine == "local":
        run = score(input, out=out, prompt=prompt, options=options)
    else:
        from gencritic.errors import InputError

        raise InputError(f"--engine {engine!r}: use local or ray")
    s = run.summary
    mean = "n/a" if s["mean"] is None else f"{s['mean']:.4f}"
    typer.echo(f"{s['successes']}/{s['count']} items scored; mean {s['primary_metric']} = {mean} "
               f"-> {out / 'results.csv'}")
    failed = s["count"] - s["successes"]
    if failed:
        typer.echo(f"{failed} item(s) failed; see the 'error' column of {out / 'results.csv'}", err=True)
    warned = (s.get("warnings") or {}).get("items", 0)
    if warned:
        typer.echo(f"{warned} item(s) were drawn degraded; see the 'warnings' column of {out / 'results.csv'}",
                   err=True)


def metrics_command(
    as_json: bool = typer.Option(False, "--json", help="Print the registry as JSON."),
) -> None:
    """List every metric: inputs, range, direction, default model, the paper it comes from and
    (with --json) its options: keys, types, defaults and what each does."""
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
