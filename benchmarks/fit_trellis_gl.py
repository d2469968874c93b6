"""Fit the rasteriser's ``--lighting trellis`` (``gencritic.render.gl.TrellisLighting``) to Cycles.

Two fits, both printed as the constants to paste into ``render/gl.py``:

* ``--tone``: Blender's Filmic view transform (base contrast, sRGB display) is sampled on a grey
  ramp of linear values 2^-11 .. 2^3.8 (through ``Image.save_render`` in the user's Blender) and
  fitted by least squares with 1 / (1 + exp(-p(log2 x))), p a cubic;
* the four gains (ambient, top light, point light, gloss): Nelder–Mead on log-gains minimising,
  per view, 1 - SSIM plus 5 x the mean squared difference of the views composited on white, inside
  the box of the union of the silhouettes (the benchmark's measures), between the rasteriser and ``--renderer cycles --lighting trellis`` on the fitting meshes
  (``--meshes``; the benchmark also reports meshes left out of the fit). Cycles views come from
  the render cache that ``benchmarks/bench_trellis_gap.py`` fills.

    python benchmarks/fit_trellis_gl.py --tone
    python benchmarks/fit_trellis_gl.py --cache-dir /tmp/cache --meshes Duck.glb,fuze.obj,bunny.ply,teapot.stl
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_trellis_gap import SHARED_DATA, WHITE, rasterise_with, render_pair

FIT_MESHES = ("Duck.glb", "fuze.obj", "bunny.ply", "teapot.stl")
MSE_WEIGHT = 5.0  # loss per view: (1 - SSIM) + 5 MSE, both in the union's box (what the benchmark reports)

RAMP_SCRIPT = """
import sys, bpy, numpy as np
bpy.ops.wm.read_factory_settings(use_empty=True)
scene = bpy.context.scene
scene.display_settings.display_device = "sRGB"
scene.view_settings.view_transform = "Filmic"
scene.view_settings.look = "None"
x = np.geomspace(2.0 ** -11, 2.0 ** 3.8, 1024).astype(np.float32)
image = bpy.data.images.new("ramp", width=x.size, height=1, alpha=True, float_buffer=True)
pixels = np.ones((1, x.size, 4), np.float32)
pixels[..., :3] = x[None, :, None]
image.pixels.foreach_set(pixels.ravel())
scene.render.image_settings.file_format = "PNG"
scene.render.image_settings.color_depth = "16"
image.save_render(sys.argv[-1] + "/ramp.png", scene=scene)
np.save(sys.argv[-1] + "/x.npy", x)
"""


def fit_tone() -> tuple[float, float, float, float]:
    """Filmic's grey curve through the user's Blender, fitted (see the module docstring)."""
    from PIL import Image
    from scipy.optimize import least_squares

    from gencritic.blender import blender_command

    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "ramp.py"
        script.write_text(RAMP_SCRIPT)
        subprocess.run([*blender_command(script), tmp], check=True, capture_output=True)
        with Image.open(Path(tmp) / "ramp.png") as im:
            ramp = np.asarray(im).astype(np.float64)
        x = np.load(Path(tmp) / "x.npy").astype(np.float64)
    y = ramp[0, :, 0] / (65535.0 if ramp.max() > 255 else 255.0)
    t = np.log2(x)

    def residual(p: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-np.polyval(p, t))) - y

    fit = least_squares(residual, np.array([0.0, 0.0, 0.6, 1.5]))
    err = residual(fit.x)
    print(f"Filmic fit: rms {np.sqrt((err ** 2).mean()):.4f}, max {np.abs(err).max():.4f} over {x.size} values")
    return tuple(float(v) for v in fit.x)  # type: ignore[return-value]


def fit_gains(paths: Sequence[Path], resolution: int, cache_dir: Path | None) -> tuple[float, float, float, float]:
    from scipy.optimize import minimize
    from skimage.metrics import structural_similarity

    from gencritic.render.compose import composite
    from gencritic.render.gl import TRELLIS_LIGHTING, TrellisLighting

    targets = []
    for path in paths:
        cycles, _ = render_pair(path, resolution, True, cache_dir)
        targets.append((path, [composite(v, WHITE)[0].astype(np.float64) / 255 for v in cycles], cycles[..., 3] > 127))

    def loss(log_gains: np.ndarray) -> float:
        gains = np.exp(log_gains)
        lighting = TrellisLighting(ambient=gains[0], top=gains[1], point=gains[2], gloss=gains[3],
                                   tone=TRELLIS_LIGHTING.tone)
        total, count = 0.0, 0
        for path, views, covered in targets:
            raster = rasterise_with(path, resolution, lighting)
            for k, view in enumerate(views):
                union = covered[k] | (raster[k][..., 3] > 127)
                rows, cols = np.nonzero(union)
                box = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
                ours = composite(raster[k], WHITE)[0].astype(np.float64) / 255
                mse = float(((ours[box] - view[box]) ** 2).mean())
                ssim = structural_similarity(ours[box], view[box], channel_axis=-1, data_range=1.0,
                                             gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
                total += (1.0 - ssim) + MSE_WEIGHT * mse
                count += 1
        return total / count

    start = np.log([TRELLIS_LIGHTING.ambient, TRELLIS_LIGHTING.top, TRELLIS_LIGHTING.point,
                    max(TRELLIS_LIGHTING.gloss, 0.01)])
    result = minimize(loss, start, method="Nelder-Mead", options={"xatol": 1e-3, "fatol": 1e-7, "maxiter": 200})
    gains = np.exp(result.x)
    print(f"gains fit: loss {loss(start):.6f} -> {result.fun:.6f} in {result.nfev} renders")
    return float(gains[0]), float(gains[1]), float(gains[2]), float(gains[3])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tone", action="store_true", help="fit the Filmic curve (needs Blender)")
    parser.add_argument("--meshes", default=",".join(FIT_MESHES))
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tone:
        print("tone =", json.dumps([round(v, 6) for v in fit_tone()]))
        return 0
    paths = [SHARED_DATA / "meshes-small" / name for name in args.meshes.split(",") if name]
    ambient, top, point, gloss = fit_gains(paths, args.resolution, args.cache_dir)
    print(f"TrellisLighting(ambient={ambient:.4f}, top={top:.4f}, point={point:.4f}, gloss={gloss:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
