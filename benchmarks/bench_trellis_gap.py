"""What the fast path costs in comparability: the rasteriser's ``--lighting trellis`` against
``--renderer cycles --lighting trellis`` (TRELLIS' Blender scene), per view.

For each view of each mesh (``--meshes``, from ../shared/data/meshes-small; rig ``orbit4``: yaw
0/90/180/270 at pitch 30°, radius 2, FoV 40°, a subset of Toys4k's eight) it prints

* ``ssim``: SSIM (Wang et al. 2004: Gaussian window σ = 1.5, K1 = 0.01, K2 = 0.03, scikit-image's
  ``structural_similarity``, mean over RGB) of the two views composited on white, inside the
  bounding box of the union of their silhouettes (the white margin would inflate it);
* ``iou``: silhouette IoU (alpha > 127 in Cycles, coverage in the rasteriser);
* ``dE``: mean colour difference over pixels both cover: CIEDE2000 (scikit-image) between the
  sRGB values, and ``dRGB``, the mean absolute difference of 8-bit channels;

and the means over views. Acceptance (issue 20): mean SSIM ≥ 0.9 and mean IoU ≥ 0.95.
With ``--model`` (a CLIP model gencritic loads: a hub id in the local cache, a folder, a
checkpoint) it also prints each mesh's CLIP score (mean over views, ``--prompt`` or the file
name) through both renderers and their difference; without it, "skipped: no weights".

Cycles at 128 samples costs ~15 s per 512² view on a 2-core CPU; its views go through the
render cache (``--cache-dir``, default gencritic's), so a second run costs seconds.

    python benchmarks/bench_trellis_gap.py
    python benchmarks/bench_trellis_gap.py --resolution 256 --meshes Duck.glb,bunny.ply
    python benchmarks/bench_trellis_gap.py --model openai/clip-vit-base-patch32
    python benchmarks/bench_trellis_gap.py --save-views /tmp/gap    # side-by-side PNGs to look at
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENCRITIC_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
# textured glTF, textured OBJ, MTL colours, PLY, STL: one of each kind the loaders read
MESHES = ("Duck.glb", "BoxTextured.glb", "fuze.obj", "bunny.ply", "suzanne.ply", "teapot.stl")
RIG = "orbit4"
Z_UP = frozenset({"suzanne.ply", "teapot.stl"})  # Z-up files (docs/rendering.md's gallery): rendered --up z
WHITE = (255, 255, 255)


def render_pair(path: Path, resolution: int, cache: bool, cache_dir: Path | None,
                lighting: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(cycles, raster) premultiplied views of one asset, TRELLIS' scene; ``lighting`` is a
    :class:`gencritic.render.gl.TrellisLighting` to try instead of the preset's (the fit)."""
    from gencritic.render.api import render_asset

    options: dict[str, Any] = {"rig": RIG, "resolution": resolution, "lighting": "trellis", "cache": cache,
                               "cache_dir": cache_dir, "up": up_axis(path)}
    cycles = render_asset(path, {**options, "renderer": "cycles"}).premultiplied
    if lighting is None:  # drawn now (milliseconds): the thing measured is never served stale
        raster = render_asset(path, {**options, "cache": False}).premultiplied
    else:
        raster = rasterise_with(path, resolution, lighting)
    return cycles, raster


def rasterise_with(path: Path, resolution: int, lighting: Any) -> np.ndarray:
    """The rasteriser's trellis views with other gains (no cache: the fit's inner loop)."""
    from gencritic.mesh.normalize import normalization_transform
    from gencritic.render.cameras import make_rig
    from gencritic.render.gl import render_views

    mesh = _loaded(path)
    model = normalization_transform(mesh.all_positions(), up=up_axis(path))
    views, _ = render_views(mesh, model, make_rig(RIG), resolution, trellis=True, trellis_lighting=lighting)
    return views


def up_axis(path: Path) -> str:
    return "z" if path.name in Z_UP else "y"


_MESHES: dict[Path, Any] = {}


def _loaded(path: Path) -> Any:
    from gencritic.mesh import load_asset

    if path not in _MESHES:
        _MESHES[path] = load_asset(path)
    return _MESHES[path]


