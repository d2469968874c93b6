"""``gencritic compare3d`` (generated vs reference assets) and ``gencritic meshcheck`` (mesh health)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from gencritic.cli.options import Normalize, Overwrite, Quiet, Up


def register(app: typer.Typer) -> None:
    """Add this area's commands to the main app."""
    app.command("compare3d")(compare3d_command)
    app.command("meshcheck")(meshcheck_command)


def compare3d_command(
    generated: Path = typer.Argument(..., help="Folder of generated meshes, a manifest with generated,reference "
                                               "columns, or one mesh file."),
    reference: Optional[Path] = typer.Argument(None, help="Folder of reference meshes (paired by path without the "  # noqa: UP045
                                                          "extension), or one mesh file. Not with a manifest."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder: results.csv (one row per pair), summary.json. "
                                                      "Re-running into the same folder resumes."),
    geometry_only: bool = typer.Option(False, "--geometry-only", help="Only the geometry columns (Chamfer, F-score, "
                                                                      "normal consistency, volume IoU)."),
    samples: int = typer.Option(100_000, "--samples", help="Surface samples per asset (seeded, area-weighted)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the surface samples."),
    fscore_tau: float = typer.Option(0.1, "--fscore-tau", help="F-score threshold in the normalised frame (longest "
                                                               "side 1): 0.1 here is InstantMesh's 0.2 in [-1, 1]^3."),
    align: str = typer.Option("none", "--align", help="none (trust both frames) or search (best of the 24 "
                                                      "axis-aligned rotations, then ICP with scale)."),
    iou_resolution: int = typer.Option(128, "--iou-resolution", help="Volume IoU grid cells on the longest side."),
    normalize: Normalize = "trellis",
    up: Up = "y",
    overwrite: Overwrite = False,
    quiet: Quiet = False,
) -> None:
    """Compare generated 3D assets with references: Chamfer (L1 and squared-L2 forms), F-score, normal
    consistency, volume IoU, in the renderer's normalised frame (--normalize and --up apply to both sets).

    Examples:

      gencritic compare3d generated/ gso_meshes/ --out cmp/ --geometry-only

      gencritic compare3d pairs.csv --out cmp/ --geometry-only --align search --fscore-tau 0.05

    Conventions and the papers that use them: docs/3d_evaluation.md.
    """
    from gencritic.compare3d.evaluators import GeometryEvaluator, GeometryOptions
    from gencritic.compare3d.pairs import collect_pairs
    from gencritic.compare3d.run import run_compare3d
    from gencritic.errors import InputError
    from gencritic.mesh.parallel import check_environment

    if not geometry_only:
        raise InputError("compare3d's render-based columns (PSNR, SSIM, LPIPS, CLIP, DINO per view) are not in this "
                         "version yet: pass --geometry-only")
    options = GeometryOptions(samples=samples, seed=seed, fscore_tau=fscore_tau, align=align,
                              iou_resolution=iou_resolution, normalize=normalize, up=up)
    options.check()
    check_environment()
    pairs = collect_pairs(generated, reference)

    def show(row: dict[str, object]) -> None:
        if quiet:
            return
        if row["success"]:
            typer.echo(f"{row['pair_id']}: chamfer_l1 {row['chamfer_l1']:.5f}, fscore {row['fscore']:.4f}", err=True)
        else:
            typer.echo(f"{row['pair_id']}: error: {row['error']}", err=True)

    result = run_compare3d(pairs, [GeometryEvaluator(options)], out, overwrite=overwrite, on_row=show)
    s = result.summary
    cd = s["metrics"]["chamfer_l1"]["mean"]
    fs = s["metrics"]["fscore"]["mean"]
    means = "n/a" if cd is None else f"mean chamfer_l1 {cd:.5f}, mean fscore@{fscore_tau:g} {fs:.4f}"
    typer.echo(f"{s['successes']}/{s['pairs']} pairs compared; {means} -> {out / 'results.csv'}")
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
