"""``gencritic compare3d`` (generated vs reference assets) and ``gencritic meshcheck`` (mesh health)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gencritic.cli.options import (
    DEFAULT_CLIP_MODEL,
    AllowUntextured,
    Background,
    CacheDir,
    Device,
    Dtype,
    Fov,
    Lighting,
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
    Spp,
    Up,
    cache_root,
    render_settings_from_cli,
)

DEFAULT_APPEARANCE = ("psnr", "ssim", "lpips", "clip_i2i", "dino")  # compare3d/appearance.py's default (no import here)


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("compare3d")(compare3d_command)
    app.command("meshcheck")(meshcheck_command)


def compare3d_command(
    generated: Path = typer.Argument(..., help="Folder of generated meshes, a manifest with generated,reference "
                                               "columns, or one mesh file."),
    reference: Optional[Path] = typer.Argument(None, help="Folder of reference meshes (paired by path without the "  # noqa: UP045
                                                          "extension), or one mesh file. Not with a manifest."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: results.csv (one row per pair), views.csv (one "
                                                      "row per pair and view), summary.json, views/ (the compared "
                                                      "renders). Re-running into the same folder resumes."),
    geometry_only: bool = typer.Option(False, "--geometry-only", help="Only the geometry columns (Chamfer, F-score, "
                                                                      "normal consistency, volume IoU)."),
    appearance_only: bool = typer.Option(False, "--appearance-only", help="Only the render-based columns (PSNR, "
                                                                          "SSIM, LPIPS, CLIP, DINO per view)."),
    appearance_metrics: str = typer.Option(",".join(DEFAULT_APPEARANCE), "--appearance-metrics",
                                           help="Render-based metrics, as in --metrics: psnr, ssim, ms_ssim, lpips, "
                                                "clip_i2i, dino, with options (lpips:net=vgg, dino:model=PATH, "
                                                "psnr:mask=auto). Pixel metrics compare whole frames unless mask=auto."),
    samples: int = typer.Option(100_000, "--samples", help="Surface samples per asset (seeded, area-weighted)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the surface samples (and of randomN camera rigs)."),
    fscore_tau: float = typer.Option(0.1, "--fscore-tau", help="F-score threshold in the normalised frame (longest "
                                                               "side 1): 0.1 here is InstantMesh's 0.2 in [-1, 1]^3."),
    align: str = typer.Option("none", "--align", help="none (trust both frames) or search (best of the 24 "
                                                      "axis-aligned rotations, then ICP with scale); the generated "
                                                      "asset is rendered in the pose found."),
    iou_resolution: int = typer.Option(128, "--iou-resolution", help="Volume IoU grid cells on the longest side."),
    normalize: Normalize = "trellis",
    up: Up = "y",
    model: Model = DEFAULT_CLIP_MODEL,
    device: Device = "auto",
    dtype: Dtype = "auto",
    background: Background = "white",
    cache_dir: CacheDir = None,
    no_cache: NoCache = False,
    rig: Rig = "toys4k8",
    resolution: Resolution = 512,
    renderer: Renderer = "gl",
    spp: Spp = None,
    lighting: Lighting = "default",
    msaa: int = typer.Option(0, "--msaa", help="MSAA samples of the rasteriser (0, 1, 2, 4, 8 or 16; --samples is "
                                               "the surface samples here).", rich_help_panel="3D assets"),
    radius: Radius = 2.0,
    fov: Fov = 40.0,
    pitch: Pitch = 30.0,
    allow_untextured: AllowUntextured = False,
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Compare generated 3D assets with references: Chamfer (L1 and squared-L2 forms), F-score, normal
    consistency, volume IoU, in the renderer's normalised frame (--normalize and --up apply to both sets);
    and PSNR, SSIM, LPIPS, CLIP and DINO similarity of both assets' renders from the same cameras.

    Examples:

      gencritic compare3d generated/ gso_meshes/ --out cmp/

      gencritic compare3d generated/ gso_meshes/ --out cmp/ --geometry-only

      gencritic compare3d pairs.csv --out cmp/ --align search --rig orbit24 --appearance-metrics psnr,ssim,lpips

    Conventions and the papers that use them: docs/3d_evaluation.md.
    """
    from gencritic.compare3d.evaluators import GeometryEvaluator, GeometryOptions, PairEvaluator
    from gencritic.compare3d.pairs import collect_pairs
    from gencritic.compare3d.run import run_compare3d
    from gencritic.errors import InputError
    from gencritic.mesh.parallel import check_environment

    if geometry_only and appearance_only:
        raise InputError("--geometry-only and --appearance-only exclude each other: give one, or neither for both")
    options = GeometryOptions(samples=samples, seed=seed, fscore_tau=fscore_tau, align=align,
                              iou_resolution=iou_resolution, normalize=normalize, up=up)
    options.check()
    geometry = GeometryEvaluator(options, keep_alignments=not geometry_only)
    evaluators: list[PairEvaluator] = [] if appearance_only else [geometry]
    if not geometry_only:
        from gencritic.compare3d.appearance import appearance_specs

        specs = appearance_specs(appearance_metrics)  # one line for an unknown name, before anything loads
        render = render_settings_from_cli(rig=rig, resolution=resolution, renderer=renderer, spp=spp,
                                          allow_untextured=allow_untextured, background=background,
                                          normalize=normalize, up=up, lighting=lighting, samples=msaa,
                                          radius=radius, fov=fov, pitch=pitch, seed=seed, cache=not no_cache,
                                          cache_dir=cache_root(cache_dir, no_cache))
    pairs = collect_pairs(generated, reference)
    check_environment()
    if not geometry_only:
        from gencritic.compare3d.appearance import AppearanceEvaluator, AppearanceOptions
        from gencritic.errors import ModelUnavailableError

        try:
            appearance = AppearanceEvaluator(
                AppearanceOptions(render=render, metrics=tuple(specs), model=model, device=device, dtype=dtype,
                                  cache_dir=cache_root(cache_dir, no_cache)),
                aligner=None if align == "none" else geometry.alignment_matrix, views_dir=out / "views")
        except ModelUnavailableError as exc:
            raise ModelUnavailableError(f"{exc} (or pass --geometry-only: the geometry columns need no model)") from None
        for name, why in appearance.unavailable.items():
            typer.echo(f"{name} unavailable (its columns are left out): {why}", err=True)
        evaluators.append(appearance)

    def show(row: dict[str, object]) -> None:
        if quiet:
            return
        if not row["success"]:
            typer.echo(f"{row['pair_id']}: error: {row['error']}", err=True)
            return
        shown = [f"{c} {row[c]:.4f}" for c in ("chamfer_l1", "fscore", "psnr", "ssim", "lpips", "clip_i2i", "dino")
                 if isinstance(row.get(c), float)]
        typer.echo(f"{row['pair_id']}: {', '.join(shown)}", err=True)

    result = run_compare3d(pairs, evaluators, out, overwrite=overwrite, on_row=show)
    s = result.summary
    means = [f"mean {c} {s['metrics'][c]['mean']:.4f}" for c in ("chamfer_l1", "fscore", "psnr", "ssim", "lpips")
             if c in s["metrics"] and s["metrics"][c]["mean"] is not None]
    typer.echo(f"{s['successes']}/{s['pairs']} pairs compared; {', '.join(means) or 'n/a'} -> {out / 'results.csv'}")
    if s["successes"] < s["pairs"]:
        typer.echo("failed pairs have their reason in the 'error' column", err=True)


