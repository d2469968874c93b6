"""The ``trellis`` lighting preset of ``--renderer cycles``: TRELLIS' own Blender scene.

TRELLIS renders its assets (training data and the Toys4k evaluation's references) with Blender
3.0.1's Cycles through ``dataset_toolkits/blender_script/render.py``. This module runs the same
scene in the user's Blender (``render/trellis_worker.py``, in Blender's own Python, through
files, like :mod:`gencritic.render.pathtrace`): the asset imported by Blender's importers with
its full materials, TRELLIS' render settings, world, three lights and camera model. It matches
TRELLIS' *settings*, not its pixels: Blender 5's Cycles, glTF importer and denoiser are not 3.0.1's
(docs/rendering.md lists each setting, where it comes from, and what differs).

Frames: gencritic's world is Y-up with the asset's front toward +Z; TRELLIS' is Blender's, Z up.
``BLENDER_FROM_GENCRITIC`` maps one to the other ((x, y, z) -> (x, -z, y), what Blender's glTF
importer does to a file), so the lights sit where TRELLIS puts them relative to the asset, and a
gencritic view at yaw ``y`` is TRELLIS' view at yaw ``y - 90°`` (same position formula).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gencritic.blender import blender_command, last_line
from gencritic.errors import ItemError
from gencritic.render.cameras import Camera
from gencritic.render.compose import premultiply

WORKER = Path(__file__).with_name("trellis_worker.py")
# bump when the worker's scene changes pixels
TRELLIS_CYCLES_VERSION = "trellis-cycles-1"
TRELLIS_SPP = 128  # TRELLIS' cycles.samples (its geometry mode's 1 is not this preset)

BLENDER_FROM_GENCRITIC = np.array([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 1.0, 0.0, 0.0],
                                   [0.0, 0.0, 0.0, 1.0]])

_KINDS = {".glb": "gltf", ".gltf": "gltf", ".obj": "obj", ".ply": "ply", ".stl": "stl", ".blend": "blend"}


def _kind(path: Path) -> str:
    kind = _KINDS.get(path.suffix.lower())
    if kind is None:
        raise ItemError(f"{path.name}: the trellis preset imports assets with Blender's importers, which gencritic "
                        f"runs for {', '.join(sorted(_KINDS))}; render {path.suffix} files with --lighting default")
    return kind


def job_for(path: Path, model: np.ndarray, bounds: np.ndarray, cameras: Sequence[Camera], resolution: int,
            spp: int, seed: int, render: bool = True) -> dict[str, Any]:
    """The worker's job: where the asset sits and what each camera is, in Blender's frame.

    ``model`` is gencritic's normalisation (file -> Y-up world) and ``bounds`` the file's exact
    (2, 3) box as gencritic's loader read it; Blender's importers read files Y-up, i.e. they
    apply ``BLENDER_FROM_GENCRITIC`` to file coordinates, which the root matrix undoes first.
    """
    from gencritic.mesh.kit import is_kit, read_kit

    path = Path(path)
    convert = BLENDER_FROM_GENCRITIC
    root = convert @ model @ np.linalg.inv(convert)
    lo, hi = np.asarray(bounds, dtype=np.float64)
    corners = np.array([[x, y, z, 1.0] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    placed = corners @ (convert @ model).T
    job: dict[str, Any] = {"asset": str(path), "root_matrix": root.tolist(),
                           "expected_bounds": [placed[:, :3].min(axis=0).tolist(), placed[:, :3].max(axis=0).tolist()],
                           "cameras": [{"matrix_world": (convert @ c.camera_to_world()).tolist(), "fov_deg": c.fov_y_deg}
                                       for c in cameras],
                           "resolution": resolution, "spp": spp, "seed": seed, "threads": os.cpu_count() or 1,
                           "render": render}
    if is_kit(path):
        job["kind"] = "kit"
        job["parts"] = [[str(part), _kind(part)] for part in read_kit(path)]
    else:
        job["kind"] = _kind(path)
    if job["kind"] == "kit" and any(kind == "blend" for _, kind in job["parts"]):
        raise ItemError(f"{path.name}: the trellis preset renders a .blend file on its own, not as a kit part")
    return job


def run_trellis_job(job: dict[str, Any], out_dir: Path, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Run the worker on ``job`` writing into ``out_dir``; returns the scene it described."""
    command = blender_command(WORKER)
    job_file = Path(out_dir) / "job.json"
    job_file.write_text(json.dumps(job))
    try:
        done = subprocess.run([*command, str(job_file), str(out_dir)], capture_output=True, text=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:
        raise ItemError(f"Cycles (trellis preset) did not finish within {timeout_s:.0f} s") from None
    if done.returncode != 0 or not (Path(out_dir) / "done.json").exists():
        raise ItemError(f"Blender failed (exit {done.returncode}): {last_line(done.stderr, done.stdout)}")
    return dict(json.loads((Path(out_dir) / "scene.json").read_text()))


def describe_trellis_scene(path: Path, settings: Any) -> dict[str, Any]:
    """The scene the worker builds for ``path`` under ``settings`` (a RenderSettings), read back
    from Blender without rendering: what the tests check against TRELLIS' script."""
    from gencritic.mesh.loaders import load_asset
    from gencritic.mesh.normalize import normalization_transform

    mesh = load_asset(Path(path), allow_untextured=settings.allow_untextured)
    model = normalization_transform(mesh.all_positions(), settings.normalize, settings.up, settings.sphere_radius)
    if settings.margin is not None:  # as render/api.py places it
        from gencritic.render.framing import with_margin

        model = with_margin(model, mesh.all_positions(), settings.cameras(), settings.margin)
    job = job_for(Path(path), model, mesh.bounds(), settings.cameras(), settings.resolution, settings.spp,
                  settings.seed, render=False)
    with tempfile.TemporaryDirectory(prefix="gencritic-trellis-") as tmp:
        return run_trellis_job(job, Path(tmp))


def render_views_trellis(path: Path, model: np.ndarray, bounds: np.ndarray, cameras: Sequence[Camera],
                         resolution: int, spp: int, seed: int, timeout_s: float = 3600.0) -> np.ndarray:
    """Premultiplied RGBA uint8 views (V, H, W, 4), row 0 = image top, in TRELLIS' scene."""
    from PIL import Image

    job = job_for(path, model, bounds, cameras, resolution, spp, seed)
    with tempfile.TemporaryDirectory(prefix="gencritic-trellis-") as tmp:
        run_trellis_job(job, Path(tmp), timeout_s)
        views = []
        for k in range(len(cameras)):
            with Image.open(Path(tmp) / f"view_{k}.png") as im:
                views.append(premultiply(np.asarray(im.convert("RGBA"))))
    return np.stack(views)
