"""Expand an item into the views that metrics see: one for an image, N for a mesh or a
folder of pre-rendered views. Runs in worker threads, so it must not touch models.

The warm-cache trick lives here: a view is hashed from its bytes (or, for a rendered mesh,
from the render settings) and its pixels are only decoded when something needs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from gencritic.errors import ItemError
from gencritic.io.fetch import ObjectCache
from gencritic.io.images import RGB, WHITE, LoadedImage, decode_image, load_image, read_file_bytes
from gencritic.io.listing import FolderError, list_folder
from gencritic.io.urls import local_path
from gencritic.items import IMAGE_EXTENSIONS, Item
from gencritic.remote_items import Localized, is_remote, localize
from gencritic.render.settings import RenderSettings, render_settings
from gencritic.views import View


@dataclass
class PreparedItem:
    """An item ready for scoring, or the reason it cannot be."""

    item: Item
    views: list[View] = field(default_factory=list)
    view_errors: dict[str, str] = field(default_factory=dict)  # view name -> why it is not scored
    reference: LoadedImage | None = None
    error: str | None = None
    renderer: str | None = None  # what drew a mesh's views (GL_RENDERER, or Cycles), for the run summary
    # what was accepted in a degraded form ("kind: text", see gencritic.row_warnings); a parallel
    # channel to ``error``: the item is scored, and its row names each of these
    warnings: list[str] = field(default_factory=list)


def _image_view(item: Item, index: int, path: Path, background: RGB, name: str | None = None,
                source: str | None = None) -> View:
    """``source``: how errors name the file (its address when ``path`` is a fetched copy)."""
    data = read_file_bytes(path)
    sha = hashlib.sha256(data + f"|bg={background}".encode()).hexdigest()

    def loader() -> LoadedImage:
        rgb, alpha = decode_image(data, source or str(path), background)
        return LoadedImage(rgb=rgb, sha256=sha, alpha=alpha)

    return View(item, index, sha, loader, name=name)


def _constant(image: LoadedImage) -> Callable[[], LoadedImage]:
    return lambda: image


def _views_from_folder(item: Item, background: RGB, local: Localized | None = None) -> list[View]:
    """The folder's images in natural order (``f2`` before ``f10``: the order frames were made,
    which temporal metrics depend on). A view that cannot be examined fails the item by name:
    scoring the others would silently drop a frame."""
    folder = local_path(local.item.path) if local is not None else local_path(item.path)
    try:
        listing = list_folder(folder, IMAGE_EXTENSIONS)
    except FolderError as exc:
        raise ItemError(str(exc)) from None
    if listing.bad:
        raise ItemError(f"views folder {folder} has entries that cannot be read: {listing.bad_summary()}")
    files = listing.files
    if not files:
        raise ItemError(f"no view images in folder {folder}")
    return [_image_view(item, i, p, background, name=p.stem, source=local.name(str(p)) if local else None)
            for i, p in enumerate(files)]


def _views_from_mesh(item: Item, render: RenderSettings, prepared: PreparedItem,
                     path: Path | None = None) -> list[View]:
    """``path``: the mesh file to draw (a fetched copy when ``item.path`` is an address)."""
    path = local_path(item.path) if path is None else path
    try:
        from gencritic.render.api import render_asset
    except ImportError as exc:
        raise ItemError(f"cannot render {item.path}: 3D rendering needs `pip install gencritic[render]` ({exc})") from None
    view_errors = prepared.view_errors
    result = render_asset(path, render)
    prepared.renderer = result.meta.get("renderer")
    prepared.warnings.extend(result.warnings)
    views = []
    for i, rendered in enumerate(result.views):
        if rendered.error is not None:
            view_errors[rendered.name] = rendered.error
            continue
        image = rendered.image
        if image is None:
            view_errors[rendered.name] = "renderer returned no image"
            continue
        views.append(View(item, i, image.sha256, _constant(image), name=rendered.name))
    if not views:
        reasons = sorted(set(view_errors.values()))
        raise ItemError(f"no valid rendered view of {path}: {'; '.join(reasons)}")
    return views


def prepare_item(item: Item, background: RGB = WHITE, render: RenderSettings | None = None,
                 decode: bool = True, need_reference: bool = False,
                 objects: ObjectCache | None = None) -> PreparedItem:
    """Build the views of ``item``; any failure becomes ``PreparedItem.error``. A mesh is drawn
    with ``render`` (default settings when None) on ``background``.

    Files behind addresses (``s3://``...) are fetched into ``objects`` first (default: the
    user's cache folder), and every message names the address, not the cache file."""
    prepared = PreparedItem(item)
    local: Localized | None = None
    try:
        if item.error is not None:  # known bad when the input was read (io/manifest.py, io/listing.py)
            raise ItemError(item.error)
        if is_remote(item):
            local = localize(item, objects if objects is not None else default_objects())
        source = local.item if local is not None else item
        if item.kind == "image":
            prepared.views = [_image_view(item, 0, local_path(source.path), background,
                                          source=str(item.path) if local is not None else None)]
        elif item.kind == "views":
            prepared.views = _views_from_folder(item, background, local)
        elif item.kind == "mesh":
            settings = render or render_settings(None)
            if settings.background != background:
                settings = settings.replaced(background=background)
            prepared.views = _views_from_mesh(item, settings, prepared, local_path(source.path))
        else:
            raise ItemError(f"items of kind {item.kind!r} are not scored by `score` yet")
        if decode:
            for view in prepared.views:
                _ = view.loaded  # decode in the worker thread, fail the item here if corrupt
        if need_reference:
            if source.reference is None:
                raise ItemError("this metric needs a reference image: add a 'reference' column to the manifest "
                                "or use --reference-dir")
            prepared.reference = load_image(local_path(source.reference), background)
    except ItemError as exc:
        prepared.error = str(exc) if local is None else local.name(str(exc))
        prepared.views = []
    if local is not None:  # what the renderer said of cache files, said of the addresses
        prepared.view_errors = {k: local.name(v) for k, v in prepared.view_errors.items()}
        prepared.warnings = [local.name(w) for w in prepared.warnings]
    return prepared


_default_objects: ObjectCache | None = None


def default_objects() -> ObjectCache:
    """The object cache in the user's cache folder, for callers that do not pass their own."""
    global _default_objects
    if _default_objects is None:
        from gencritic.cache import default_cache_dir

        _default_objects = ObjectCache(default_cache_dir())
    return _default_objects
