"""Geometry of generated vs reference assets: ``gencritic compare3d --geometry-only`` against a
straightforward per-pair script, on the same pairs, in one process, same numbers checked.

The per-pair script is what papers' evaluation code does for each (generated, reference) pair:
load both meshes (with gencritic's loader and normalisation, so both sides read the same
triangles), ``trimesh.sample.sample_surface`` on each, a ``scipy.spatial.cKDTree`` on each sample
set and one nearest-neighbour query each way; Chamfer (both forms), F-score and normal
consistency from those. gencritic does the same arithmetic (its samples are trimesh's draw, bit
for bit) but loads in worker processes while the previous pair is measured, samples each asset
once per run and keeps its KD-tree, queries in spatial (Morton) order on every core — and also
computes the volume IoU, which the script does not (the ratio is printed with and without it).

Pairs: each reference mesh of ../shared/data/meshes-small with ``--variants`` generated
versions (a small rotation, a shift and vertex noise, written as PLY), as when several methods or
seeds are compared with one reference; ``--variants 1`` measures pairs that share nothing.

    python benchmarks/bench_geometry.py                      # 8 references x 3 variants, 100k samples
    python benchmarks/bench_geometry.py --variants 1 --rounds 3

Extending: render-based columns add a stage to both sides — the script rendering the pair's 8
views with gencritic's render and metric functions one view at a time, gencritic running
compare3d without ``--geometry-only`` — and their timings sum with these.
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

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GENCRITIC_SHARED_DATA", str(ROOT.parent / "shared" / "data")))
MESHES = ("bunny.ply", "Duck.glb", "fandisk.obj", "rabbit.obj", "featuretype.ply", "suzanne.ply", "teapot.stl",
          "fuze.obj")
COMPARED = ("chamfer_l1", "chamfer_l2sq", "fscore", "precision", "recall", "normal_consistency")


def normalised(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """The asset's triangles as gencritic renders them: loader, scene order, TRELLIS normalisation."""
    from gencritic.mesh import load_asset, normalization_transform

    mesh = load_asset(path)
    model = normalization_transform(mesh.all_positions())
    prims = [p for p in mesh.primitives if p.mode == "triangles"]
    offsets = np.cumsum([0] + [p.count for p in prims])[:-1]
    v = np.concatenate([p.positions.astype(np.float64) for p in prims]) @ model[:3, :3].T + model[:3, 3]
    f = np.concatenate([p.indices.reshape(-1, 3).astype(np.int64) + o for p, o in zip(prims, offsets, strict=True)])
    return v, f


def make_pairs(folder: Path, variants: int) -> list[tuple[Path, Path]]:
    import trimesh
    from scipy.spatial.transform import Rotation

    pairs = []
    for name in MESHES:
        ref = SHARED_DATA / "meshes-small" / name
        v, f = normalised(ref)
        for k in range(variants):
            rng = np.random.default_rng(k)
            rot = Rotation.from_euler("xyz", [2.0 + k, -1.5, 3.0 * k], degrees=True).as_matrix()
            moved = v @ rot.T + [0.01 * k, -0.005, 0.0] + rng.normal(scale=0.002 * (k + 1), size=v.shape)
            out = folder / f"{Path(name).stem}_v{k}.ply"
            trimesh.Trimesh(moved, f, process=False).export(out)
            pairs.append((out, ref))
    return pairs


def per_pair_script(pairs: list[tuple[Path, Path]], samples: int, seed: int, tau: float) -> list[dict[str, float]]:
    import trimesh
    from scipy.spatial import cKDTree

    rows = []
    for gen_path, ref_path in pairs:
        sets = []
        for path in (gen_path, ref_path):
            mesh = trimesh.Trimesh(*normalised(path), process=False)
            points, index = trimesh.sample.sample_surface(mesh, samples, seed=seed)
            sets.append((points, mesh.face_normals[index]))
        (pg, ng), (pr, nr) = sets
        dg, ig = cKDTree(pr).query(pg)
        dr, ir = cKDTree(pg).query(pr)
        precision, recall = float(np.mean(dg < tau)), float(np.mean(dr < tau))
        rows.append({
            "chamfer_l1": 0.5 * (float(dg.mean()) + float(dr.mean())),
            "chamfer_l2sq": float((dg**2).mean()) + float((dr**2).mean()),
            "fscore": 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall),
            "precision": precision, "recall": recall,
            "normal_consistency": 0.5 * (float(np.abs((ng * nr[ig]).sum(1)).mean())
                                         + float(np.abs((nr * ng[ir]).sum(1)).mean())),
        })
    return rows


