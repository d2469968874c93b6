"""``gencritic compare3d`` (geometry + appearance) against a straightforward per-pair script, in one
process, on the same pairs, same numbers checked.

The per-pair script is what a paper's evaluation code does for each (generated, reference) pair:
the geometry of bench_geometry.py (gencritic's loader and normalisation, then
``trimesh.sample.sample_surface`` and ``scipy.spatial.cKDTree`` queries both ways), then the
appearance with gencritic's own functions called one view at a time: each of the pair's two assets
loaded and normalised, each camera of the rig drawn by ``render.gl.render_views`` on its own,
composited on white, and each view scored by the registered metrics (psnr, ssim, lpips,
clip_i2i, dino) in a batch of one, with no embedding cache (every pair starts from nothing).

gencritic runs ``compare3d`` without ``--geometry-only``: meshes load in worker processes while
the previous pair is measured, each asset is sampled once per run, the rig is drawn in one call,
renders are cached by content (a reference shared by several generated variants is drawn once
and kept in memory), the 8 views of a pair go through each model as one batch, and a reference's
embeddings come from the embedding cache after its first pair. Each round gets fresh render and
embedding caches, so nothing is carried over between rounds.

Models: full-size architectures with random weights (CLIP ViT-B/32 as benchmarks/_models.py,
DINOv2-small's config, torchvision's AlexNet features for LPIPS), the same FLOPs as the real ones.

Pairs: each reference mesh of ../shared/data/meshes-small with ``--variants`` generated versions
(bench_geometry.make_pairs: a small rotation, a shift and vertex noise).

    python benchmarks/bench_compare3d.py                       # 8 references x 3 variants, 8 views, 100k samples
    python benchmarks/bench_compare3d.py --variants 1 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "src"))

from benchmarks.bench_geometry import COMPARED, MESHES, SHARED_DATA, make_pairs, per_pair_script  # noqa: E402

APPEARANCE = ("psnr", "ssim", "lpips", "clip_i2i", "dino")


def build_models(folder: Path) -> dict[str, str]:
    """Random full-size CLIP ViT-B/32, DINOv2-small and AlexNet features, saved as a user's local models."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    from benchmarks._models import build_vit_b32
    from gencritic.models.lpips_nets import _features

    clip = build_vit_b32(folder / "clip")
    dino = folder / "dino"
    if not (dino / "config.json").exists():
        torch.manual_seed(1)
        Dinov2Model(Dinov2Config(hidden_size=384, num_hidden_layers=12, num_attention_heads=6, intermediate_size=1536,
                                 image_size=518, patch_size=14)).eval().save_pretrained(dino)
        BitImageProcessor(size={"shortest_edge": 256}, crop_size={"height": 224, "width": 224}, do_center_crop=True,
                          image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225]).save_pretrained(dino)
    alex = folder / "alex.pth"
    if not alex.exists():
        torch.manual_seed(2)
        torch.save({f"features.{k}": v for k, v in _features("alex").state_dict().items()}, alex)
    return {"clip": str(clip), "dino": str(dino), "lpips": str(alex)}


def metric_specs(models: dict[str, str]) -> list[str]:
    from gencritic.compare3d.appearance import appearance_specs

    return appearance_specs(f"psnr,ssim,lpips:weights={models['lpips']},clip_i2i,dino:model={models['dino']}")