def view_gap(cycles: np.ndarray, raster: np.ndarray) -> dict[str, float]:
    """SSIM in the union's box, silhouette IoU, mean colour differences where both cover."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    from gencritic.render.compose import composite

    a, _ = composite(cycles, WHITE)
    b, _ = composite(raster, WHITE)
    ca, cb = cycles[..., 3] > 127, raster[..., 3] > 127
    union, both = ca | cb, ca & cb
    if not union.any():
        raise ValueError("both views are empty")
    rows, cols = np.nonzero(union)
    box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    fa, fb = a[box].astype(np.float64) / 255, b[box].astype(np.float64) / 255
    ssim = structural_similarity(fa, fb, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                 use_sample_covariance=False)
    lab_a, lab_b = rgb2lab(a[both].reshape(-1, 1, 3)), rgb2lab(b[both].reshape(-1, 1, 3))
    return {"ssim": float(ssim), "iou": float(both.sum() / union.sum()),
            "dE": float(deltaE_ciede2000(lab_a, lab_b).mean()),
            "dRGB": float(np.abs(a[both].astype(int) - b[both].astype(int)).mean())}


def clip_gap(paths: Sequence[Path], model: str, resolution: int, cache: bool, cache_dir: Path | None,
             prompts: dict[Path, str]) -> list[tuple[str, float, float]]:
    """(mesh, CLIP score through Cycles, through the rasteriser), each the mean over views."""
    import gencritic

    out = []
    for path in paths:
        scores = []
        for renderer in ("cycles", "gl"):
            render = {"rig": RIG, "resolution": resolution, "lighting": "trellis", "renderer": renderer,
                      "cache": cache, "cache_dir": cache_dir, "up": up_axis(path)}
            run = gencritic.score(path, prompt=prompts[path], model=model, render=render, progress=False,
                                  cache_dir=None, device="cpu")
            scores.append(float(run.to_pandas()["clip_score"].iloc[0]))
        out.append((path.name, scores[0], scores[1]))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--meshes", default=",".join(MESHES), help="comma-separated names in meshes-small")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--cache-dir", type=Path, default=None, help="render cache (default: gencritic's)")
    parser.add_argument("--no-cache", action="store_true", help="render Cycles again (~15 s per view)")
    parser.add_argument("--model", default=None, help="CLIP weights for the CLIP-score difference")
    parser.add_argument("--prompt", default=None, help="prompt for every mesh (default: 'a 3D model of a NAME')")
    parser.add_argument("--save-views", type=Path, default=None, help="write cycles|raster PNGs per mesh here")
    args = parser.parse_args(argv)

    folder = SHARED_DATA / "meshes-small"
    if not folder.is_dir():
        print(f"skipped: {folder} not found (set GENCRITIC_SHARED_DATA)")
        return 0
    paths = [folder / name for name in args.meshes.split(",") if name]
    cache, cache_dir = not args.no_cache, args.cache_dir
    started = time.perf_counter()
    per_view: list[dict[str, float]] = []
    print(f"{'mesh':<18}{'view':>5}{'ssim':>8}{'iou':>8}{'dE':>7}{'dRGB':>7}")
    for path in paths:
        cycles, raster = render_pair(path, args.resolution, cache, cache_dir)
        if args.save_views is not None:
            save_side_by_side(args.save_views / f"{path.stem}.png", cycles, raster)
        for k in range(len(cycles)):
            gap = view_gap(cycles[k], raster[k])
            per_view.append(gap)
            print(f"{path.name:<18}{k:>5}{gap['ssim']:>8.4f}{gap['iou']:>8.4f}{gap['dE']:>7.2f}{gap['dRGB']:>7.2f}")
    means = {key: float(np.mean([g[key] for g in per_view])) for key in per_view[0]}
    worst = {key: float(np.min([g[key] for g in per_view])) for key in ("ssim", "iou")}
    print(f"mean over {len(per_view)} views: ssim {means['ssim']:.4f} (min {worst['ssim']:.4f}), iou {means['iou']:.4f} "
          f"(min {worst['iou']:.4f}), CIEDE2000 {means['dE']:.2f}, |dRGB| {means['dRGB']:.2f} / 255")
    ok = means["ssim"] >= 0.9 and means["iou"] >= 0.95
    print(f"acceptance (mean ssim >= 0.9, mean iou >= 0.95): {'pass' if ok else 'FAIL'}")
    if args.model is None:
        print("CLIP-score difference: skipped: no weights (pass --model)")
    else:
        prompts = {p: args.prompt or f"a 3D model of a {p.stem.lower()}" for p in paths}
        rows = clip_gap(paths, args.model, args.resolution, cache, cache_dir, prompts)
        for name, c, r in rows:
            print(f"CLIP {name:<18} cycles {c:.4f} raster {r:.4f} diff {r - c:+.4f}")
        diffs = [r - c for _, c, r in rows]
        print(f"CLIP-score difference (raster - cycles): mean {np.mean(diffs):+.4f}, "
              f"mean |diff| {np.mean(np.abs(diffs)):.4f} (x100: {100 * np.mean(np.abs(diffs)):.2f})")
    print(f"wall {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


def save_side_by_side(file: Path, cycles: np.ndarray, raster: np.ndarray) -> None:
    """Cycles views on the top row, the rasteriser's below (on white)."""
    from PIL import Image

    from gencritic.render.compose import composite

    file.parent.mkdir(parents=True, exist_ok=True)
    rows = [np.concatenate([composite(v, WHITE)[0] for v in views], axis=1) for views in (cycles, raster)]
    Image.fromarray(np.concatenate(rows, axis=0)).save(file)


if __name__ == "__main__":
    sys.exit(main())
