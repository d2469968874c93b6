"""Find the pictures of each item and turn them into thumbnails the report can carry.

An image item has one picture; a folder of views has one per file; a mesh has the views a
``--views`` folder holds for it (``VIEWS/<asset>/NNN.png``, as ``gencritic render --out``
writes them), or, when asked, views rendered now through :mod:`gencritic.render.api` and
kept under the results folder so the next report does not render again. Nothing is fetched
from anywhere: a thumbnail is an embedded JPEG (``data:`` URI) or a relative link.
"""

from __future__ import annotations

import base64
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from gencritic.io.listing import FolderError, list_folder
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, kind_for_path
from gencritic.report.data import ResultsData

MEDIA_COLUMNS = ("image", "path", "file", "mesh", "asset", "filename")
RENDER_CACHE = Path(".gencritic") / "report_views"


@dataclass(frozen=True)
class Thumb:
    src: str  # data: URI or relative path
    label: str  # view name and its primary score, shown under the picture


def _images_in(folder: Path) -> list[Path]:
    """The folder's images in the order scoring saw them (the one listing, io/listing.py), so a
    thumbnail sits beside its own view's score; unreadable entries have no thumbnail."""
    try:
        return list_folder(folder, IMAGE_EXTENSIONS).files
    except FolderError:
        return []


def item_location(data: ResultsData, row: dict[str, Any], media_root: Path | None) -> tuple[Path | None, str | None]:
    """Where the item's media is, and its kind: the journal knows; else the media column."""
    info = data.items.get(str(row["item_id"]))
    if info and info.get("path"):
        return Path(info["path"]), info.get("kind")
    for col in MEDIA_COLUMNS:
        value = row.get(col)
        if isinstance(value, str) and value:
            path = Path(value)
            if not path.is_absolute():
                path = (media_root or data.folder) / path
            return path, (kind_for_path(path) if path.exists() else None)
    return None, None


def rendered_views(path: Path, cache_dir: Path, render_options: dict[str, Any]) -> list[Path]:
    """Render a mesh once through the render API and keep the PNGs for later reports."""
    folder = cache_dir / path.stem
    if folder.is_dir() and _images_in(folder):
        return _images_in(folder)
    from gencritic.render.api import render_asset_views

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, view in enumerate(render_asset_views(path, dict(render_options))):
        if view.error is not None or view.image is None:
            continue
        target = folder / f"{i:03d}.png"
        view.image.rgb.save(target)
        out.append(target)
    return out


def media_for(data: ResultsData, row: dict[str, Any], views_dir: Path | None, media_root: Path | None,
              render: bool, render_options: dict[str, Any]) -> list[Path]:
    """Every picture of one item, in view order; empty when none can be found."""
    path, kind = item_location(data, row, media_root)
    if path is None:
        return []
    if kind == "image" and path.is_file():
        return [path]
    if kind == "views" and path.is_dir():
        return _images_in(path)
    if kind == "mesh" or path.suffix.lower() in MESH_EXTENSIONS:
        if views_dir is not None:
            for name in (path.stem, str(row["item_id"]), Path(str(row["item_id"])).stem):
                if (views_dir / name).is_dir():
                    return _images_in(views_dir / name)
        if render and path.is_file():
            return rendered_views(path, data.folder / RENDER_CACHE, render_options)
    return []


def view_labels(data: ResultsData, column: str | None) -> dict[tuple[str, str], float]:
    """(item_id, view name) -> the view's value of ``column`` from views.csv."""
    out: dict[tuple[str, str], float] = {}
    if column is None:
        return out
    for v in data.views:
        value = v.get("value")
        if v.get("metric") == column and isinstance(value, float) and not math.isnan(value):
            out[(str(v.get("item_id")), str(v.get("view")))] = value
    return out


def encode_thumbnail(path: Path, size: int) -> str:
    """A JPEG thumbnail as a data: URI; transparency is flattened on white, as scoring does."""
    from PIL import Image

    with Image.open(path) as src:
        src.load()
        if src.mode in ("RGBA", "LA", "P"):
            rgba = src.convert("RGBA")
            img = Image.new("RGB", rgba.size, (255, 255, 255))
            img.paste(rgba, mask=rgba.split()[-1])
        else:
            img = src.convert("RGB")
    img.thumbnail((size, size))
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=80)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def thumbnails(data: ResultsData, html_dir: Path, *, views_dir: Path | None = None, media_root: Path | None = None,
               embed: bool = True, size: int = 160, render: bool = False,
               render_options: dict[str, Any] | None = None) -> dict[str, list[Thumb]]:
    """item_id -> its thumbnails (a strip for multi-view items). Unreadable pictures are skipped."""
    labels = view_labels(data, data.primary)
    out: dict[str, list[Thumb]] = {}
    for row in data.rows:
        item_id = str(row["item_id"])
        paths = media_for(data, row, views_dir, media_root, render, render_options or {})
        thumbs = []
        for i, p in enumerate(paths):
            name = p.stem if len(paths) > 1 else "0"
            value = labels.get((item_id, name), labels.get((item_id, str(i))))
            if len(paths) == 1:
                label = "" if value is None else f"{value:.4f}"
            else:
                label = name if value is None else f"{name}: {value:.4f}"
            try:
                # a link is the path's bytes percent-encoded: any file name (io/fsnames.py) stays a working URL
                src = encode_thumbnail(p, size) if embed else quote(os.fsencode(Path(os.path.relpath(p, html_dir)).as_posix()))
            except OSError:
                continue
            thumbs.append(Thumb(src=src, label=label))
        out[item_id] = thumbs
    return out
