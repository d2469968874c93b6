"""Every setting of a scoring run, checked once, and the ones that can change a number.

Why typed render settings: the render options used to travel as a raw dict that the run parsed
to check them and the renderer parsed again for every asset. They are now the one
:class:`~gencritic.render.settings.RenderSettings` model, validated when the options are made
(a bad render option is one line before any work, whatever the input) and handed to the
renderer as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from gencritic.cache import default_cache_dir
from gencritic.errors import InputError
from gencritic.io.urls import UrlPath, as_path
from gencritic.models.loader import DEFAULT_CLIP_MODEL
from gencritic.render.settings import RenderSettings, render_settings

FORMATS = ("csv", "parquet", "jsonl")


@dataclass
class ScoreOptions:
    """Every setting of a scoring run. Those that change numbers enter the fingerprint
    (:meth:`numeric_settings`); ``render`` accepts a mapping of render options too."""

    metrics: Sequence[str] = ("clip",)
    model: str = DEFAULT_CLIP_MODEL
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int = 32
    workers: int | None = None  # None: auto (see scoring.schedule.resolve_prefetch)
    background: str = "white"
    cache_dir: Path | None = field(default_factory=default_cache_dir)
    formats: Sequence[str] = ("csv",)
    overwrite: bool = False
    progress: bool = True
    render: RenderSettings = field(default_factory=lambda: render_settings(None))
    # pair each item with the same-stem image here (reference metrics); a folder or an address
    reference_dir: Path | UrlPath | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.render, RenderSettings):  # a mapping, from Python code that predates the type
            self.render = render_settings(self.render if isinstance(self.render, Mapping) else None)

    def with_overrides(self, overrides: Mapping[str, Any]) -> ScoreOptions:
        """A copy with keyword overrides (``score(..., batch_size=8)``), each checked by name."""
        known = {f.name for f in fields(self)}
        for key in overrides:
            if key not in known:
                raise InputError(f"unknown option {key!r} for score()")
        return replace(self, **overrides) if overrides else self

    def checked(self) -> ScoreOptions:
        """These options with ``metrics`` as a list, or one InputError line for a bad value."""
        from gencritic.metrics.registry import split_specs

        opts = replace(self, metrics=split_specs(self.metrics)) if isinstance(self.metrics, str) else self
        for fmt in opts.formats:
            if fmt not in FORMATS:
                raise InputError(f"unknown output format {fmt!r}: use {', '.join(FORMATS)}")
        if opts.batch_size < 1:
            raise InputError("--batch-size must be at least 1")
        return opts

    def numeric_settings(self, with_render: bool = True) -> dict[str, Any]:
        """The settings that can change a score (what resume and rows are keyed on).
        Render options count only when there are meshes to render, and only those given."""
        out: dict[str, Any] = {"metrics": list(self.metrics), "model": self.model, "dtype": self.dtype,
                               "device": self.device, "background": self.background}
        if with_render:
            out["render"] = self.render.given()  # where the render cache lives never changes a score
        if self.reference_dir is not None:  # other references, other numbers (absent: fingerprint unchanged)
            out["reference_dir"] = str(as_path(self.reference_dir).resolve())
        return out

    def render_for_run(self, background: tuple[int, int, int]) -> RenderSettings:
        """The settings the renderer gets: the run's background, and the render cache beside the
        embeddings (none at all with ``--no-cache``) unless the options say otherwise."""
        given = self.render.model_fields_set
        changes: dict[str, Any] = {"background": background}
        if "cache" not in given:
            changes["cache"] = self.cache_dir is not None
        if "cache_dir" not in given and self.cache_dir is not None:
            changes["cache_dir"] = Path(self.cache_dir) / "renders"
        return self.render.replaced(**changes)
