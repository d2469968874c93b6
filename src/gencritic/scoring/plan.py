"""What a run will score, decided before any model loads: the items, checks that fail fast, and
the .blend conversion.

Why conversion is a planning step (not part of listing a folder): it runs Blender, minutes for
a large folder, and it is only needed by a run that renders. Listing stays a read of the folder
(:mod:`gencritic.io.manifest`); the run converts every .blend in batches before scoring (a file
that cannot be converted is a failed row), and only then knows which images in a listed folder
are a .blend's textures rather than items to score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gencritic.io.manifest import collect_items, pair_references, without_side_files
from gencritic.io.urls import UrlPath, as_path
from gencritic.items import Item
from gencritic.render.settings import RenderSettings, check_renderer


@dataclass
class Plan:
    """The run's items in input order, and the .blend files that could not be converted."""

    items: list[Item]
    blend_failures: dict[Path, str] = field(default_factory=dict)


def _is_blend(item: Item) -> bool:
    """A local .blend to convert now; one behind an address is converted where it is fetched,
    when it is prepared."""
    return item.kind == "mesh" and item.error is None and isinstance(item.path, Path) \
        and item.path.suffix.lower() == ".blend"


def gather_items(source: str | Path | UrlPath | Sequence[Item], prompt: str | None,
                 reference_dir: Path | UrlPath | None) -> list[Item]:
    """The items of ``source`` (a path: listed or read as a manifest; or items as they are),
    paired with references when ``reference_dir`` is given. Either may be an address; an address
    whose scheme has no fsspec implementation here stops the run in one line, before any model loads."""
    if isinstance(source, Sequence) and not isinstance(source, str):
        items = list(source)
    else:
        items = collect_items(as_path(source), prompt)
    if reference_dir is not None:
        items = pair_references(items, as_path(reference_dir))
    from gencritic.io.fetch import require_backends

    require_backends(remote_files(items))
    return items


def remote_files(items: Sequence[Item]) -> list[UrlPath]:
    """The addresses among the items' media and references."""
    return [u for i in items for u in (i.path, i.reference) if isinstance(u, UrlPath)]


def check_meshes(items: Sequence[Item], render: RenderSettings) -> None:
    """A renderer that cannot run here, or .blend files without a Blender: one line, up front."""
    meshes = [i.path for i in items if i.kind == "mesh" and i.error is None and isinstance(i.path, Path)]
    if not any(i.kind == "mesh" for i in items):
        return
    from gencritic.mesh.blend import require_blender

    check_renderer(render)
    require_blender(meshes)


def convert_blends(source: str | Path | UrlPath | Sequence[Item], items: list[Item], done: set[str], progress: bool) -> Plan:
    """Convert the .blend files the run needs (cached ones cost nothing): those of items not
    ``done``, and, when ``source`` is a folder, all of them, to leave out the images that turn out
    to be a .blend's textures."""
    listed = isinstance(source, str | Path) and isinstance(local := as_path(source), Path) and local.is_dir()
    blends = [i.path for i in items if isinstance(i.path, Path) and _is_blend(i) and (listed or i.item_id not in done)]
    if not blends:
        return Plan(items)
    from gencritic.mesh.blend import prepare_blend_files

    failures = prepare_blend_files(blends, progress)
    if listed:
        listed_paths = [i.path for i in items if isinstance(i.path, Path)]  # a local folder lists local paths
        kept = set(without_side_files(listed_paths, [b for b in blends if b not in failures]))
        items = [i for i in items if i.path in kept]
    return Plan(items, failures)
