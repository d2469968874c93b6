"""Render-only: gencritic's moderngl/EGL rasteriser vs pyrender (EGL) on the same work.

Same 100k-face vertex-coloured mesh, same 8 toys4k8 cameras, 512², steady state (after a
warm-up pass). Prints ms/view for each, their ratio, and fidelity: silhouette IoU and colour
difference of unlit (flat) renders, where both should show exactly the vertex colours.

pyrender is a peer, not a dependency. Install it aside so the project venv stays untouched:

    pip install --target /tmp/peer --no-deps pyrender PyOpenGL==3.1.0 freetype-py pyglet==1.5.27 imageio
    python benchmarks/bench_render.py --peer-path /tmp/peer

pyrender runs in its own thread (its own EGL context), gencritic in the main thread.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def make_mesh(path: Path, faces_target: int = 100_000) -> Any:
    import trimesh

    rng = np.random.default_rng(0)
    n = round((faces_target / 4) ** 0.5)  # uv_sphere(count=[n, n+2]) has ~4n² faces
    mesh = trimesh.creation.uv_sphere(count=[n, n + 2])
    mesh.vertices *= 1 + 0.05 * rng.standard_normal((len(mesh.vertices), 1))
    # smooth colours (a function of position): a one-pixel rasterisation difference between two
    # renderers then changes a colour slightly instead of jumping to a random neighbour's colour
    unit = mesh.vertices / np.abs(mesh.vertices).max()
    rgba = np.concatenate([(0.5 + 0.5 * unit) * 255, np.full((len(unit), 1), 255)], axis=1)
    mesh.visual.vertex_colors = rgba.round().astype(np.uint8)
    mesh.export(path)
    return trimesh.load(path, process=False)


def gencritic_views(path: Path, repeats: int, lit: bool) -> tuple[list[float], np.ndarray]:
    from gencritic.mesh import load_asset, normalization_transform
    from gencritic.render.cameras import make_rig
    from gencritic.render.gl import thread_renderer

    data = load_asset(path)
    model = normalization_transform(data.all_positions())
    renderer = thread_renderer()
    cams = make_rig("toys4k8")
    out = renderer.render(data, model, cams, 512, lit=lit)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = renderer.render(data, model, cams, 512, lit=lit)
        times.append((time.perf_counter() - t0) / len(cams) * 1000)
    return times, out


def pyrender_views(tm: Any, model: np.ndarray, repeats: int, lit: bool) -> tuple[list[float], np.ndarray]:
    import pyrender

    from gencritic.render.cameras import make_rig

    cams = make_rig("toys4k8")
    scene = pyrender.Scene(bg_color=[0, 0, 0, 0], ambient_light=[0.45, 0.45, 0.45])
    scene.add(pyrender.Mesh.from_trimesh(tm, smooth=False), pose=model)
    cam_node = scene.add(pyrender.PerspectiveCamera(yfov=np.radians(40.0), aspectRatio=1.0, znear=0.02, zfar=200.0))
    scene.add(pyrender.DirectionalLight(intensity=2.0), parent_node=cam_node)
    renderer = pyrender.OffscreenRenderer(512, 512)
    flags = pyrender.RenderFlags.RGBA | (0 if lit else pyrender.RenderFlags.FLAT)

    def all_views() -> np.ndarray:
        views = []
        for cam in cams:
            scene.set_pose(cam_node, cam.camera_to_world())
            color, _ = renderer.render(scene, flags=flags)
            views.append(color)
        return np.stack(views)

    out = all_views()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = all_views()
        times.append((time.perf_counter() - t0) / len(cams) * 1000)
    renderer.delete()
    return times, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=100_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--peer-path", default=None, help="Folder where pyrender was pip-installed with --target.")
    args = ap.parse_args()
    os.environ.setdefault("PYOPENGL_PLATFORM", "egl")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "mesh.ply"
        tm = make_mesh(path, args.faces)
        from gencritic.mesh import load_asset, normalization_transform

        data = load_asset(path)
        model = normalization_transform(data.all_positions())
        g_times, g_flat = gencritic_views(path, args.repeats, lit=False)
        g_times_lit, _ = gencritic_views(path, args.repeats, lit=True)
        g_ms, g_ms_lit = statistics.median(g_times), statistics.median(g_times_lit)
        print(f"mesh: {data.num_faces} faces, 8 views (toys4k8), 512x512, steady state, median of {args.repeats}")
        print(f"gencritic moderngl/EGL ({os.environ.get('LP_NUM_THREADS', 'default')} llvmpipe threads): "
              f"{g_ms_lit:.1f} ms/view lit, {g_ms:.1f} ms/view flat")

        if args.peer_path:
            sys.path.insert(0, args.peer_path)
        try:
            import pyrender  # noqa: F401
        except Exception as exc:
            print(f"pyrender not available ({exc}); see this script's docstring to install it aside")
            return
        result: dict[str, Any] = {}

        def run() -> None:
            try:
                result["lit"] = pyrender_views(tm, model, args.repeats, lit=True)
                result["flat"] = pyrender_views(tm, model, args.repeats, lit=False)
            except Exception as exc:  # report, do not hide: the comparison is then incomplete
                result["error"] = exc

        t = threading.Thread(target=run)
        t.start()
        t.join()
        if "error" in result:
            print(f"pyrender failed: {result['error']!r}")
            return
        p_ms_lit, p_ms = statistics.median(result["lit"][0]), statistics.median(result["flat"][0])
        p_flat = result["flat"][1]
        print(f"pyrender EGL: {p_ms_lit:.1f} ms/view lit, {p_ms:.1f} ms/view flat")
        print(f"speed ratio pyrender / gencritic (lit): {p_ms_lit / g_ms_lit:.2f}x")
        g_mask, p_mask = g_flat[..., 3] > 0, p_flat[..., 3] > 0
        iou = (g_mask & p_mask).sum() / max(1, (g_mask | p_mask).sum())
        both = g_mask & p_mask
        diff = np.abs(g_flat[..., :3].astype(int) - p_flat[..., :3].astype(int))[both]
        print(f"fidelity (flat/unlit): silhouette IoU {iou:.4f}; colour |diff| mean {diff.mean():.2f}/255, "
              f"pixels within 2 levels {100 * (diff.max(axis=1) <= 2).mean():.1f}%")


if __name__ == "__main__":
    main()
