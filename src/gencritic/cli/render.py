"""``gencritic render`` (views of 3D assets), ``gencritic toys4k`` (the Toys4k CLIP protocol) and
``gencritic convert`` (.blend to GLB through Blender)."""

from __future__ import annotations

import json
from pathlib import Path
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
    Fov,
    Lighting,
    Margin,
    Model,
    NoCache,
    Normalize,
    Overwrite,
    Pitch,
    Quiet,
    Radius,
    Renderer,
    Resolution,
    Rig,
    RigSeed,
    Samples,
    Spp,
    Up,
    Workers,
    cache_root,
    render_settings_from_cli,
)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("render")(render_command)
    app.command("toys4k")(toys4k_command)
    app.command("convert")(convert_command)


def render_command(
    source: Path = typer.Argument(..., help="A mesh (.glb .gltf .obj .ply .stl .off, .blend through Blender, point cloud .npz) or a folder of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<asset-name>/000.png ... and cameras.json."),
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
    background: Background = "white",
    normalize: Normalize = "trellis",
    up: Up = "y",
    margin: Margin = None,
    lighting: Lighting = "default",
    samples: Samples = 0,
    renderer: Renderer = "gl",
    spp: Spp = None,
    radius: Radius = 2.0,
    fov: Fov = 40.0,
    pitch: Pitch = 30.0,
    seed: RigSeed = 0,
    workers: int = typer.Option(2, "--workers", help="Assets loaded and composited at once (GL work runs on $GENCRITIC_RENDER_THREADS threads, default 2)."),
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    allow_untextured: AllowUntextured = False,
    quiet: Quiet = False,
) -> None:
    """Render 3D assets headless (CPU or GPU) into views + camera parameters.

    Examples:

      gencritic render model.glb --out views/            (views/model/000.png ... 007.png, cameras.json)

      gencritic render assets/ --rig orbit24 --resolution 256 --out views/

      gencritic render chair.obj --up z --background transparent --samples 4 --out views/

      GENCRITIC_BLENDER=~/.gencritic-blender/bin/python gencritic render model.glb --renderer cycles --spp 64 --out views/

    World frame: Y-up, the asset's front (+Z) faces yaw 0, yaw 90° looks at its +X side.
    Blank views (nothing in frame) are written but flagged in cameras.json and never scored.
    """
    from gencritic.render.api import render_to_folder

    settings = render_settings_from_cli(
        rig=rig, resolution=resolution, renderer=renderer, spp=spp, allow_untextured=allow_untextured,
        background=background, normalize=normalize, up=up, lighting=lighting, samples=samples, radius=radius,
        fov=fov, pitch=pitch, seed=seed, margin=margin, cache=not no_cache, cache_dir=cache_dir)
    transparent = background.strip().lower() == "transparent"

    def show(report: object) -> None:
        if quiet:
            return
        r = report  # RenderReport
        status = f"error: {r.error}" if r.error else f"{r.views_ok} views" + (f", {r.views_blank} blank" if r.views_blank else "")  # type: ignore[attr-defined]
        typer.echo(f"{r.asset}: {status}", err=True)  # type: ignore[attr-defined]
        for warning in r.warnings:  # type: ignore[attr-defined]
            typer.echo(f"  warning: {warning}", err=True)

    reports = render_to_folder(source, out, settings, transparent=transparent, workers=workers, on_done=show)
    failed = [r for r in reports if r.error]
    renderers = sorted({r.renderer for r in reports if r.renderer})  # from the cache: the one that drew them
    typer.echo(f"rendered {len(reports) - len(failed)}/{len(reports)} assets -> {out}"
               + (f" (renderer: {'; '.join(renderers)})" if renderers else ""))
    if failed:
        raise typer.Exit(1)


