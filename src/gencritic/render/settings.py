"""Render settings: parsed and validated once, hashed into every cache key.

Why one frozen record: every number a view's pixels depend on (rig, resolution, lighting,
normalisation, MSAA, background...) must enter the content key, or a cache would serve a
picture made with other settings. ``RENDERER_VERSION`` changes whenever the shader or the
compositing changes pixels, which invalidates old cache entries.

Why a pydantic model: it is the one schema of render options (CLI, Python API, service, Toys4k),
strict like every user-facing schema (:mod:`gencritic.schemas`): an unknown option or a value of
the wrong type or range is one InputError line with the accepted keys and the closest match,
whichever entry point built it.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from gencritic.errors import InputError
from gencritic.io.images import RGB, WHITE, parse_background
from gencritic.mesh.normalize import NORMALIZATIONS, UP_AXES
from gencritic.render.cameras import RIG_HELP, Camera, make_rig
from gencritic.schemas import StrictModel, validate_strict

# gl-2: back faces of closed meshes culled; gl-3: linear colours (glTF factors and COLOR_0,
# Blender's MTL Kd) encoded to sRGB; gl-4: glTF base-colour factors and float/16-bit COLOR_0 at
# their precision (were bytes of the linear value), glTF point-cloud colours read as linear
RENDERER_VERSION = "gl-4"
LIGHTINGS = ("default", "flat", "trellis")
LIGHTING_HELP = ("default (ambient + 2 directional), flat (unlit albedo) or trellis (TRELLIS' Blender scene: "
                 "with --renderer cycles its exact settings, with gl a rasteriser fitted to them)")
RENDERERS = ("gl", "cycles")
MSAA_SAMPLES = (0, 1, 2, 4, 8, 16)


class RenderSettings(StrictModel):
    """Everything that decides a rendered view's pixels (plus where the cache lives).

    Constructing one validates it (types, ranges, the rig); :func:`parse_render_options` is the
    entry point that also checks the environment (Blender for ``renderer=cycles``)."""

    rig: str = Field("toys4k8", description=f"camera rig: {RIG_HELP}")
    resolution: int = Field(512, description="view size in pixels, 16..4096")
    background: RGB = Field(WHITE, description="colour under transparent pixels: white, black, grey, #rrggbb or r,g,b")
    normalize: str = Field("trellis", description=f"mesh normalisation: {', '.join(NORMALIZATIONS)}")
    up: str = Field("y", description="up axis: y (glTF, most OBJ) or z (Blender/CAD)")
    sphere_radius: float = Field(0.5, description="radius of the bounding sphere with normalize=sphere (> 0)")
    # None: the protocol's normalisation alone (cube-like assets touch the frame edge); not in cache keys then
    margin: float | None = Field(None, description="after normalising, scale the asset so every vertex stays this "
                                                   "fraction of the half-frame away from the edge in every view "
                                                   "(0..0.5; unset: the protocol's framing, which can clip)")
    radius: float = Field(2.0, description="camera distance from the centre")
    fov: float = Field(40.0, description="vertical field of view, degrees")
    pitch: float = Field(30.0, description="camera elevation, degrees")
    seed: int = Field(0, description="seed of random rigs")
    lighting: str = Field("default", description=LIGHTING_HELP)
    # MSAA; 0 by default: on llvmpipe 4x costs ~6x time for ~0 change at CLIP size (docs)
    samples: int = Field(0, description="MSAA samples: 0, 1, 2, 4, 8 or 16")
    point_size: float = Field(0.0, description="point-cloud point size in pixels; 0 = resolution / 128")
    # gl: the rasteriser (default); cycles: Blender's path tracer (render/pathtrace.py)
    renderer: str = Field("gl", description="gl (rasteriser) or cycles (Blender's path tracer)")
    spp: int = Field(16, description="Cycles samples per pixel, 1..65536 (the gl renderer ignores it; "
                                     "128 by default with lighting=trellis, as TRELLIS renders)")
    # decides whether an asset is drawn, never its pixels: not in pixel_settings (cache keys)
    allow_untextured: bool = Field(False, description="draw an asset whose textures or material library are "
                                                      "missing in plain colours (a row warning) instead of "
                                                      "failing it")
    cache: bool = Field(True, description="read and write the render cache")
    cache_dir: Path | None = Field(None, description="where the render cache lives (never changes pixels)")

    @field_validator("background", mode="before")
    @classmethod
    def _background(cls, value: Any) -> Any:
        if isinstance(value, list):
            value = tuple(value)
        return parse_background(value) if isinstance(value, str | tuple) else value

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: int) -> int:
        if not 16 <= value <= 4096:
            raise ValueError(f"--resolution {value}: use 16..4096 pixels")
        return value

    @field_validator("margin")
    @classmethod
    def _margin(cls, value: float | None) -> float | None:
        if value is not None and not 0.0 <= value < 0.5:
            raise ValueError(f"margin={value}: use a fraction of the half-frame in 0..0.5, e.g. 0.05")
        return value

    @field_validator("normalize")
    @classmethod
    def _normalize(cls, value: str) -> str:
        if value not in NORMALIZATIONS:
            raise ValueError(f"normalize={value!r}: use one of {', '.join(NORMALIZATIONS)}")
        return value

    @field_validator("up")
    @classmethod
    def _up(cls, value: str) -> str:
        if value not in UP_AXES:
            raise ValueError(f"up={value!r}: use y (glTF, most OBJ) or z (Blender/CAD Z-up)")
        return value

    @field_validator("lighting")
    @classmethod
    def _lighting(cls, value: str) -> str:
        if value not in LIGHTINGS:
            raise ValueError(f"lighting={value!r}: use {LIGHTING_HELP}")
        return value

    @field_validator("samples")
    @classmethod
    def _samples(cls, value: int) -> int:
        if value not in MSAA_SAMPLES:
            raise ValueError(f"samples={value}: MSAA samples must be 0, 1, 2, 4, 8 or 16")
        return value

    @field_validator("renderer")
    @classmethod
    def _renderer(cls, value: str) -> str:
        if value not in RENDERERS:
            raise ValueError(f"renderer={value!r}: use gl (rasteriser, default) or cycles (Blender's path tracer)")
        return value

    @field_validator("spp")
    @classmethod
    def _spp(cls, value: int) -> int:
        if not 1 <= value <= 65536:
            raise ValueError(f"spp={value}: Cycles samples per pixel must be 1..65536")
        return value

    @field_validator("sphere_radius")
    @classmethod
    def _sphere_radius(cls, value: float) -> float:
        if value <= 0:
            raise ValueError("sphere_radius must be > 0")
        return value

    @model_validator(mode="before")
    @classmethod
    def _trellis_samples(cls, data: Any) -> Any:
        """TRELLIS renders with 128 samples: the preset's default, unless spp is given."""
        if isinstance(data, dict) and data.get("lighting") == "trellis" and data.get("spp") is None:
            from gencritic.render.trellis import TRELLIS_SPP

            data = {**data, "spp": TRELLIS_SPP}
        return data

    @model_validator(mode="after")
    def _rig(self) -> RenderSettings:
        try:
            self.cameras()
        except ValueError as exc:
            raise ValueError(f"--rig: {exc} ({RIG_HELP})") from None
        return self

    def cameras(self) -> list[Camera]:
        return make_rig(self.rig, self.radius, self.fov, self.pitch, self.seed)

    @property
    def effective_point_size(self) -> float:
        return self.point_size if self.point_size > 0 else max(1.0, self.resolution / 128.0)

    def pixel_settings(self) -> dict[str, Any]:
        """The settings that change pixels (cache-dir, cache on/off and allow_untextured do not)."""
        d = self.model_dump(exclude={"cache", "cache_dir", "allow_untextured"})
        if self.margin is None:  # the keys of renders without a margin are what they were before it existed
            d.pop("margin")
        d["background"] = list(self.background)
        d["point_size"] = self.effective_point_size
        if self.renderer == "cycles":  # Blender's version is part of what a path-traced view is
            from gencritic.render.pathtrace import CYCLES_VERSION, blender_version

            d.pop("samples")
            d["renderer"] = f"{CYCLES_VERSION}/blender-{blender_version()}"
        else:  # the keys of rasterised views are what they were before Cycles existed
            d.pop("spp")
            d["renderer"] = RENDERER_VERSION
        if self.lighting == "trellis":  # only then: every other key stays what it was
            from gencritic.render.gl import TRELLIS_GL_VERSION
            from gencritic.render.trellis import TRELLIS_CYCLES_VERSION

            d["lighting"] = TRELLIS_CYCLES_VERSION if self.renderer == "cycles" else TRELLIS_GL_VERSION
        return d

    def key(self) -> str:
        return self._key

    def given(self) -> dict[str, Any]:
        """The options that were given (not defaulted), as JSON values, sorted, leaving out where the
        cache lives and whether it is used: what a scoring run's settings fingerprint records, so a
        run that gives no render option keeps the fingerprint it had before an option existed."""
        dumped = self.model_dump(mode="json", exclude_unset=True, exclude={"cache", "cache_dir"})
        return dict(sorted(dumped.items()))

    def replaced(self, **changes: Any) -> RenderSettings:
        """A validated copy with ``changes`` (the given options stay given). Not ``model_copy``:
        that would carry the hashed key of the original over to different settings."""
        given = {name: getattr(self, name) for name in self.model_fields_set}
        return validate_strict(RenderSettings, {**given, **changes}, None, noun="render option")

    @functools.cached_property
    def _key(self) -> str:  # hashed once per settings object: it is asked for every view
        return hashlib.sha256(json.dumps(self.pixel_settings(), sort_keys=True).encode()).hexdigest()


def render_settings(options: Mapping[str, Any] | RenderSettings | None) -> RenderSettings:
    """Validate render options (a mapping from the CLI, the Python API or a service request) into
    settings, without looking at the environment; settings pass through. ``None`` values mean
    "not given". Raises :class:`InputError` with one line naming the bad option and the valid
    values (for an unknown key, the accepted keys and the closest match)."""
    if isinstance(options, RenderSettings):
        return options
    opts = {k: v for k, v in (options or {}).items() if v is not None}
    return validate_strict(RenderSettings, opts, None, noun="render option")


def check_renderer(settings: RenderSettings) -> None:
    """Fail in one line, before any asset is touched, when the renderer cannot run here
    (``renderer=cycles`` without Blender)."""
    if settings.renderer == "cycles":
        from gencritic.render.pathtrace import BlenderMissing, blender_version

        try:
            blender_version()
        except BlenderMissing as exc:
            raise InputError(f"--renderer cycles: {exc}") from None


def parse_render_options(options: Mapping[str, Any] | RenderSettings | None) -> RenderSettings:
    """:func:`render_settings`, then :func:`check_renderer`: what an entry point that is about to
    render calls."""
    settings = render_settings(options)
    check_renderer(settings)
    return settings