def script_appearance(pairs: list[tuple[Path, Path]], models: dict[str, str], resolution: int) -> list[dict[str, float]]:
    """Per pair, per side, per view: load, draw one camera, composite; then each metric on one view."""
    from PIL import Image

    from gencritic.cache import EmbeddingCache
    from gencritic.io.images import WHITE, LoadedImage
    from gencritic.items import Item
    from gencritic.mesh import load_asset, normalization_transform
    from gencritic.models.loader import ModelPool
    from gencritic.render.cameras import make_rig
    from gencritic.render.compose import composite
    from gencritic.render.gl import render_views
    from gencritic.scoring.metric_set import MetricSet
    from gencritic.views import RunContext, View, ViewBatch

    metric_set = MetricSet.build(metric_specs(models), models["clip"])
    ctx = RunContext(pool=_POOL.setdefault("pool", ModelPool("cpu", "fp32")), cache=EmbeddingCache(None),
                     default_model=models["clip"])
    metric_set.setup(ctx)
    cameras = make_rig("toys4k8")
    rows = []
    for number, (gen_path, ref_path) in enumerate(pairs):
        sides = []
        for path in (gen_path, ref_path):
            mesh = load_asset(path)
            model = normalization_transform(mesh.all_positions())
            lo, hi = mesh.bounds()  # render_asset's settings: back faces culled when every camera is outside
            corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
            reach = float(np.linalg.norm(corners @ model[:3, :3].T + model[:3, 3], axis=1).max())
            cull = min(float(np.linalg.norm(c.eye)) for c in cameras) > reach * 1.001
            images = []
            for camera in cameras:
                premult, _ = render_views(mesh, model, [camera], resolution, samples=0, lit=True, trellis=False,
                                          point_size=max(1.0, resolution / 128.0), cull_closed=cull)
                rgb, alpha = composite(premult[0], WHITE)
                images.append(LoadedImage(Image.fromarray(rgb), f"{number}-{path}-{camera.name}", alpha))
            sides.append(images)
        values: dict[str, list[float]] = {m: [] for m in APPEARANCE}
        for i, (g, r) in enumerate(zip(*sides, strict=True)):
            item = Item(item_id=f"{number}/{i}", kind="image", path=gen_path)
            batch = ViewBatch([View(item, i, g.sha256, lambda g=g: g)], ctx, {item.item_id: r})
            for metric in metric_set.view_metrics:
                for column, v in metric.compute(batch).values.items():
                    values[column].append(float(v[0]))
        rows.append({m: float(np.mean(v)) for m, v in values.items()})
    return rows


_POOL: dict[str, Any] = {}  # one model pool per process for both sides: loading weights is not what is measured
PROFILE: dict[str, dict[str, float]] = {"script": {}, "gencritic": {}}  # side -> metric -> seconds in compute
_SIDE = ["script"]


def profile_metrics() -> None:
    """Time each reference metric's compute() on whichever side is running (the profile shares)."""
    from gencritic.metrics import reference

    for cls in (reference.PSNR, reference.SSIM, reference.LPIPS, reference.ClipImageImage, reference.DinoSimilarity):
        def timed(self: Any, batch: Any, _compute: Any = cls.compute, _name: str = cls.info.name) -> Any:
            start = time.perf_counter()
            try:
                return _compute(self, batch)
            finally:
                shares = PROFILE[_SIDE[0]]
                shares[_name] = shares.get(_name, 0.0) + time.perf_counter() - start
        cls.compute = timed  # type: ignore[method-assign]