def gencritic_run(pairs: list[tuple[Path, Path]], samples: int, seed: int, tau: float, iou: bool,
                  out: Path) -> list[dict[str, float]]:
    from gencritic.compare3d.evaluators import GeometryEvaluator, GeometryOptions
    from gencritic.compare3d.pairs import Pair
    from gencritic.compare3d.run import run_compare3d
    from gencritic.geometry import iou as iou_module
    from gencritic.geometry import sampling, surface

    surface._kept.clear()  # nothing carried over from an earlier round: each round is a fresh run
    sampling._kept.clear()
    saved = iou_module.volume_iou
    if not iou:
        iou_module.volume_iou = lambda *a, **k: (float("nan"), "skipped by the benchmark")  # type: ignore[assignment]
    try:
        evaluator = GeometryEvaluator(GeometryOptions(samples=samples, seed=seed, fscore_tau=tau))
        result = run_compare3d([Pair(f"{i}", g, r) for i, (g, r) in enumerate(pairs)], [evaluator], out)
    finally:
        iou_module.volume_iou = saved
    assert all(r["success"] for r in result.rows), [r["error"] for r in result.rows if not r["success"]]
    return [{k: float(r[k]) for k in COMPARED} for r in result.rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--variants", type=int, default=3, help="generated assets per reference")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each side is kept")
    parser.add_argument("--tau", type=float, default=0.1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT / "src"))
    if not (SHARED_DATA / "meshes-small").is_dir():
        raise SystemExit(f"needs {SHARED_DATA / 'meshes-small'} (set GENCRITIC_SHARED_DATA)")
    work = Path(tempfile.mkdtemp(prefix="bench_geometry_"))
    try:
        pairs = make_pairs(work, args.variants)
        times: dict[str, list[float]] = {"script": [], "gencritic": [], "gencritic_iou": []}
        results: dict[str, list[dict[str, float]]] = {}
        for r in range(args.rounds):
            for side in times:
                start = time.perf_counter()
                if side == "script":
                    results[side] = per_pair_script(pairs, args.samples, args.seed, args.tau)
                else:
                    results[side] = gencritic_run(pairs, args.samples, args.seed, args.tau, side == "gencritic_iou",
                                                  work / f"out_{side}_{r}")
                times[side].append(time.perf_counter() - start)
        worst = max(abs(a[k] - b[k]) for a, b in zip(results["script"], results["gencritic"], strict=True)
                    for k in COMPARED)
        n = len(pairs)
        best = {k: min(v) for k, v in times.items()}
        print(f"{n} pairs ({len(MESHES)} references x {args.variants} generated), {args.samples} samples per asset, "
              f"{os.cpu_count()} CPUs, best of {args.rounds} interleaved rounds")
        print(f"  per-pair script (trimesh sample_surface + cKDTree) : {1000 * best['script'] / n:8.1f} ms/pair")
        print(f"  gencritic compare3d, same columns                  : {1000 * best['gencritic'] / n:8.1f} ms/pair  "
              f"{best['script'] / best['gencritic']:.2f}x")
        print(f"  gencritic compare3d, + volume IoU (128^3)          : {1000 * best['gencritic_iou'] / n:8.1f} ms/pair  "
              f"{best['script'] / best['gencritic_iou']:.2f}x")
        print("  medians (s): " + ", ".join(f"{k} {statistics.median(v):.2f}" for k, v in times.items()))
        print(f"  same numbers: max |difference| over {', '.join(COMPARED)} = {worst:.2e}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
