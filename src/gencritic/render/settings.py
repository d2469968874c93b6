"""Render settings: parsed and validated once, hashed into every cache key.

Why one frozen record: every number a view's pixels depend on (rig, resolution, lighting,
normalisation, MSAA, background...) must enter the content key, or a cache would serve a
picture made with other settings. ``RENDERER_VERSION`` changes whenever the shader or the
compositing changes pixels, which invalidates old cache entries.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from gencritic.errors import InputError
from gencritic.io.images import RGB, WHITE, parse_background
from gencritic.mesh.normalize import NORMALIZATIONS, UP_AXES
from gencritic.render.cameras import RIG_HELP, Camera, make_rig

# gl-2: back faces of closed meshes culled; gl-3: linear colours (glTF factors and COLOR_0,
# Blender's MTL Kd) encoded to sRGB; gl-4: glTF base-colour factors and float/16-bit COLOR_0 at
# their precision (were bytes of the linear value), glTF point-cloud colours read as linear
RENDERER_VERSION = "gl-4"
LIGHTINGS = ("default", "flat")
RENDERERS = ("gl", "cycles")


@dataclass(frozen=True)
class RenderSettings:
    """Everything that decides a rendered view's pixels (plus where the cache lives)."""

    rig: str = "toys4k8"
    resolution: int = 512
    background: RGB = WHITE
    normalize: str = "trellis"
    up: str = "y"
    sphere_radius: float = 0.5
    radius: float = 2.0
    fov: float = 40.0
    pitch: float = 30.0
    seed: int = 0
    lighting: str = "default"
    samples: int = 0  # MSAA; 0 by default: on llvmpipe 4x costs ~6x time for ~0 change at CLIP size (docs)
    point_size: float = 0.0  # pixels; 0 = resolution / 128
    renderer: str = "gl"  # gl: the rasteriser (default); cycles: Blender's path tracer (render/pathtrace.py)
    spp: int = 16  # Cycles samples per pixel (the gl renderer ignores it)
    # draw an asset whose textures or material library are missing in plain colours (a row
    # warning) instead of failing it; decides whether an asset is drawn, never its pixels
    allow_untextured: bool = False
    cache: bool = True
    cache_dir: Path | None = field(default=None, compare=False)

    def cameras(self) -> list[Camera]:
        return make_rig(self.rig, self.radius, self.fov, self.pitch, self.seed)

    @property
    def effective_point_size(self) -> float:
        return self.point_size if self.point_size > 0 else max(1.0, self.resolution / 128.0)

    def pixel_settings(self) -> dict[str, Any]:
        """The settings that change pixels (cache-dir, cache on/off and allow_untextured do not)."""
        d = asdict(self)
        for k in ("cache", "cache_dir", "allow_untextured"):
            d.pop(k)
        d["background"] = list(self.background)
        d["point_size"] = self.effective_point_size
        if self.renderer == "cycles":  # Blender's version is part of what a path-traced view is
            from gencritic.render.pathtrace import CYCLES_VERSION, blender_version

            d.pop("samples")
            d["renderer"] = f"{CYCLES_VERSION}/blender-{blender_version()}"
        else:  # the keys of rasterised views are what they were before Cycles existed
            d.pop("spp")
            d["renderer"] = RENDERER_VERSION
        return d

    def key(self) -> str:
        return self._key

    @functools.cached_property
    def _key(self) -> str:  # hashed once per settings object: it is asked for every view
        return hashlib.sha256(json.dumps(self.pixel_settings(), sort_keys=True).encode()).hexdigest()


_FIELDS = {f for f in RenderSettings.__dataclass_fields__}


def _flag(name: str, value: Any) -> bool:
    """A yes/no option from Python (bool) or text (CLI, YAML, JSON): true/false, yes/no, 1/0."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "yes", "1"):
        return True
    if text in ("false", "no", "0"):
        return False
    raise ValueError(f"{name}={value!r}: use true or false")


def parse_render_options(options: dict[str, Any] | None) -> RenderSettings:
    """Validate a render-options dict (from the CLI or the Python API) into settings.

    Raises :class:`InputError` with one line naming the bad option and the valid values.
    """
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    unknown = sorted(set(opts) - _FIELDS)
    if unknown:
        raise InputError(f"unknown render option(s) {', '.join(unknown)}: valid are {', '.join(sorted(_FIELDS))}")
    try:
        if "background" in opts:
            opts["background"] = parse_background(opts["background"])
        for name in ("resolution", "seed", "samples", "spp"):
            if name in opts:
                opts[name] = int(opts[name])
        for name in ("sphere_radius", "radius", "fov", "pitch", "point_size"):
            if name in opts:
                opts[name] = float(opts[name])
        if "cache_dir" in opts:
            opts["cache_dir"] = Path(opts["cache_dir"])
        if "allow_untextured" in opts:
            opts["allow_untextured"] = _flag("allow_untextured", opts["allow_untextured"])
        settings = RenderSettings(**opts)
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad render option: {exc}") from None
    if not 16 <= settings.resolution <= 4096:
        raise InputError(f"--resolution {settings.resolution}: use 16..4096 pixels")
    if settings.normalize not in NORMALIZATIONS:
        raise InputError(f"normalize={settings.normalize!r}: use one of {', '.join(NORMALIZATIONS)}")
    if settings.up not in UP_AXES:
        raise InputError(f"up={settings.up!r}: use y (glTF, most OBJ) or z (Blender/CAD Z-up)")
    if settings.lighting not in LIGHTINGS:
        raise InputError(f"lighting={settings.lighting!r}: use default (ambient + 2 directional) or flat (unlit albedo)")
    if settings.samples not in (0, 1, 2, 4, 8, 16):
        raise InputError(f"samples={settings.samples}: MSAA samples must be 0, 1, 2, 4, 8 or 16")
    if settings.renderer not in RENDERERS:
        raise InputError(f"renderer={settings.renderer!r}: use gl (rasteriser, default) or cycles (Blender's path tracer)")
    if not 1 <= settings.spp <= 65536:
        raise InputError(f"spp={settings.spp}: Cycles samples per pixel must be 1..65536")
    if settings.renderer == "cycles":
        from gencritic.render.pathtrace import BlenderMissing, blender_version

        try:
            blender_version()  # no Blender is one line before any asset is touched
        except BlenderMissing as exc:
            raise InputError(f"--renderer cycles: {exc}") from None
    if settings.sphere_radius <= 0:
        raise InputError("sphere_radius must be > 0")
    try:
        settings.cameras()
    except ValueError as exc:
        raise InputError(f"--rig: {exc} ({RIG_HELP})") from None
    return settings
