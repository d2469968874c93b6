"""Render an asset's views: the function the scoring pipeline calls, and the ``render`` command's.

``render_asset(path, options)`` is the contract with :mod:`gencritic.prepare`: its ``views`` hold
one :class:`RenderedView` per camera of the rig (a view that shows nothing has ``error`` set and
no image, so it is never scored), its ``meta`` says which renderer drew them and its ``warnings``
what of the asset's appearance they leave out (:mod:`gencritic.mesh.fidelity`; the same whether
the views were drawn now or served from the cache). Whole-asset problems (missing, corrupt, empty,
degenerate mesh; missing textures unless ``allow_untextured``; no GL context) raise
:class:`~gencritic.errors.ItemError`, which fails the item's row.

Thread-safe: the GL work runs on gencritic's own render threads, one context each (see
:func:`gencritic.render.gl.render_views`); loading and compositing run in the caller's thread.
Renders are cached on disk by (asset sha256, pixel settings) unless ``cache=False``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gencritic.errors import ItemError
from gencritic.io.images import LoadedImage
from gencritic.jsonio import write_json
from gencritic.mesh.fidelity import asset_warnings
from gencritic.mesh.normalize import normalization_transform
from gencritic.mesh.parallel import load_asset_in_worker
from gencritic.mesh.sidefiles import asset_sha256
from gencritic.render.cache import RenderCache
from gencritic.render.cameras import Camera
from gencritic.render.compose import composite, composite_view, unpremultiply
from gencritic.render.settings import RenderSettings, parse_render_options


@dataclass
class RenderedView:
    """One camera's picture of an asset, or why there is none."""

    name: str
    image: LoadedImage | None
    error: str | None = None


@dataclass
class AssetRender:
    """All views of one asset with what produced them."""

    path: Path
    asset_sha256: str
    settings: RenderSettings
    cameras: list[Camera]
    premultiplied: np.ndarray  # uint8 (V, H, W, 4)
    views: list[RenderedView] = field(default_factory=list)
    from_cache: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # row warnings: "kind: text" (gencritic.row_warnings)


def _render_key(asset_sha: str, settings: RenderSettings) -> str:
    """Cache key of the premultiplied render: background is applied afterwards, so it is left out."""
    pixel = settings.pixel_settings()
    pixel.pop("background")
    return hashlib.sha256(f"{asset_sha}|{json.dumps(pixel, sort_keys=True)}".encode()).hexdigest()


def view_sha256(asset_sha: str, settings: RenderSettings, index: int) -> str:
    """Content key of one composited view: what the embedding cache keys on."""
    return hashlib.sha256(f"{asset_sha}|{settings.key()}|view={index}".encode()).hexdigest()


def transformed_sha256(asset_sha: str, transform: np.ndarray | None) -> str:
    """The content key of an asset drawn after ``transform`` (its own sha256 when there is none):
    the render cache and the embedding cache key on it, so a moved asset never shares a key with
    the asset in place."""
    if transform is None:
        return asset_sha
    matrix = json.dumps(np.asarray(transform, dtype=np.float64).round(12).tolist())
    return hashlib.sha256(f"{asset_sha}|transform={matrix}".encode()).hexdigest()


