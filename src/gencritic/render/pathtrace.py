"""The optional path-traced renderer: Blender's Cycles, run in Blender's own Python.

Blender lives in its own environment or is a ``blender`` binary (:mod:`gencritic.blender` says
why and how to set it up); gencritic talks to it through files: the normalised asset and cameras
go in as one ``.npz``, the views come back as PNGs (``render/blender_worker.py``).

Then ``--renderer cycles`` (``--spp`` samples per pixel, default 16). Nothing falls back: without
Blender, rendering fails with the set-up line; a crash of Blender fails that asset with Blender's
last message. It is slow on a CPU (seconds per view) and meant for users who want path-traced
views; the default rasteriser is what the benchmarks and the Toys4k protocol use.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from gencritic.blender import BlenderMissing, blender_command, blender_version, last_line
from gencritic.errors import ItemError
from gencritic.mesh.data import MeshData
from gencritic.render.cameras import Camera
from gencritic.render.compose import premultiply

WORKER = Path(__file__).with_name("blender_worker.py")
# bump when the scene set-up or the loaded colours change pixels (2: linear colours; 3: float factors)
CYCLES_VERSION = "cycles-3"

__all__ = ["CYCLES_VERSION", "BlenderMissing", "blender_version", "render_views_cycles"]


def _scene_arrays(mesh: MeshData, model: np.ndarray, cameras: Sequence[Camera]) -> dict[str, np.ndarray]:
    arrays: dict[str, np.ndarray] = {}
    linear, offset = model[:3, :3], model[:3, 3]
    normal_matrix = np.linalg.inv(linear).T
    for i, prim in enumerate(mesh.primitives):
        if prim.mode != "triangles" or prim.indices is None:
            raise ItemError("the cycles renderer draws surfaces only: render point clouds with --renderer gl")
        arrays[f"pos{i}"] = (prim.positions.astype(np.float64) @ linear.T + offset).astype(np.float32)
        arrays[f"idx{i}"] = prim.indices.astype(np.int32)
        arrays[f"col{i}"] = prim.colors.astype(np.float32)
        if prim.normals is not None:
            n = prim.normals.astype(np.float64) @ normal_matrix.T
            arrays[f"nrm{i}"] = (n / np.maximum(np.linalg.norm(n, axis=1, keepdims=True), 1e-12)).astype(np.float32)
        if prim.uvs is not None and prim.texture is not None:
            arrays[f"uv{i}"] = prim.uvs.astype(np.float32)
            arrays[f"tex{i}"] = prim.texture
    arrays["cam_to_world"] = np.stack([c.camera_to_world() for c in cameras])
    arrays["fov_y_deg"] = np.array([c.fov_y_deg for c in cameras], dtype=np.float64)
    arrays["near"], arrays["far"] = np.array([c.clip_planes() for c in cameras], dtype=np.float64).T
    return arrays


def render_views_cycles(mesh: MeshData, model: np.ndarray, cameras: Sequence[Camera], resolution: int, spp: int,
                        seed: int, lit: bool, timeout_s: float = 3600.0) -> np.ndarray:
    """Premultiplied RGBA uint8 views (V, H, W, 4), row 0 = image top, path-traced by Cycles."""
    from gencritic.render.gl import AMBIENT, FILL, FILL_DIR, KEY, KEY_DIR

    arrays = _scene_arrays(mesh, model, cameras)  # a point cloud is refused before Blender is looked for
    command = blender_command(WORKER)
    settings = {"resolution": resolution, "spp": spp, "seed": seed, "threads": os.cpu_count() or 1, "lit": lit,
                "ambient": AMBIENT, "key": KEY, "fill": FILL, "key_dir": KEY_DIR.tolist(),
                "fill_dir": FILL_DIR.tolist()}
    with tempfile.TemporaryDirectory(prefix="gencritic-cycles-") as tmp:
        scene = Path(tmp) / "scene.npz"
        arrays["settings"] = np.array(json.dumps(settings))
        np.savez(scene, **arrays)  # type: ignore[arg-type]  # numpy's stub types the first keyword only
        try:
            done = subprocess.run([*command, str(scene), tmp], capture_output=True, text=True, timeout=timeout_s,
                                  check=False)
        except subprocess.TimeoutExpired:
            raise ItemError(f"Cycles did not finish within {timeout_s:.0f} s") from None
        if done.returncode != 0 or not (Path(tmp) / "done.json").exists():
            raise ItemError(f"Blender failed (exit {done.returncode}): {last_line(done.stderr, done.stdout)}")
        from PIL import Image

        views = []
        for k in range(len(cameras)):
            with Image.open(Path(tmp) / f"view_{k}.png") as im:
                views.append(premultiply(np.asarray(im.convert("RGBA"))))
    return np.stack(views)
