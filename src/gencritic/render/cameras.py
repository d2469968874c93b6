"""Camera rigs: named, deterministic sets of views in one convention.

World: Y-up, right-handed, asset front facing +Z (see :mod:`gencritic.mesh.normalize`).
A view at (yaw, pitch, radius) looks at the origin from

    eye = radius · (sin(yaw)·cos(pitch), sin(pitch), cos(yaw)·cos(pitch))

so yaw 0 looks at the asset's front (+Z side), yaw 90° at its +X side (a right-handed turn
about +Y), pitch 30° is 30° above the horizon. Cameras are OpenGL-style (looking along their
-Z, +Y up in the image); :meth:`Camera.to_json` also gives the OpenCV form for other tools.

Rigs (``--rig``):

* ``toys4k8`` (default): the TRELLIS Toys4k protocol, yaw 0..315 step 45, pitch 30°,
  radius 2, vertical FoV 40°.
* ``orbitN`` (e.g. ``orbit24``): N views, yaw step 360/N, pitch 30°, radius 2, FoV 40°.
* ``six``: front, right, back, left (pitch 0) then top and bottom (pitch ±90°), radius 2.
* ``randomN`` (e.g. ``random16``): N directions uniform on the sphere from ``seed``
  (default 0), radius 2, FoV 40°; same seed, same views.

``radius``, ``fov`` and ``pitch`` (orbit rigs) can be overridden by render options.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

RIG_HELP = "toys4k8 (default), orbitN (e.g. orbit24), six, randomN (e.g. random16, seeded)"


@dataclass(frozen=True)
class Camera:
    """One pinhole camera looking at ``target``."""

    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)
    up: tuple[float, float, float] = (0.0, 1.0, 0.0)
    fov_y_deg: float = 40.0
    yaw_deg: float | None = None
    pitch_deg: float | None = None

    @property
    def radius(self) -> float:
        return float(np.linalg.norm(np.subtract(self.eye, self.target)))

    def camera_to_world(self) -> np.ndarray:
        """4x4 OpenGL camera-to-world (columns: right, up, back, position)."""
        eye = np.asarray(self.eye, dtype=np.float64)
        forward = np.asarray(self.target, dtype=np.float64) - eye
        forward /= np.linalg.norm(forward)
        up = np.asarray(self.up, dtype=np.float64)
        right = np.cross(forward, up)
        if np.linalg.norm(right) < 1e-9:  # looking along the up hint: pick a stable alternative
            right = np.cross(forward, np.array([0.0, 0.0, -1.0 if forward[1] < 0 else 1.0]))
        right /= np.linalg.norm(right)
        true_up = np.cross(right, forward)
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = right, true_up, -forward, eye
        return m

    def view_matrix(self) -> np.ndarray:
        """4x4 world-to-camera (OpenGL)."""
        return np.linalg.inv(self.camera_to_world())

    def clip_planes(self) -> tuple[float, float]:
        """Default (near, far): radius/100 and radius·100, for every renderer alike."""
        r = max(self.radius, 1e-6)
        return r / 100.0, r * 100.0

    def projection_matrix(self, aspect: float = 1.0, near: float | None = None, far: float | None = None) -> np.ndarray:
        """OpenGL perspective matrix; near/far default to :meth:`clip_planes`."""
        default_near, default_far = self.clip_planes()
        n = near if near is not None else default_near
        f = far if far is not None else default_far
        t = 1.0 / math.tan(math.radians(self.fov_y_deg) / 2.0)
        p = np.zeros((4, 4))
        p[0, 0] = t / aspect
        p[1, 1] = t
        p[2, 2] = (f + n) / (n - f)
        p[2, 3] = 2.0 * f * n / (n - f)
        p[3, 2] = -1.0
        return p

    def intrinsics(self, width: int, height: int) -> np.ndarray:
        """3x3 OpenCV K in pixels (pixel centres at +0.5, principal point at the image centre)."""
        fy = (height / 2.0) / math.tan(math.radians(self.fov_y_deg) / 2.0)
        return np.array([[fy, 0.0, width / 2.0], [0.0, fy, height / 2.0], [0.0, 0.0, 1.0]])

    def to_json(self, width: int, height: int) -> dict[str, Any]:
        """Intrinsics and extrinsics in both conventions, for tools that reuse the views."""
        c2w = self.camera_to_world()
        cv_c2w = c2w @ np.diag([1.0, -1.0, -1.0, 1.0])  # OpenCV: +Y down, +Z forward
        return {
            "name": self.name, "yaw_deg": self.yaw_deg, "pitch_deg": self.pitch_deg, "radius": self.radius,
            "fov_y_deg": self.fov_y_deg, "width": width, "height": height,
            "eye": list(self.eye), "target": list(self.target),
            "K": self.intrinsics(width, height).tolist(),
            "c2w_opengl": c2w.tolist(), "w2c_opencv": np.linalg.inv(cv_c2w).tolist(),
        }


def orbit_camera(name: str, yaw_deg: float, pitch_deg: float, radius: float, fov_y_deg: float) -> Camera:
    yaw, pitch = math.radians(yaw_deg), math.radians(pitch_deg)
    eye = (radius * math.sin(yaw) * math.cos(pitch), radius * math.sin(pitch), radius * math.cos(yaw) * math.cos(pitch))
    up = (0.0, 1.0, 0.0)
    if abs(abs(pitch_deg) - 90.0) < 1e-9:  # straight above/below: image-up is the asset's back (-Z) from above
        up = (0.0, 0.0, -1.0) if pitch_deg > 0 else (0.0, 0.0, 1.0)
        eye = (0.0, radius if pitch_deg > 0 else -radius, 0.0)
    return Camera(name, eye, up=up, fov_y_deg=fov_y_deg, yaw_deg=yaw_deg, pitch_deg=pitch_deg)


_ORBIT = re.compile(r"^orbit(\d+)$")
_RANDOM = re.compile(r"^random(\d+)$")


def make_rig(rig: str, radius: float = 2.0, fov_y_deg: float = 40.0, pitch_deg: float = 30.0,
             seed: int = 0) -> list[Camera]:
    """The cameras of a named rig; ``ValueError`` with the valid names for anything else."""
    text = rig.strip().lower()
    if radius <= 0 or not 0 < fov_y_deg < 180:
        raise ValueError(f"camera radius must be > 0 and FoV in (0, 180): got radius={radius}, fov={fov_y_deg}")
    if text == "toys4k8":
        return [orbit_camera(f"{i:03d}", 45.0 * i, 30.0, radius, fov_y_deg) for i in range(8)]
    m = _ORBIT.match(text)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 360:
            raise ValueError(f"rig {rig!r}: orbit needs 1..360 views")
        return [orbit_camera(f"{i:03d}", 360.0 * i / n, pitch_deg, radius, fov_y_deg) for i in range(n)]
    if text == "six":
        spec = [("front", 0, 0), ("right", 90, 0), ("back", 180, 0), ("left", 270, 0), ("top", 0, 90),
                ("bottom", 0, -90)]
        return [orbit_camera(f"{i:03d}", yaw, pitch, radius, fov_y_deg) for i, (_, yaw, pitch) in enumerate(spec)]
    m = _RANDOM.match(text)
    if m:
        n = int(m.group(1))
        if not 1 <= n <= 1000:
            raise ValueError(f"rig {rig!r}: random needs 1..1000 views")
        rng = np.random.default_rng(seed)
        yaws = rng.uniform(0.0, 360.0, n)
        pitches = np.degrees(np.arcsin(rng.uniform(-1.0, 1.0, n)))  # uniform on the sphere
        return [orbit_camera(f"{i:03d}", float(y), float(p), radius, fov_y_deg)
                for i, (y, p) in enumerate(zip(yaws, pitches, strict=True))]
    raise ValueError(f"unknown camera rig {rig!r}: use {RIG_HELP}")


SIX_FACE_NAMES = ("front", "right", "back", "left", "top", "bottom")
