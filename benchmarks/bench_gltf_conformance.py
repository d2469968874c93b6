"""Render a corpus of glTF files into contact sheets and a CSV: the evidence behind the conformance
table of docs/rendering.md (*glTF conformance*).

    python benchmarks/bench_gltf_conformance.py CORPUS --out OUT [--variants glTF,glTF-Binary] [--only Duck,Fox]

CORPUS is a folder in the Khronos sample layout (``Models/<Name>/<variant>/<file>.gltf|glb`` with
``Models/<Name>/screenshot/screenshot.(png|jpg)``; the ``Models`` level may be CORPUS itself), or
any folder of .gltf/.glb files (then each file is a model of its own, without a screenshot). Each
file is rendered with the default settings (``toys4k8``, the protocol's normalisation) at
``--resolution``; a row of the sheet is the model's own screenshot (when it has one) and its 8
views, with the verdict under the name: ``ok``, ``ok, N blank`` (views that show nothing, e.g. a
card seen edge-on) or the error. ``OUT/conformance.csv`` has one row per file (model, variant,
file, success, error, views, blank views, primitives, warnings, seconds); ``OUT/sheet-NN.png`` hold
``--rows`` models each. Nothing here decides whether a render is right: that is a person's look at
the sheet next to the screenshots, written into the table with the date.
"""

from __future__ import annotations

import argparse
import csv
import time
import traceback
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

MODEL_SUFFIXES = (".gltf", ".glb")


def corpus_files(root: Path, variants: list[str] | None, only: list[str] | None) -> list[tuple[str, str, Path, Path | None]]:
    """(model, variant, file, screenshot or None) for every model file under ``root``."""
    models = root / "Models" if (root / "Models").is_dir() else root
    out: list[tuple[str, str, Path, Path | None]] = []
    khronos = any((d / "screenshot").is_dir() for d in models.iterdir() if d.is_dir())
    if not khronos:
        for file in sorted(p for p in models.rglob("*") if p.suffix.lower() in MODEL_SUFFIXES):
            if not only or file.stem in only:
                out.append((file.stem, file.parent.name, file, None))
        return out
    for model in sorted((d for d in models.iterdir() if d.is_dir()), key=lambda d: d.name.lower()):
        if only and model.name not in only:
            continue
        shots = sorted((model / "screenshot").glob("screenshot.*")) if (model / "screenshot").is_dir() else []
        for variant in sorted(d for d in model.iterdir() if d.is_dir() and d.name.startswith("glTF")):
            if variants and variant.name not in variants:
                continue
            for file in sorted(p for p in variant.iterdir() if p.suffix.lower() in MODEL_SUFFIXES):
                out.append((model.name, variant.name, file, shots[0] if shots else None))
    return out


def render_row(file: Path, shot: Path | None, resolution: int, thumb: int) -> tuple[dict[str, object], np.ndarray]:
    """One CSV row and one sheet row (label, screenshot, 8 views) for ``file``."""
    from gencritic.render.api import render_asset

    row: dict[str, object] = {"success": False, "error": "", "views": 0, "blank_views": 0, "primitives": 0,
                              "warnings": "", "seconds": 0.0}
    tiles: list[np.ndarray] = []
    t0 = time.perf_counter()
    try:
        result = render_asset(file, {"cache": False, "resolution": resolution})
        row.update(success=True, views=len(result.views), blank_views=sum(v.error is not None for v in result.views),
                   primitives=result.meta.get("primitives", 0), warnings="; ".join(result.warnings))
        for view in result.views:
            image = view.image.rgb if view.image is not None else Image.new("RGB", (resolution, resolution),
                                                                           (255, 230, 230))
            tiles.append(np.asarray(image.resize((thumb, thumb), Image.BICUBIC)))
    except Exception as exc:  # an ItemError is a refusal with its reason; anything else is a bug to report
        from gencritic.errors import ItemError

        row["error"] = str(exc) if isinstance(exc, ItemError) else "TRACEBACK " + "".join(
            traceback.format_exception_only(type(exc), exc)).strip()
    row["seconds"] = round(time.perf_counter() - t0, 3)
    blank = np.full((thumb, thumb, 3), 245, np.uint8)
    while len(tiles) < 8:
        tiles.append(blank)
    screenshot = blank
    if shot is not None:
        with Image.open(shot) as im:
            im = im.convert("RGB")
            im.thumbnail((thumb, thumb))
            canvas = Image.new("RGB", (thumb, thumb), (245, 245, 245))
            canvas.paste(im, ((thumb - im.width) // 2, (thumb - im.height) // 2))
            screenshot = np.asarray(canvas)
    return row, np.concatenate([screenshot, *tiles], axis=1)


def label(text: str, verdict: str, width: int, height: int) -> np.ndarray:
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((4, 4), text, fill=(0, 0, 0))
    for i in range(0, min(len(verdict), 26 * 5), 26):
        draw.text((4, 20 + i // 26 * 12), verdict[i:i + 26], fill=(150, 0, 0) if "error" in verdict[:8] else (0, 90, 0))
    return np.asarray(image)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", type=Path)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variants", default="", help="comma-separated variant folders (default: all)")
    parser.add_argument("--only", default="", help="comma-separated model names (default: all)")
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--thumb", type=int, default=128)
    parser.add_argument("--rows", type=int, default=12, help="models per sheet")
    args = parser.parse_args()
    variants = [v for v in args.variants.split(",") if v] or None
    only = [v for v in args.only.split(",") if v] or None
    files = corpus_files(args.corpus, variants, only)
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, object]] = []
    sheet: list[np.ndarray] = []
    page = 0
    with (args.out / "conformance.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, ["model", "variant", "file", "success", "error", "views", "blank_views",
                                    "primitives", "warnings", "seconds"])
        writer.writeheader()
        for model, variant, file, shot in files:
            row, strip = render_row(file, shot, args.resolution, args.thumb)
            row = {"model": model, "variant": variant, "file": file.name, **row}
            writer.writerow(row)
            f.flush()
            rows.append(row)
            verdict = ("ok" + (f", {row['blank_views']} blank" if row["blank_views"] else "")) if row["success"] \
                else f"error: {row['error']}"
            print(f"{model:32s} {variant:16s} {verdict[:120]}", flush=True)
            sheet.append(np.concatenate([label(f"{model} / {variant}", verdict, 190, args.thumb), strip], axis=1))
            if len(sheet) == args.rows:
                Image.fromarray(np.concatenate(sheet, axis=0)).save(args.out / f"sheet-{page:02d}.png")
                sheet, page = [], page + 1
        if sheet:
            Image.fromarray(np.concatenate(sheet, axis=0)).save(args.out / f"sheet-{page:02d}.png")
    ok = sum(bool(r["success"]) for r in rows)
    crashes = sum(str(r["error"]).startswith("TRACEBACK") for r in rows)
    print(f"{len(rows)} files: {ok} drawn, {len(rows) - ok - crashes} refused with a reason, {crashes} tracebacks")


if __name__ == "__main__":
    main()