def gencritic_run(pairs: list[tuple[Path, Path]], models: dict[str, str], samples: int, seed: int, tau: float,
                  resolution: int, work: Path) -> list[dict[str, float]]:
    from gencritic.compare3d.appearance import AppearanceEvaluator, AppearanceOptions
    from gencritic.compare3d.evaluators import GeometryEvaluator, GeometryOptions
    from gencritic.compare3d.pairs import Pair
    from gencritic.compare3d.run import run_compare3d
    from gencritic.geometry import iou as iou_module
    from gencritic.geometry import sampling, surface
    from gencritic.models.loader import ModelPool
    from gencritic.render.settings import RenderSettings

    surface._kept.clear()  # nothing carried over from an earlier round: each round is a fresh run
    sampling._kept.clear()
    saved = iou_module.volume_iou  # the script has no IoU: leave it out of both
    iou_module.volume_iou = lambda *a, **k: (float("nan"), "skipped by the benchmark")  # type: ignore[assignment]
    try:
        render = RenderSettings(resolution=resolution, cache_dir=work / "cache" / "renders")
        appearance = AppearanceEvaluator(AppearanceOptions(render=render, metrics=tuple(metric_specs(models)),
                                                           model=models["clip"], device="cpu", dtype="fp32",
                                                           cache_dir=work / "cache"), views_dir=work / "out" / "views",
                                        pool=_POOL.setdefault("pool", ModelPool("cpu", "fp32")))  # the script's weights
        geometry = GeometryEvaluator(GeometryOptions(samples=samples, seed=seed, fscore_tau=tau))
        result = run_compare3d([Pair(f"{i}", g, r) for i, (g, r) in enumerate(pairs)], [geometry, appearance],
                               work / "out")
    finally:
        iou_module.volume_iou = saved
    assert all(r["success"] for r in result.rows), [r["error"] for r in result.rows if not r["success"]]
    return [{k: float(r[k]) for k in (*COMPARED, *APPEARANCE)} for r in result.rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=3, help="generated assets per reference")
    parser.add_argument("--references", type=int, default=len(MESHES), help="how many of the shared meshes")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds; the best of each side is kept")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", type=Path, default=Path(tempfile.gettempdir()) / "gencritic_bench_models")
    args = parser.parse_args()
    if not (SHARED_DATA / "meshes-small").is_dir():
        raise SystemExit(f"needs {SHARED_DATA / 'meshes-small'} (set GENCRITIC_SHARED_DATA)")
    import benchmarks.bench_geometry as bg

    bg.MESHES = MESHES[:args.references]  # type: ignore[misc]
    models = build_models(args.models)
    work = Path(tempfile.mkdtemp(prefix="bench_compare3d_"))
    try:
        pairs = make_pairs(work, args.variants)
        times: dict[str, list[float]] = {"script": [], "gencritic": []}
        parts: dict[str, list[float]] = {"script geometry": [], "script appearance": []}
        results: dict[str, list[dict[str, float]]] = {}
        script_appearance(pairs[:1], models, args.resolution)  # weights loaded and GL contexts made before timing
        profile_metrics()
        for r in range(args.rounds):
            _SIDE[0] = "script"
            start = time.perf_counter()
            geometry = per_pair_script(pairs, args.samples, args.seed, args.tau)
            middle = time.perf_counter()
            appearance = script_appearance(pairs, models, args.resolution)
            end = time.perf_counter()
            results["script"] = [{**g, **a} for g, a in zip(geometry, appearance, strict=True)]
            times["script"].append(end - start)
            parts["script geometry"].append(middle - start)
            parts["script appearance"].append(end - middle)
            round_dir = work / f"round{r}"
            _SIDE[0] = "gencritic"
            start = time.perf_counter()
            results["gencritic"] = gencritic_run(pairs, models, args.samples, args.seed, args.tau, args.resolution,
                                                 round_dir)
            times["gencritic"].append(time.perf_counter() - start)
            shutil.rmtree(round_dir, ignore_errors=True)
        worst = {k: max(abs(a[k] - b[k]) for a, b in zip(results["script"], results["gencritic"], strict=True))
                 for k in (*COMPARED, *APPEARANCE)}
        n = len(pairs)
        best = {k: min(v) for k, v in times.items()}
        print(f"{n} pairs ({len(bg.MESHES)} references x {args.variants} generated), 8 views of {args.resolution}² "
              f"and {args.samples} samples per asset, {os.cpu_count()} CPUs, best of {args.rounds} interleaved rounds")
        print(f"  per-pair script (sample_surface + cKDTree; render and metrics one view at a time): "
              f"{1000 * best['script'] / n:8.1f} ms/pair "
              f"(geometry {1000 * min(parts['script geometry']) / n:.0f}, appearance "
              f"{1000 * min(parts['script appearance']) / n:.0f})")
        print(f"  gencritic compare3d, same columns: {1000 * best['gencritic'] / n:8.1f} ms/pair  "
              f"{best['script'] / best['gencritic']:.2f}x")
        print("  medians (s): " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in times.items()))
        rounds = args.rounds * n
        for side, total in (("script", sum(times["script"])), ("gencritic", sum(times["gencritic"]))):
            shares = PROFILE[side]
            rest = total - sum(shares.values())
            print(f"  where {side}'s time goes (ms/pair, share): " + ", ".join(
                f"{k} {1000 * v / rounds:.0f} ({100 * v / total:.0f}%)" for k, v in [*shares.items(), (
                    "renders+geometry+rest" if side == "script" else "geometry+rest (renders overlap)", rest)]))
        print("  same numbers: max |difference| " + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
