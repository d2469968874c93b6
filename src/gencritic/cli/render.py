"""``gencritic render`` (views of 3D assets), ``gencritic toys4k`` (the Toys4k CLIP protocol) and
``gencritic convert`` (.blend to GLB through Blender)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from gencritic.models.loader import DEFAULT_CLIP_MODEL


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("render")(render_command)
    app.command("toys4k")(toys4k_command)
    app.command("convert")(convert_command)


def _render_options(rig: str, resolution: int, background: str, normalize: str, up: str, lighting: str,
                    samples: int, radius: float, fov: float, pitch: float, seed: int, no_cache: bool,
                    cache_dir: Optional[Path], renderer: str = "gl", spp: Optional[int] = None,  # noqa: UP045
                    allow_untextured: bool = False, margin: Optional[float] = None) -> dict[str, object]:  # noqa: UP045
    opts: dict[str, object] = {"rig": rig, "resolution": resolution, "normalize": normalize, "up": up,
                               "lighting": lighting, "samples": samples, "radius": radius, "fov": fov,
                               "pitch": pitch, "seed": seed, "cache": not no_cache, "renderer": renderer,
                               "spp": spp, "allow_untextured": allow_untextured}
    if background.strip().lower() != "transparent":
        opts["background"] = background
    if cache_dir is not None:
        opts["cache_dir"] = cache_dir / "renders"
    if margin is not None:
        opts["margin"] = margin
    return opts


def render_command(
    source: Path = typer.Argument(..., help="A mesh (.glb .gltf .obj .ply .stl .off, .blend through Blender, point cloud .npz) or a folder of them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<asset-name>/000.png ... and cameras.json."),
    rig: str = typer.Option("toys4k8", "--rig", help="toys4k8 (8 views, yaw 0..315 step 45, pitch 30°, radius 2, FoV 40°), "
                                                     "orbitN, six, randomN (seeded by --seed)."),
    resolution: int = typer.Option(512, "--resolution", "-r", help="View size in pixels (square)."),
    background: str = typer.Option("white", "--background", help="white, black, grey, #rrggbb, r,g,b, or transparent (RGBA PNGs)."),
    normalize: str = typer.Option("trellis", "--normalize", help="trellis (bbox centre at origin, longest side 1), "
                                                                 "sphere (fits a sphere of radius 0.5), none (own scale)."),
    up: str = typer.Option("y", "--up", help="The asset's up axis: y (glTF, most OBJ) or z (Blender/CAD exports)."),
    margin: Optional[float] = typer.Option(None, "--margin", help="Scale the normalised asset so every vertex stays this fraction of the half-frame (0..0.5, e.g. 0.05) from the edge in every view; unset: the protocol's framing, where box-like assets touch the edge."),  # noqa: UP045
    lighting: str = typer.Option("default", "--lighting", help="default (soft ambient + 2 directional), flat (unlit colours) or trellis (TRELLIS' Blender scene: exact with --renderer cycles, fitted for gl; docs/rendering.md)."),
    samples: int = typer.Option(0, "--samples", help="MSAA samples (0, 2, 4, 8): smoother edges, ~6x slower on CPU."),
    renderer: str = typer.Option("gl", "--renderer", help="gl (rasteriser, default, fast) or cycles (Blender's path tracer: "
                                                          "shadows, seconds per view; needs GENCRITIC_BLENDER, see docs/rendering.md)."),
    spp: Optional[int] = typer.Option(None, "--spp", help="Cycles samples per pixel (with --renderer cycles; default 16, 128 with --lighting trellis)."),  # noqa: UP045
    radius: float = typer.Option(2.0, "--radius", help="Camera distance from the origin."),
    fov: float = typer.Option(40.0, "--fov", help="Vertical field of view in degrees."),
    pitch: float = typer.Option(30.0, "--pitch", help="Elevation of orbitN views in degrees."),
    seed: int = typer.Option(0, "--seed", help="Seed of randomN rigs."),
    workers: int = typer.Option(2, "--workers", help="Assets loaded and composited at once (GL work runs on $GENCRITIC_RENDER_THREADS threads, default 2)."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Cache root (renders go in CACHE_DIR/renders)."),  # noqa: UP045
    no_cache: bool = typer.Option(False, "--no-cache", help="Neither read nor write the render cache."),
    allow_untextured: bool = typer.Option(False, "--allow-untextured", help="Meshes whose textures or material library are missing: draw them in plain colours and name it in the cameras.json warnings, instead of failing them."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only the summary line."),
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

    opts = _render_options(rig, resolution, background, normalize, up, lighting, samples, radius, fov, pitch, seed,
                           no_cache, cache_dir, renderer, spp, allow_untextured, margin)
    transparent = background.strip().lower() == "transparent"

    def show(report: object) -> None:
        if quiet:
            return
        r = report  # RenderReport
        status = f"error: {r.error}" if r.error else f"{r.views_ok} views" + (f", {r.views_blank} blank" if r.views_blank else "")  # type: ignore[attr-defined]
        typer.echo(f"{r.asset}: {status}", err=True)  # type: ignore[attr-defined]
        for warning in r.warnings:  # type: ignore[attr-defined]
            typer.echo(f"  warning: {warning}", err=True)

    reports = render_to_folder(source, out, opts, transparent=transparent, workers=workers, on_done=show)
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
    model: str = typer.Option(DEFAULT_CLIP_MODEL, "--model", "-m", help="CLIP model: HF id, local folder, checkpoint."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N, mps."),
    dtype: str = typer.Option("auto", "--dtype", help="auto, fp32, fp16, bf16, int8."),
    batch_size: int = typer.Option(32, "--batch-size", "-b", help="Views per model batch."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Threads that load/render/preprocess items (default: beside a GPU one per mesh-loader process, at least 2; on a CPU whose cores torch uses, one per core in bursts between encoder calls; 0 = inline)."),  # noqa: UP045
    rig: str = typer.Option("toys4k8", "--rig", help="Camera rig (the protocol's is toys4k8)."),
    resolution: int = typer.Option(512, "--resolution", help="View size (the protocol's is 512)."),
    up: str = typer.Option("y", "--up", help="Asset up axis: y or z."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Embedding/render cache root."),  # noqa: UP045
    no_cache: bool = typer.Option(False, "--no-cache", help="No embedding or render cache."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Discard earlier results in --out instead of resuming."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    no_verify_sha256: bool = typer.Option(False, "--no-verify-sha256", help="Score a .blend even when its sha256 "
                                          "differs from the metadata's (by default that row fails, as TRELLIS skips it)."),
) -> None:
    """Score Toys4k assets by the TRELLIS protocol: 8 views, CLIP cosine with the caption, mean over views.

    Writes the seed's per-asset columns (sha256, file_identifier, aesthetic_score, clip_score,
    num_views_rendered, success, caption_used, error) and summary (mean_clip_score,
    mean_clip_score_scaled = x100, total_assets, successful_evaluations, success_rate).

    Examples:

      gencritic toys4k Toys4k/metadata.csv --root Toys4k/raw --out t4k/ --max-assets 20

      gencritic toys4k metadata.csv --root assets/ --out t4k/ --caption first --model ./clip-vit-b32
    """
    from gencritic.cache import default_cache_dir
    from gencritic.datasets.toys4k import Toys4kOptions, run_toys4k

    result = run_toys4k(metadata, root, out, Toys4kOptions(
        caption=caption, max_assets=max_assets, model=model, device=device, dtype=dtype, batch_size=batch_size,
        workers=workers, rig=rig, resolution=resolution, up=up,
        cache_dir=None if no_cache else (cache_dir or default_cache_dir()), overwrite=overwrite, progress=not quiet,
        verify_sha256=not no_verify_sha256))
    s = result.summary
    mean = "n/a" if s["mean_clip_score"] is None else f"{s['mean_clip_score']:.4f} (x100: {s['mean_clip_score_scaled']:.2f})"
    typer.echo(f"{s['successful_evaluations']}/{s['total_assets']} assets scored; mean clip_score = {mean} "
               f"-> {result.results_csv}")
    if s["successful_evaluations"] < s["total_assets"]:
        typer.echo("failed assets have their reason in the 'error' column", err=True)
    scoring = out / "scoring" / "summary.json"  # the seed's files keep the seed's columns; the pipeline's say more
    warned = (json.loads(scoring.read_text()).get("warnings") or {}).get("items", 0) if scoring.is_file() else 0
    if warned:
        typer.echo(f"{warned} item(s) were drawn degraded (e.g. procedural colours a .blend export drops); see the "
                   f"'warnings' column of {out / 'scoring' / 'results.csv'}", err=True)


def convert_command(
    source: Path = typer.Argument(..., help="A .blend file, or a folder searched recursively for them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: OUT/<same relative path>.glb."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar; print failures only."),
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
