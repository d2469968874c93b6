"""Any folder of meshes plus a captions CSV -> mesh items for ``gencritic.scoring.score``.

The CSV needs a column naming the asset (``mesh``, ``asset``, ``file``, ``path``,
``file_identifier`` or ``filename``; a path relative to the folder, with or without its
suffix) and a caption column (``caption``, ``prompt``, ``text`` or ``captions`` - the last may
hold a JSON list, reduced by the same rule as Toys4k: longest by default). Other columns are
carried through to the results unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gencritic.datasets.toys4k import choose_captions, parse_captions
from gencritic.errors import InputError
from gencritic.items import MESH_EXTENSIONS, Item

ASSET_COLUMNS = ("mesh", "asset", "file", "path", "file_identifier", "filename")
CAPTION_COLUMNS = ("caption", "prompt", "text", "captions")


def _resolve(folder: Path, name: str) -> Path | None:
    direct = folder / name
    if direct.is_file():
        return direct
    for suffix in sorted(MESH_EXTENSIONS):
        candidate = folder / f"{name}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def items_from_captions_csv(folder: Path, captions_csv: Path, rule: str = "longest") -> list[Item]:
    """One mesh item per CSV row (``rule``: longest, first; ``mean`` gives one item per caption).

    A row whose asset file is missing still becomes an item (its path does not exist), so it
    is reported as a failed row with the reason instead of silently dropped.
    """
    import pandas as pd

    if not Path(captions_csv).is_file():
        raise InputError(f"captions CSV not found: {captions_csv}")
    frame = pd.read_csv(captions_csv, dtype=str, keep_default_na=False)
    lowered = {c.lower(): c for c in frame.columns}
    asset_col = next((lowered[c] for c in ASSET_COLUMNS if c in lowered), None)
    caption_col = next((lowered[c] for c in CAPTION_COLUMNS if c in lowered), None)
    if asset_col is None or caption_col is None:
        raise InputError(f"{captions_csv} needs an asset column ({'/'.join(ASSET_COLUMNS)}) and a caption column "
                         f"({'/'.join(CAPTION_COLUMNS)}); it has: {', '.join(frame.columns)}")
    items: list[Item] = []
    seen: dict[str, int] = {}
    for rec in frame.to_dict("records"):
        name = str(rec[asset_col]).strip()
        path = _resolve(Path(folder), name) or Path(folder) / name
        columns: dict[str, Any] = {str(k): v for k, v in rec.items()}
        for k, caption in enumerate(choose_captions(parse_captions(rec[caption_col]), rule) or [""]):
            base = f"{name}#{k}" if rule == "mean" else name
            seen[base] = seen.get(base, 0) + 1
            item_id = base if seen[base] == 1 else f"{base}~{seen[base]}"
            items.append(Item(item_id=item_id, kind="mesh", path=path, prompt=caption or None,
                              columns={**columns, "caption_used": caption}))
    if not items:
        raise InputError(f"{captions_csv} has no rows")
    return items
