"""Generators' outputs for the pairwise judge: which assets answer which prompt, and their views.

A generator is a folder. Each entry directly inside is one prompt's output, named by the
prompt id (its stem): a mesh file (rendered with gencritic's rig, as ``score`` does), a folder of
pre-rendered views (``NNN.png``, as ``gencritic render`` writes), or a single image. The prompt
text comes from ``--prompts`` (CSV with ``id`` and ``prompt`` columns), else from a sidecar
``<id>.txt`` beside the entry or ``prompt.txt`` inside a views folder.

This module is the judges' one door to the scoring pipeline's view preparation
(:func:`gencritic.prepare.prepare_item`), so meshes are rendered, cached and checked for blank
views exactly as everywhere else.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from gencritic.errors import InputError
from gencritic.items import IMAGE_EXTENSIONS, MESH_EXTENSIONS, Item, ItemKind


@dataclass(frozen=True)
class AssetViews:
    """The views of one asset (decoded), with their content hashes, or why there are none."""

    images: list[Image.Image]
    shas: list[str]
    error: str | None = None


def generator_entries(folder: Path) -> dict[str, tuple[ItemKind, Path]]:
    """``{prompt id: (kind, path)}`` of one generator's folder; two entries with one id are refused."""
    if not folder.is_dir():
        raise InputError(f"generator folder not found: {folder} (give one folder of outputs per generator)")
    out: dict[str, tuple[ItemKind, Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith("."):
            continue
        suffix = path.suffix.lower()
        kind: ItemKind
        if path.is_dir():
            kind = "views"
        elif suffix in MESH_EXTENSIONS:
            kind = "mesh"
        elif suffix in IMAGE_EXTENSIONS:
            kind = "image"
        else:
            continue  # sidecar prompts and anything else
        pid = path.stem if not path.is_dir() else path.name
        if pid in out:
            raise InputError(f"{folder}: two outputs for prompt {pid!r} ({out[pid][1].name} and {path.name}); "
                             f"keep one per prompt")
        out[pid] = (kind, path)
    if not out:
        raise InputError(f"{folder} holds no outputs (meshes, folders of views or images named by prompt id)")
    return out


def read_prompts(path: Path) -> dict[str, str]:
    """``--prompts``: a CSV with ``id`` and ``prompt`` columns."""
    if not path.is_file():
        raise InputError(f"prompts file not found: {path}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        cols = set(reader.fieldnames or [])
        if not {"id", "prompt"} <= cols:
            raise InputError(f"{path} needs the columns 'id' and 'prompt' (found: {', '.join(sorted(cols)) or 'none'})")
        return {str(r["id"]).strip(): str(r["prompt"]).strip() for r in reader if str(r["id"]).strip()}


def sidecar_prompt(kind: ItemKind, path: Path) -> str | None:
    candidates = [path.with_suffix(".txt") if kind != "views" else path.parent / f"{path.name}.txt"]
    if kind == "views":
        candidates.append(path / "prompt.txt")
    for c in candidates:
        if c.is_file():
            text = c.read_text(encoding="utf-8").strip()
            if text:
                return text
    return None


def pick_views(n_available: int, n_wanted: int) -> list[int]:
    """``n_wanted`` evenly spaced view indices (all of them when there are fewer)."""
    if n_available <= n_wanted:
        return list(range(n_available))
    return [int(k * n_available / n_wanted) for k in range(n_wanted)]


def load_views(prompt_id: str, kind: ItemKind, path: Path, n_views: int,
               render_options: dict[str, Any] | None = None) -> AssetViews:
    """The asset's views through the scoring pipeline's preparation (render for meshes)."""
    from gencritic.prepare import prepare_item
    from gencritic.render.settings import render_settings

    prepared = prepare_item(Item(prompt_id, kind, path), render=render_settings(render_options))
    if prepared.error is not None:
        return AssetViews([], [], prepared.error)
    chosen = [prepared.views[i] for i in pick_views(len(prepared.views), n_views)]
    return AssetViews([v.image for v in chosen], [v.sha256 for v in chosen])
