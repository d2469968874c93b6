"""A small scored run for the report tests: images from two 'generators', a multi-view asset,
a broken file, and human ratings, scored through the public API with the tiny CLIP."""

from __future__ import annotations

import csv
from pathlib import Path

from gencritic.scoring import ScoreOptions, score
from tests.conftest import make_image

COLORS = [(220, 20, 20), (20, 200, 40), (20, 40, 220), (230, 220, 30), (140, 30, 160), (240, 140, 20),
          (30, 200, 200), (90, 90, 90)]
CUBE_OBJ = "\n".join(
    [f"v {x} {y} {z}" for x in (-0.5, 0.5) for y in (-0.4, 0.4) for z in (-0.3, 0.3)]
    + ["f 1 3 4 2", "f 5 6 8 7", "f 1 2 6 5", "f 3 7 8 4", "f 1 5 7 3", "f 2 4 8 6"]) + "\n"  # a box mesh as OBJ text: no mesh library needed to make it

NAMES = ["red", "green", "blue", "yellow", "purple", "orange", "cyan", "grey"]


def scored_run(base: Path, model: Path) -> Path:
    """Write media + manifest under ``base`` and score it into ``base/out``; return the out folder."""
    media = base / "media"
    rows = []
    for i, (name, color) in enumerate(zip(NAMES, COLORS, strict=True)):
        make_image(media / f"{name}.png", color)
        rows.append({"image": f"{name}.png", "prompt": f"a {name} square", "generator": "gen_a" if i % 2 else "gen_b",
                     "mos": f"{1 + (i * 7) % 5 + i / 10:.2f}"})
    for j, colors in enumerate([[(200, 10, 10), (10, 200, 10), (10, 10, 200)], [(50, 50, 50), (150, 150, 150)]]):
        for k, c in enumerate(colors):
            make_image(media / f"asset{j}" / f"{k:03d}.png", c)
        rows.append({"image": f"asset{j}", "prompt": f"a toy number {j}", "generator": "gen_a", "mos": f"{2.5 + j}"})
    (media / "broken.png").write_bytes(b"this is not a png")
    rows.append({"image": "broken.png", "prompt": "a broken file", "generator": "gen_b", "mos": "1.0"})
    manifest = media / "manifest.csv"
    with open(manifest, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    out = base / "out"
    score(manifest, out=out, options=ScoreOptions(model=str(model), device="cpu", dtype="fp32", cache_dir=None,
                                                  progress=False, metrics=["clip", "clip_torchmetrics"]))
    return out
