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
from gencritic.io.images import RGB, WHITE, LoadedImage, decode_image, load_image, read_file_bytes
from gencritic.io.listing import FolderError, list_folder
from gencritic.items import IMAGE_EXTENSIONS, Item
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


def _image_view(item: Item, index: int, path: Path, background: RGB, name: str | None = None) -> View:
    data = read_file_bytes(path)
    sha = hashlib.sha256(data + f"|bg={background}".encode()).hexdigest()

    def loader() -> LoadedImage:
        rgb, alpha = decode_image(data, str(path), background)
        return LoadedImage(rgb=rgb, sha256=sha, alpha=alpha)

    return View(item, index, sha, loader, name=name)


def _constant(image: LoadedImage) -> Callable[[], LoadedImage]:
    return lambda: image


def _views_from_folder(item: Item, background: RGB) -> list[View]:
    """The folder's images in natural order (``f2`` before ``f10``: the order frames were made,
    which temporal metrics depend on). A view that cannot be examined fails the item by name:
    scoring the others would silently drop a frame."""
    try:
        listing = list_folder(item.path, IMAGE_EXTENSIONS)
    except FolderError as exc:
        raise ItemError(str(exc)) from None
    if listing.bad:
        raise ItemError(f"views folder {item.path} has entries that cannot be read: {listing.bad_summary()}")
    files = listing.files
    if not files:
        raise ItemError(f"no view images in folder {item.path}")
    return [_image_view(item, i, p, background, name=p.stem) for i, p in enumerate(files)]


def _views_from_mesh(item: Item, render: RenderSettings, prepared: PreparedItem) -> list[View]:
    try:
        from gencritic.render.api import render_asset
    except ImportError as exc:
        raise ItemError(f"cannot render {item.path}: 3D rendering needs `pip install gencritic[render]` ({exc})") from None
    view_errors = prepared.view_errors
    result = render_asset(item.path, render)
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
        raise ItemError(f"no valid rendered view of {item.path}: {'; '.join(reasons)}")
    return views


def prepare_item(item: Item, background: RGB = WHITE, render: RenderSettings | None = None,
                 decode: bool = True, need_reference: bool = False) -> PreparedItem:
    """Build the views of ``item``; any failure becomes ``PreparedItem.error``. A mesh is drawn
    with ``render`` (default settings when None) on ``background``."""
    prepared = PreparedItem(item)
    try:
        if item.error is not None:  # known bad when the input was read (io/manifest.py, io/listing.py)
            raise ItemError(item.error)
        if item.kind == "image":
            prepared.views = [_image_view(item, 0, item.path, background)]
        elif item.kind == "views":
            prepared.views = _views_from_folder(item, background)
        elif item.kind == "mesh":
            settings = render or render_settings(None)
            if settings.background != background:
                settings = settings.replaced(background=background)
            prepared.views = _views_from_mesh(item, settings, prepared)
        else:
            raise ItemError(f"items of kind {item.kind!r} are not scored by `score` yet")
        if decode:
            for view in prepared.views:
                _ = view.loaded  # decode in the worker thread, fail the item here if corrupt
        if need_reference:
            if item.reference is None:
                raise ItemError("this metric needs a reference image: add a 'reference' column to the manifest "
                                "or use --reference-dir")
            prepared.reference = load_image(item.reference, background)
    except ItemError as exc:
        prepared.error = str(exc)
        prepared.views = []
    return prepared
