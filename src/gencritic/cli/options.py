"""The options several commands share, declared once: one name, one short flag, one help text.

Why one module: ``--device`` was declared in seven command files with four different help
texts, and the render settings were assembled four ways. A command now names its options with
these annotated types (``device: Device = "auto"``) and keeps only its own default; the help a
user reads is the same everywhere, and ``render_settings_from_cli`` is the one place that turns
render options into the :class:`~gencritic.render.settings.RenderSettings` model. (The model of
this pattern is sqlite-utils' shared option decorators; in Typer the unit is an ``Annotated``
type, which Typer copies for each command that uses it.)

Importing this module must stay cheap: ``gencritic --help`` imports every command module, so
nothing here may import torch, numpy or the render code at module level
(tests/test_startup.py checks it). Help texts therefore say what the values are in words
instead of reading them from the modules that implement them; tests/test_cli_options.py
checks that the defaults the commands declare are the render model's defaults.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from gencritic.render.settings import RenderSettings

from gencritic.models.defaults import DEFAULT_CLIP_MODEL  # a name only: no model code is imported

__all__ = [
    "DEFAULT_CLIP_MODEL", "AllowUntextured", "Background", "BatchSize", "CacheDir", "Device", "Dtype", "Fov",
    "Lighting", "Margin", "Metrics", "Model", "NoCache", "Normalize", "OptionalModel", "Overwrite", "Pitch",
    "Profile", "Quiet", "Radius", "Renderer", "Resolution", "ResultFormats", "Rig", "RigSeed", "Samples", "Spp",
    "Up", "Vlm", "Workers", "cache_root", "render_options", "render_settings_from_cli", "split_list",
]

MODEL_PANEL = "Model"
RENDER_PANEL = "3D assets"
CACHE_PANEL = "Cache"

# -- models ---------------------------------------------------------------------------------------

MODEL_HELP = ("CLIP model: a Hugging Face id, a folder saved with save_pretrained, a checkpoint file "
              "(.safetensors/.pt, OpenAI or HF layout) or an open_clip NAME/TAG (ViT-B-32/laion2b_s34b_b79k). "
              "With HF_HUB_OFFLINE=1 only local files and the HF cache are used.")
Model = Annotated[str, typer.Option("--model", "-m", help=MODEL_HELP, rich_help_panel=MODEL_PANEL)]
# The same option where a command can run without a model (diagnose: only model-free diagnostics).
OptionalModel = Annotated[str | None, typer.Option("--model", "-m", help=MODEL_HELP, rich_help_panel=MODEL_PANEL)]
Device = Annotated[str, typer.Option(
    "--device", help="Where models run: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
    rich_help_panel=MODEL_PANEL)]
Dtype = Annotated[str, typer.Option(
    "--dtype", help="Model precision: auto (on a GPU fp16, bf16 for vision-language models; on a CPU fp32), fp32, "
                    "fp16, bf16, or int8 (the CPU fast mode of CLIP models: dynamic quantisation of the image tower).",
    rich_help_panel=MODEL_PANEL)]
BatchSize = Annotated[int, typer.Option(
    "--batch-size", "-b", help="Images (or rendered views) per model call: larger is faster until memory runs out.",
    rich_help_panel=MODEL_PANEL)]
Workers = Annotated[int | None, typer.Option(
    "--workers", help="Threads that decode, render and preprocess items (default: beside a GPU one per mesh-loader "
                      "process, at least 2; on a CPU whose cores torch uses, one per core in bursts between encoder "
                      "calls; 0 = inline).",
    rich_help_panel=MODEL_PANEL)]

# The vision-language judge; where it is optional (diagnose) absent means none, elsewhere the default.
Vlm = Annotated[str | None, typer.Option(
    "--vlm", help="Vision-language model: a Hugging Face id or save_pretrained folder of an image-text-to-text model, "
                  "or an OpenAI-compatible endpoint URL[#model] (key in $GENCRITIC_VLM_API_KEY).",
    rich_help_panel=MODEL_PANEL)]

# -- what to run, and how much to say -------------------------------------------------------------

Profile = Annotated[str, typer.Option(
    "--profile", "-P", help="Diagnosis profile: a shipped name (list them with `gencritic profiles`) or a path to "
                            "your own .yaml.")]

Metrics = Annotated[str, typer.Option(
    "--metrics", help="Comma-separated metric specs, NAME or NAME:key=value;..., e.g. clip,lpips:net=vgg "
                      "(list them and their options with `gencritic metrics`).")]
ResultFormats = Annotated[str, typer.Option(
    "--format", help="Extra result formats besides CSV: parquet, jsonl (comma-separated).")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Discard earlier results in --out instead of resuming.")]
Quiet = Annotated[bool, typer.Option(
    "--quiet", "-q", help="No progress bar and no per-item progress lines; the closing summary still prints.")]

# -- cache ----------------------------------------------------------------------------------------

CacheDir = Annotated[Path | None, typer.Option(
    "--cache-dir", help="Cache root: embeddings (CACHE_DIR/embeddings.sqlite), rendered views (CACHE_DIR/renders) "
                        "and VLM answers (CACHE_DIR/vlm_answers.sqlite); default $GENCRITIC_CACHE_DIR, else "
                        "~/.cache/gencritic. `gencritic cache info` shows what it holds.",
    rich_help_panel=CACHE_PANEL)]
NoCache = Annotated[bool, typer.Option(
    "--no-cache", help="Neither read nor write the caches (embeddings, rendered views, VLM answers): everything is "
                       "computed again.",
    rich_help_panel=CACHE_PANEL)]

# -- 3D assets: rendering, and the frame meshes are normalised into (one option per RenderSettings
# field; the tests check the commands' defaults against it) ------------------------------------------

Rig = Annotated[str, typer.Option(
    "--rig", help="Camera rig for meshes: toys4k8 (8 views, yaw 0..315° in 45° steps, pitch 30°, radius 2, FoV 40°: "
                  "the TRELLIS protocol), orbitN (N views around, e.g. orbit24), six (front, right, back, left, top, "
                  "bottom) or randomN (N seeded directions, e.g. random16).",
    rich_help_panel=RENDER_PANEL)]
Resolution = Annotated[int, typer.Option(
    "--resolution", "-r", help="Rendered view size in pixels (square, 16..4096).", rich_help_panel=RENDER_PANEL)]
Background = Annotated[str, typer.Option(
    "--background", help="Colour under transparent pixels: white, black, grey, #rrggbb or r,g,b (`render` also takes "
                         "transparent: RGBA PNGs).")]
Renderer = Annotated[str, typer.Option(
    "--renderer", help="How meshes are drawn: gl (rasteriser, fast, the default) or cycles (Blender's path tracer: "
                       "shadows, seconds per view; needs GENCRITIC_BLENDER, see docs/rendering.md).",
    rich_help_panel=RENDER_PANEL)]
Spp = Annotated[int | None, typer.Option(
    "--spp", help="Cycles samples per pixel (with --renderer cycles; default 16, 128 with --lighting trellis).",
    rich_help_panel=RENDER_PANEL)]
AllowUntextured = Annotated[bool, typer.Option(
    "--allow-untextured", help="Meshes whose textures or material library are missing: draw them in plain colours "
                               "and name it in their warnings, instead of failing them.",
    rich_help_panel=RENDER_PANEL)]
Normalize = Annotated[str, typer.Option(
    "--normalize", help="trellis (bbox centre at the origin, longest side 1), sphere (fits a sphere of radius 0.5) "
                        "or none (the asset's own scale).",
    rich_help_panel=RENDER_PANEL)]
Up = Annotated[str, typer.Option(
    "--up", help="The asset's up axis: y (glTF, most OBJ) or z (Blender/CAD exports).", rich_help_panel=RENDER_PANEL)]
Margin = Annotated[float | None, typer.Option(
    "--margin", help="Scale the normalised asset so every vertex stays this fraction of the half-frame (0..0.5, e.g. "
                     "0.05) from the edge in every view; unset: the protocol's framing, where box-like assets touch "
                     "the edge.",
    rich_help_panel=RENDER_PANEL)]
Lighting = Annotated[str, typer.Option(
    "--lighting", help="default (soft ambient + 2 directional lights), flat (unlit colours) or trellis (TRELLIS' "
                       "Blender scene: exact with --renderer cycles, fitted for gl; docs/rendering.md).",
    rich_help_panel=RENDER_PANEL)]
Samples = Annotated[int, typer.Option(
    "--samples", help="MSAA samples (0, 1, 2, 4, 8 or 16): smoother edges, 4 is ~6x slower on CPU.",
    rich_help_panel=RENDER_PANEL)]
Radius = Annotated[float, typer.Option(
    "--radius", help="Camera distance from the origin.", rich_help_panel=RENDER_PANEL)]
Fov = Annotated[float, typer.Option(
    "--fov", help="Vertical field of view in degrees.", rich_help_panel=RENDER_PANEL)]
Pitch = Annotated[float, typer.Option(
    "--pitch", help="Elevation of orbitN views in degrees.", rich_help_panel=RENDER_PANEL)]
RigSeed = Annotated[int, typer.Option(
    "--seed", help="Seed of randomN rigs (same seed, same views).", rich_help_panel=RENDER_PANEL)]


def split_list(text: str | None) -> list[str]:
    """``"clip, lpips,"`` -> ``["clip", "lpips"]``: the comma-separated lists options take."""
    return [t.strip() for t in (text or "").split(",") if t.strip()]


def cache_root(cache_dir: Path | None, no_cache: bool) -> Path | None:
    """The cache folder a run uses: none with ``--no-cache``, else ``--cache-dir`` or the default."""
    if no_cache:
        return None
    from gencritic.cache import default_cache_dir

    return cache_dir or default_cache_dir()


def render_settings_from_cli(*, rig: str, resolution: int, renderer: str = "gl", spp: int | None = None,
                             allow_untextured: bool = False, background: str | None = None,
                             normalize: str | None = None, up: str | None = None, lighting: str | None = None,
                             samples: int | None = None, radius: float | None = None, fov: float | None = None,
                             pitch: float | None = None, seed: int | None = None, margin: float | None = None,
                             cache: bool | None = None, cache_dir: Path | None = None) -> RenderSettings:
    """The render options a command line gave, validated into the one settings model.

    A bad value is one :class:`~gencritic.errors.InputError` line before any work (the
    environment, e.g. Blender for ``cycles``, is checked later, only when a mesh is rendered).

    Which options count as *given* (the model's ``model_fields_set``) matters: a scoring run's
    fingerprint holds the given render options, and output folders written before an option
    existed must keep resuming. So an option a command does not offer is ``None`` and stays
    unset, the rasteriser (``renderer="gl"``, whose ``spp`` means nothing) and the strict texture
    rule (``allow_untextured=False``) stay unset, and ``rig`` and ``resolution``, which every
    rendering command offers, are always given. ``cache_dir`` is the cache root, whose
    ``renders`` folder holds the views. ``background="transparent"`` is the ``render`` command's
    RGBA output, not a colour: it leaves the background unset.
    """
    from gencritic.render.settings import RenderSettings
    from gencritic.schemas import validate_strict

    given: dict[str, Any] = {"rig": rig, "resolution": resolution, "normalize": normalize, "up": up,
                             "lighting": lighting, "samples": samples, "radius": radius, "fov": fov, "pitch": pitch,
                             "seed": seed, "margin": margin, "cache": cache}
    if renderer != "gl":
        # Cycles runs at the default 16 samples record it (their fingerprints predate the trellis
        # preset); under lighting=trellis an unset spp is the preset's 128 (RenderSettings says so)
        given.update(renderer=renderer, spp=spp if spp is not None else (None if lighting == "trellis" else 16))
    if allow_untextured:
        given["allow_untextured"] = True
    if background is not None and background.strip().lower() != "transparent":
        given["background"] = background
    if cache_dir is not None:
        given["cache_dir"] = Path(cache_dir) / "renders"
    return validate_strict(RenderSettings, {k: v for k, v in given.items() if v is not None}, None,
                           noun="render option")


def render_options(settings: RenderSettings) -> dict[str, Any]:
    """The given options of ``settings`` as the plain dict that ``ScoreOptions.render``, the
    service and ``generate eval`` take today (JSON values: they enter the run's fingerprint)."""
    return settings.model_dump(mode="json", include=set(settings.model_fields_set))
