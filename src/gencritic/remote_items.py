"""An item whose files are addresses, turned into the same item on local copies (fetched by content).

Why here, at preparation: the worker that scores an item reads its media itself (on a Ray cluster
without a shared disk, the node that runs the item), in the preparation threads that already
overlap decoding and rendering with the encoder; the driver only reads the manifest. Everything
after this step reads local files, so an item scored from ``s3://`` gives the numbers of the same
bytes on disk. The record keeps the address (the item's ``path``), and error text that names a
cache file names the address instead (:func:`gencritic.io.fetch.name_addresses`).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from gencritic.errors import ItemError
from gencritic.io.fetch import ObjectCache, list_folder_urls, name_addresses, stat_object
from gencritic.io.urls import UrlPath, is_url, redact
from gencritic.items import IMAGE_EXTENSIONS, UNREAD_3D_EXTENSIONS, Item, unread_3d_message


def is_remote(item: Item) -> bool:
    """Whether any file of ``item`` is behind an address."""
    return is_url(item.path) or is_url(item.reference)


@dataclass
class Localized:
    """The item on local copies, and which local paths stand for which addresses."""

    item: Item
    names: dict[str, str] = field(default_factory=dict)  # local path -> address

    def name(self, text: str) -> str:
        """``text`` with local cache paths replaced by the addresses they hold."""
        return name_addresses(text, self.names) if self.names else text


def _fetch_folder(url: UrlPath, objects: ObjectCache) -> tuple[Path, dict[str, str]]:
    """A views/frames folder: its images (natural order kept by the local listing), as one folder."""
    images = [u for u in list_folder_urls(url) if u.suffix.lower() in IMAGE_EXTENSIONS]
    if not images:
        raise ItemError(f"no view images under {redact(str(url))}")
    folder = objects.tree({u.name: objects.fetch(u) for u in images})
    return folder, {str(folder): str(url)}


def localize(item: Item, objects: ObjectCache) -> Localized:
    """Fetch what ``item`` names behind addresses; :class:`ItemError` naming the address when an
    object cannot be read. Local items come back unchanged."""
    out = Localized(item)
    if isinstance(item.path, UrlPath) and item.error is None:
        url = item.path
        if item.kind == "mesh" and url.suffix.lower() in UNREAD_3D_EXTENSIONS:
            stat_object(url)  # a missing object says so, as a missing local file does
            raise ItemError(unread_3d_message(url.name, url.suffix))  # not downloaded: it would not be read
        if item.kind == "mesh":
            from gencritic.mesh.remote import fetch_asset

            local, names = fetch_asset(url, objects)
        elif item.kind in ("views", "frames") and url.suffix.lower() not in IMAGE_EXTENSIONS:
            local, names = _fetch_folder(url, objects)
        else:
            local = objects.fetch(url)
            names = {str(local): str(url)}
        out.item = replace(out.item, path=local)
        out.names.update(names)
    if isinstance(item.reference, UrlPath):
        ref = objects.fetch(item.reference)
        out.item = replace(out.item, reference=ref)
        out.names[str(ref)] = str(item.reference)
    return out