def _rasterise(path: Path, settings: RenderSettings, cameras: list[Camera],
               transform: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    from gencritic.render.gl import RenderContextError, render_views

    mesh = load_asset_in_worker(path, allow_untextured=settings.allow_untextured)
    model = normalization_transform(mesh.all_positions(), settings.normalize, settings.up, settings.sphere_radius)
    if transform is not None:  # e.g. compare3d's alignment of a generated asset, in the normalised frame
        model = np.asarray(transform, dtype=np.float64) @ model
    if settings.margin is not None:  # fit every view with room to spare (render/framing.py)
        from gencritic.render.framing import with_margin

        model = with_margin(model, mesh.all_positions(), cameras, settings.margin)
    # back faces may be skipped only if every camera is outside the geometry's bounding sphere
    lo, hi = mesh.bounds()
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    reach = float(np.linalg.norm(corners @ model[:3, :3].T + model[:3, 3], axis=1).max())
    cull = min(float(np.linalg.norm(c.eye)) for c in cameras) > reach * 1.001
    try:
        if settings.renderer == "cycles" and settings.lighting == "trellis":
            from gencritic.render.pathtrace import blender_version
            from gencritic.render.trellis import render_views_trellis

            if any(p.mode != "triangles" for p in mesh.primitives):
                raise ItemError("the cycles renderer draws surfaces only: render point clouds with --renderer gl")
            views = render_views_trellis(path, model, mesh.bounds(), cameras, settings.resolution, settings.spp,
                                         settings.seed)
            renderer_name = f"Cycles (Blender {blender_version()}), {settings.spp} spp, TRELLIS' scene"
        elif settings.renderer == "cycles":
            from gencritic.render.pathtrace import blender_version, render_views_cycles

            views = render_views_cycles(mesh, model, cameras, settings.resolution, settings.spp, settings.seed,
                                        lit=settings.lighting == "default")
            renderer_name = f"Cycles (Blender {blender_version()}), {settings.spp} spp"
        else:
            views, renderer_name = render_views(mesh, model, cameras, settings.resolution, samples=settings.samples,
                                                lit=settings.lighting != "flat", trellis=settings.lighting == "trellis",
                                                point_size=settings.effective_point_size, cull_closed=cull)
    except ItemError:
        raise
    except RenderContextError as exc:
        raise ItemError(f"cannot render {path.name}: {exc}") from None
    except Exception as exc:  # a GL error on this asset (e.g. texture too large) fails this item only
        raise ItemError(f"rendering {path.name} failed: {' '.join(str(exc).split())[:200]}") from None
    meta = {"faces": mesh.num_faces, "points": mesh.num_points, "primitives": len(mesh.primitives),
            "renderer": renderer_name, "model_matrix": model.tolist()}
    return views, meta


def render_asset(path: Path, options: dict[str, Any] | RenderSettings | None = None,
                 transform: np.ndarray | None = None) -> AssetRender:
    """Render (or fetch from the cache) every view of the asset at ``path``.

    ``transform`` (4x4) moves the asset after it is normalised, before the cameras see it
    (``compare3d`` draws a generated asset aligned to its reference); it enters the cache keys of
    the render and of every view (:func:`transformed_sha256`)."""
    settings = options if isinstance(options, RenderSettings) else parse_render_options(options)
    path = Path(path)
    file_sha = asset_sha256(path)
    sha = transformed_sha256(file_sha, transform)
    warnings = asset_warnings(path, settings.allow_untextured)  # before the cache: fails what must not be drawn
    cameras = settings.cameras()
    cache = RenderCache(settings.cache_dir) if settings.cache else None
    key = _render_key(sha, settings)
    hit = cache.get(key) if cache is not None else None
    if hit is not None and hit[0].shape[0] == len(cameras):
        premult, meta = hit
        from_cache = True
    else:
        premult, meta = _rasterise(path, settings, cameras, transform)
        from_cache = False
        if cache is not None:
            cache.put(key, premult, meta)
    result = AssetRender(path, file_sha, settings, cameras, premult, from_cache=from_cache, meta=meta,
                         warnings=warnings)
    for i, cam in enumerate(cameras):
        rgb_image, alpha, problem = composite_view(premult[i], settings.background)
        if rgb_image is None:
            result.views.append(RenderedView(cam.name, None, problem))
            continue
        image = LoadedImage(rgb=rgb_image, sha256=view_sha256(sha, settings, i), alpha=alpha)
        result.views.append(RenderedView(cam.name, image, None))
    return result


def render_asset_views(path: Path, options: dict[str, Any]) -> list[RenderedView]:
    """The pipeline's entry point: views of one asset (``options``: rig, resolution, background...)."""
    return render_asset(path, options).views


def write_views(render: AssetRender, out_dir: Path, transparent: bool = False) -> Path:
    """Write ``out_dir/NNN.png`` and ``cameras.json``; returns ``out_dir``.

    ``transparent`` writes straight-alpha RGBA PNGs; otherwise RGB on the settings' background.
    Blank views are written too (so users can see them) and listed with their error.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    res = render.settings.resolution
    views_json = []
    for i, (cam, view) in enumerate(zip(render.cameras, render.views, strict=True)):
        file = out_dir / f"{cam.name}.png"
        if transparent:
            Image.fromarray(unpremultiply(render.premultiplied[i]), "RGBA").save(file)
        else:
            rgb, _ = composite(render.premultiplied[i], render.settings.background)
            Image.fromarray(rgb, "RGB").save(file)
        views_json.append({**cam.to_json(res, res), "file": file.name, "error": view.error})
    doc = {
        "asset": str(render.path), "asset_sha256": render.asset_sha256,
        "settings": render.settings.pixel_settings(), "world": {
            "up": "+Y", "front": "+Z", "units": "normalised asset frame (see docs/rendering.md)"},
        "model_matrix": render.meta.get("model_matrix"), "renderer": render.meta.get("renderer"),
        "warnings": render.warnings, "views": views_json,
    }
    write_json(out_dir / "cameras.json", doc, indent=1)
    return out_dir


@dataclass
class RenderReport:
    """What ``render_to_folder`` did for one asset."""

    asset: Path
    out_dir: Path | None
    views_ok: int
    views_blank: int
    error: str | None = None
    renderer: str | None = None  # GL_RENDERER or Cycles: shows whether the GPU or a CPU rasteriser drew
    warnings: list[str] = field(default_factory=list)  # what the views leave out (AssetRender.warnings)


def find_assets(source: Path) -> list[Path]:
    """A mesh file (or kit file), or every mesh/point-cloud file under a folder (natural order,
    recursive; kit files are not picked up there: their parts would be rendered twice)."""
    return _asset_listing(source)[0]


def _asset_listing(source: Path) -> tuple[list[Path], dict[Path, str]]:
    """:func:`find_assets`, plus the entries that cannot be read (path -> why), each of which is
    reported as a failed asset while the others are rendered (the one listing, io/listing.py)."""
    from gencritic.errors import InputError
    from gencritic.io.listing import FolderError, walk_files
    from gencritic.items import CONVERT_3D_HINT, MESH_EXTENSIONS, UNREAD_3D_EXTENSIONS
    from gencritic.mesh.kit import is_kit

    source = Path(source)
    if source.is_file():
        if source.suffix.lower() not in MESH_EXTENSIONS and not is_kit(source):
            hint = f"; {CONVERT_3D_HINT}" if source.suffix.lower() in UNREAD_3D_EXTENSIONS else ""
            raise InputError(f"{source} is not a mesh: give {', '.join(sorted(MESH_EXTENSIONS))} or a folder of them"
                             f"{hint}")
        return [source], {}
    if not source.is_dir():
        raise InputError(f"input not found: {source} (give a mesh file or a folder of meshes)")
    try:
        listing = walk_files(source, MESH_EXTENSIONS)
    except FolderError as exc:
        raise InputError(str(exc)) from None
    if not listing.files and not listing.bad:
        raise InputError(f"no meshes under {source} (looked for {', '.join(sorted(MESH_EXTENSIONS))})")
    return listing.files, {b.path: f"{b.path}: {b.reason}" for b in listing.bad}


def asset_out_name(asset: Path, source: Path) -> str:
    """``views/<asset-name>``: the path below ``source`` without its suffix (unique per file)."""
    if Path(source).is_file():
        return asset.stem
    return asset.relative_to(source).with_suffix("").as_posix()


def render_to_folder(source: Path, out: Path, options: dict[str, Any] | RenderSettings | None = None,
                     transparent: bool = False,
                     workers: int = 2, on_done: Any = None) -> list[RenderReport]:
    """Render every asset under ``source`` into ``out/<asset-name>/NNN.png`` + ``cameras.json``.

    Options are validated before any work; a failing asset is reported, the others go on.
    ``on_done(report)`` is called as each asset finishes (progress display).
    """
    from concurrent.futures import ThreadPoolExecutor

    from gencritic.mesh.parallel import check_environment

    settings = parse_render_options(options)
    check_environment()
    assets, unreadable = _asset_listing(Path(source))
    from gencritic.mesh.blend import prepare_blend_files

    blend_failures = prepare_blend_files(assets, show_progress=on_done is not None)
    blend_failures.update(unreadable)
    assets = assets + list(unreadable)

    def one(asset: Path) -> RenderReport:
        if asset in blend_failures:
            return RenderReport(asset, None, 0, 0, blend_failures[asset])
        try:
            result = render_asset(asset, settings)
        except ItemError as exc:
            return RenderReport(asset, None, 0, 0, str(exc))
        except Exception as exc:  # one asset's unforeseen failure is its own error line, not everyone's traceback
            return RenderReport(asset, None, 0, 0, f"unexpected {type(exc).__name__}: {' '.join(str(exc).split())}")
        folder = write_views(result, Path(out) / asset_out_name(asset, Path(source)), transparent)
        blank = sum(v.error is not None for v in result.views)
        return RenderReport(asset, folder, len(result.views) - blank, blank,
                            renderer=str(result.meta.get("renderer")) if result.meta.get("renderer") else None,
                            warnings=result.warnings)

    reports = []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="gencritic-render") as pool:
        for report in pool.map(one, assets):
            reports.append(report)
            if on_done is not None:
                on_done(report)
    return reports
