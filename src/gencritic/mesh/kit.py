"""A kit: one object delivered as several mesh files (parts), drawn and scored as the whole.

Why: a generator that decomposes an object (CSM's ``image_to_kit`` answers with
``output.part_meshes``, sometimes without an assembled mesh) hands over parts that only mean
something together: a chair's legs, seat and back. Scoring one part, or each part on its own
normalised to fill the frame, gives a number for an object nobody asked for. So the parts are
loaded with their own transforms (each file's scene graph, as for any mesh), their primitives
put into one asset, and that asset is normalised as one (bounding box of all parts centred,
longest side 1: TRELLIS' convention) and rendered like any mesh.

On disk a kit is a small JSON file whose name ends in ``.kit.json``::

    {"gencritic_kit": 1, "parts": ["part-00.glb", "part-01.glb"]}

Part paths are relative to the kit file's folder (or absolute). Its hash (what renders and
embeddings are cached by) is that of its parts' contents in order, so editing a part re-renders
it and moving the folder does not.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from gencritic.errors import ItemError
from gencritic.items import KIT_SUFFIX, MESH_EXTENSIONS

if TYPE_CHECKING:
    from gencritic.mesh.data import MeshData

FORMAT_KEY = "gencritic_kit"
FORMAT_VERSION = 1


def is_kit(path: Path) -> bool:
    """Whether ``path`` names a kit file (by its ``.kit.json`` ending)."""
    return Path(path).name.lower().endswith(KIT_SUFFIX)


def read_kit(path: Path) -> list[Path]:
    """The part files of a kit, in order; :class:`ItemError` naming the problem otherwise."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ItemError(f"kit file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise ItemError(f"cannot read kit {path.name}: {exc}") from None
    parts = doc.get("parts") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get(FORMAT_KEY) != FORMAT_VERSION or not isinstance(parts, list):
        raise ItemError(f"kit {path.name} is not a gencritic kit: expected "
                        f'{{"{FORMAT_KEY}": {FORMAT_VERSION}, "parts": ["a.glb", ...]}}')
    if not parts or not all(isinstance(p, str) and p for p in parts):
        raise ItemError(f"kit {path.name} lists no parts: 'parts' must be a non-empty list of mesh file names")
    files = [path.parent / p for p in parts]  # an absolute part path stays absolute
    for part in files:
        if is_kit(part) or part.suffix.lower() not in MESH_EXTENSIONS:
            raise ItemError(f"kit {path.name}: part {part.name} is not a mesh file (parts are "
                            f"{', '.join(sorted(MESH_EXTENSIONS))}; kits do not nest)")
    if len(set(files)) != len(files):
        raise ItemError(f"kit {path.name} lists a part twice: it would be drawn twice in the same place")
    return files


def write_kit(path: Path, parts: Sequence[Path]) -> Path:
    """Write (atomically) a kit file naming ``parts``, relative to its folder where they are below
    it; the same parts give the same bytes, so a re-run finds the same item."""
    path = Path(path)
    if not is_kit(path):
        raise ValueError(f"a kit file's name must end in {KIT_SUFFIX}: {path}")
    folder = path.parent.resolve()
    names = []
    for part in parts:
        resolved = Path(part).resolve()
        names.append(resolved.relative_to(folder).as_posix() if resolved.is_relative_to(folder) else str(resolved))
    text = json.dumps({FORMAT_KEY: FORMAT_VERSION, "parts": names}, indent=1) + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return path
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_kit(path: Path, load_part: Callable[[Path], MeshData]) -> MeshData:
    """Every part loaded by ``load_part`` (with its own transforms), as one asset.

    A part that cannot be drawn faithfully fails the kit: the whole object without it is not
    what was generated."""
    from gencritic.mesh.data import MeshData

    primitives = []
    for part in read_kit(path):
        try:
            data = load_part(part)
        except ItemError as exc:
            raise ItemError(f"kit {Path(path).name}, part {part.name}: {exc}") from None
        primitives.extend(data.primitives)
    return MeshData(primitives, str(path))