def toys4k_command(
    metadata: Path = typer.Argument(..., help="Toys4k metadata.csv (sha256, file_identifier, aesthetic_score, captions)."),
    root: Path = typer.Option(..., "--root", help="Folder holding the assets: Toys4k's .blend files as downloaded (read through Blender), or a converted .obj/.glb tree."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: toys4k_results.csv, toys4k_summary.json, scoring/ (views.csv: per-view scores)."),
    caption: str = typer.Option("longest", "--caption", help="Caption rule: longest (default, most detailed), first, "
                                                             "or mean (mean score over all captions)."),
    max_assets: Optional[int] = typer.Option(None, "--max-assets", "-n", help="Only the first N rows (quick runs)."),  # noqa: UP045
    model: Model = DEFAULT_CLIP_MODEL,
    device: Device = "auto",
    dtype: Dtype = "auto",
    batch_size: BatchSize = 32,
    workers: Workers = None,
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
    up: Up = "y",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
    no_verify_sha256: bool = typer.Option(False, "--no-verify-sha256", help="Score a .blend even when its sha256 "
                                          "differs from the metadata's (by default that row fails, as TRELLIS skips it)."),
    lighting: Lighting = "default",
    renderer: Renderer = "gl",
    spp: Spp = None,
    generated: Optional[Path] = typer.Option(  # noqa: UP045
        None, "--generated", help="Folder of generated assets, one per row (<sha256>.glb, <sha256>/, or the "
                                  "identifier's path): scored against the captions and compared with the dataset's "
                                  "own assets (FD/KD on Inception and DINOv2 features: TRELLIS' Toys4k columns)."),
    inception: Optional[str] = typer.Option(  # noqa: UP045
        None, "--inception", help="With --generated: the FID Inception weights, pt_inception-2015-12-05-6726825d.pth "
                                  "or inception-2015-12-05.pt (default: $GENCRITIC_INCEPTION_WEIGHTS, then torch's "
                                  "and clean-fid's caches)."),
    dinov2: Optional[str] = typer.Option(  # noqa: UP045
        None, "--dinov2", help="With --generated: the DINOv2 model, a hub id or folder (default facebook/dinov2-large, "
                               "ViT-L/14 as dgm-eval)."),
) -> None:
    """Score Toys4k assets by the TRELLIS protocol: 8 views, CLIP cosine with the caption, mean over views.

    Writes the seed's per-asset columns (sha256, file_identifier, aesthetic_score, clip_score,
    num_views_rendered, success, caption_used, error) and summary (mean_clip_score,
    mean_clip_score_scaled = x100, total_assets, successful_evaluations, success_rate).

    Examples:

      gencritic toys4k Toys4k/metadata.csv --root Toys4k/raw --out t4k/ --max-assets 20

      gencritic toys4k metadata.csv --root assets/ --out t4k/ --caption first --model ./clip-vit-b32

      gencritic toys4k Toys4k.csv --root Toys4k/raw --generated my_method/ --out t4k/ --inception pt_inception.pth

    With --generated, toys4k_summary.json also holds 'table' (CLIP, FD_incep, KD_incep, FD_dinov2,
    KD_dinov2, as TRELLIS' table names them) and what each column's number means.
    """
    from gencritic.cli.options import render_options
    from gencritic.datasets.toys4k import Toys4kOptions, run_toys4k

    # the protocol's defaults, checked; lighting is given only when not the default, so earlier
    # output folders keep their fingerprints (as `score` does)
    render = render_settings_from_cli(rig=rig, resolution=resolution, up=up, renderer=renderer, spp=spp,
                                      lighting=None if lighting == "default" else lighting)
    others = {k: v for k, v in render_options(render).items() if k not in ("rig", "resolution", "up")}
    result = run_toys4k(metadata, root, out, Toys4kOptions(
        caption=caption, max_assets=max_assets, model=model, device=device, dtype=dtype, batch_size=batch_size,
        workers=workers, rig=render.rig, resolution=render.resolution, up=render.up, render=others,
        cache_dir=cache_root(cache_dir, no_cache), overwrite=overwrite, progress=not quiet,
        verify_sha256=not no_verify_sha256, generated=generated, inception=inception, dinov2=dinov2))
    s = result.summary
    mean = "n/a" if s["mean_clip_score"] is None else f"{s['mean_clip_score']:.4f} (x100: {s['mean_clip_score_scaled']:.2f})"
    typer.echo(f"{s['successful_evaluations']}/{s['total_assets']} assets scored; mean clip_score = {mean} "
               f"-> {result.results_csv}")
    if s["successful_evaluations"] < s["total_assets"]:
        typer.echo("failed assets have their reason in the 'error' column", err=True)
    if "table" in s:
        cells = ", ".join(f"{k} = {'n/a' if v is None else f'{v:.4g}'}" for k, v in s["table"].items())
        typer.echo(f"TRELLIS columns vs {s['reference_assets']} reference assets: {cells} -> {result.summary_json}")
        for column, error in s["table_errors"].items():
            typer.echo(f"{column}: {error}", err=True)
    scoring = out / "scoring" / "summary.json"  # the seed's files keep the seed's columns; the pipeline's say more
    warned = (json.loads(scoring.read_text()).get("warnings") or {}).get("items", 0) if scoring.is_file() else 0
    if warned:
        typer.echo(f"{warned} item(s) were drawn degraded (e.g. procedural colours a .blend export drops); see the "
                   f"'warnings' column of {out / 'scoring' / 'results.csv'}", err=True)


def convert_command(
    source: Path = typer.Argument(..., help="A .blend file, or a folder searched recursively for them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<same relative path>.glb."),
    quiet: Quiet = False,
) -> None:
    """Convert .blend files to GLB with Blender, exactly as scoring reads them.

    Needs Blender: bash scripts/setup.sh --with-blender, or GENCRITIC_BLENDER=<Python with bpy>.

    Exports what renders; non-Principled shaders keep their colour; a missing texture fails its file.

    Conversions are cached by content: scoring the same files afterwards starts no Blender.

    Examples:

      gencritic convert toys4k_blend_files/ --out toys4k_glb/

      gencritic convert chair.blend --out glb/
    """
    from gencritic.mesh.blend import export_glbs

    reports = export_glbs(source, out, show_progress=not quiet)
    failed = [r for r in reports if r.error]
    for r in reports:
        if r.error:
            typer.echo(f"{r.source}: error: {r.error}", err=True)
        elif not quiet:
            notes = f" ({'; '.join(r.notes)})" if r.notes else ""
            typer.echo(f"{r.source} -> {r.glb}{notes}", err=True)
    typer.echo(f"converted {len(reports) - len(failed)}/{len(reports)} .blend files -> {out}")
    if failed:
        raise typer.Exit(1)