def meshcheck_command(
    source: Path = typer.Argument(..., help="A mesh file, a folder of meshes (recursive) or a manifest naming them."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: results.csv (one row per asset), summary.json."),
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Mesh health, weight-free: watertight, non-manifold and boundary edges, degenerate and duplicate
    faces, components, self-intersections, counts, textures, PBR channels, UV coverage and overlap.

    Examples:

      gencritic meshcheck generated/ --out health/

      gencritic meshcheck model.glb --out health/
    """
    from gencritic.geometry.meshcheck import run_meshcheck
    from gencritic.mesh.parallel import check_environment

    check_environment()

    def show(row: dict[str, object]) -> None:
        if quiet:
            return
        if row["success"]:
            flags = [name for name, bad in (("not watertight", not row["watertight"]),
                                            ("self-intersecting", row["self_intersections"]),
                                            ("non-manifold", row["non_manifold_edges"]),
                                            ("degenerate faces", row["degenerate_faces"])) if bad]
            typer.echo(f"{row['asset']}: {row['faces']} faces" + (f" ({', '.join(flags)})" if flags else ", clean"),
                       err=True)
        else:
            typer.echo(f"{row['asset']}: error: {row['error']}", err=True)

    result = run_meshcheck(source, out, overwrite=overwrite, on_row=show)
    s = result.summary
    typer.echo(f"{s['successes']}/{s['assets']} assets checked; {s['watertight']} watertight, "
               f"{s['with_self_intersections']} self-intersecting -> {out / 'results.csv'}")
    if result.skipped:
        typer.echo(f"({result.skipped} non-mesh files in the folder were skipped)", err=True)
    if s["successes"] < s["assets"]:
        typer.echo("failed assets have their reason in the 'error' column", err=True)
