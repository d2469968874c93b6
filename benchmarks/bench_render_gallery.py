"""Render every real mesh in ../shared/data/meshes-small (toys4k8, 512²), print ms/asset, and
write the contact sheet used in docs/rendering.md (docs/img/render_gallery.png) plus the
conventions figure (docs/img/render_conventions.png).

    python benchmarks/bench_render_gallery.py
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
MESHES = ROOT.parent / "shared" / "data" / "meshes-small"
IMG = ROOT / "docs" / "img"


def gallery(thumb: int = 112) -> None:
    from gencritic.render.api import render_asset

    files = sorted(p for p in MESHES.iterdir() if p.suffix.lower() in {".glb", ".obj", ".ply", ".stl"})
    rows = []
    for path in files:
        t0 = time.perf_counter()
        # capsule, quadknot and ico4uv come without the material libraries they name: drawn plain
        r = render_asset(path, {"cache": False, "allow_untextured": True})
        ms = (time.perf_counter() - t0) * 1000
        blank = sum(v.error is not None for v in r.views)
        print(f"{path.name:18s} {r.meta['faces']:7d} faces  {ms:7.1f} ms/asset (load + 8 views + composite)"
              + (f"  {blank} blank view(s)" if blank else ""))
        tiles = []
        for v in r.views:
            im = v.image.rgb if v.image is not None else Image.new("RGB", (512, 512), (255, 230, 230))
            tiles.append(np.asarray(im.resize((thumb, thumb), Image.BICUBIC)))
        label = Image.new("RGB", (150, thumb), (255, 255, 255))
        ImageDraw.Draw(label).text((6, thumb // 2 - 6), path.name, fill=(0, 0, 0))
        rows.append(np.concatenate([np.asarray(label), *tiles], axis=1))
    head = Image.new("RGB", (rows[0].shape[1], 18), (255, 255, 255))
    d = ImageDraw.Draw(head)
    for i in range(8):
        d.text((150 + i * thumb + 4, 3), f"{i:03d}  yaw {45 * i}°", fill=(0, 0, 0))
    sheet = np.concatenate([np.asarray(head), *rows], axis=0)
    IMG.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).save(IMG / "render_gallery.png", optimize=True)
    print(f"wrote {IMG / 'render_gallery.png'}")


def conventions() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gencritic.render.cameras import make_rig

    cams = make_rig("toys4k8")
    fig = plt.figure(figsize=(10, 4.6))
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    # plot (x, -z, y): a rotation (not a mirror) that puts our +Y on matplotlib's vertical axis
    for vec, colour, name in (((1, 0, 0), "red", "+X"), ((0, 1, 0), "green", "+Y (up)"), ((0, 0, 1), "blue", "+Z (front)")):
        ax.quiver(0, 0, 0, vec[0] * 0.9, -vec[2] * 0.9, vec[1] * 0.9, color=colour, linewidth=2)
        ax.text(vec[0], -vec[2], vec[1], name, color=colour)
    r = np.array([-0.5, 0.5])
    for s in (-0.5, 0.5):
        for t in (-0.5, 0.5):
            ax.plot(r, [s, s], [t, t], color="grey", lw=0.6)
            ax.plot([s, s], r, [t, t], color="grey", lw=0.6)
            ax.plot([s, s], [t, t], r, color="grey", lw=0.6)
    for c in cams:
        x, y, z = c.eye
        ax.scatter(x, -z, y, color="black", s=12)
        ax.plot([x, 0], [-z, 0], [y, 0], color="black", lw=0.4, alpha=0.5)
        ax.text(x * 1.08, -z * 1.08, y * 1.08, c.name, fontsize=7)
    ax.set_xlabel("X")
    ax.set_ylabel("-Z")
    ax.set_zlabel("Y")
    ax.set_box_aspect((1, 1, 0.6))
    ax.set_title("world: Y-up, front +Z; toys4k8 cameras\n(pitch 30°, radius 2, FoV 40°) around the unit box", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    ax2.set_aspect("equal")
    ax2.add_patch(plt.Rectangle((-0.5, -0.5), 1, 1, fill=False, color="grey"))
    for c in cams:
        x, _, z = c.eye
        ax2.plot([x, 0], [-z, 0], color="black", lw=0.4)
        ax2.scatter(x, -z, color="black", s=12)
        ax2.annotate(f"{c.name}\nyaw {c.yaw_deg:.0f}°", (x, -z), textcoords="offset points", xytext=(4, 4), fontsize=7)
    ax2.arrow(0, 0, 0.9, 0, color="red", width=0.01)
    ax2.arrow(0, 0, 0, -0.9, color="blue", width=0.01)
    ax2.text(0.92, -0.12, "+X", color="red")
    ax2.text(0.05, -1.0, "+Z (front)", color="blue")
    ax2.set_xlim(-2.3, 2.3)
    ax2.set_ylim(-2.3, 2.3)
    ax2.set_xlabel("X")
    ax2.set_ylabel("-Z")
    ax2.set_title("seen from above (looking down -Y): yaw turns right-handed\nabout +Y; yaw 0 sees the front (+Z), yaw 90° the +X side", fontsize=9)
    fig.tight_layout()
    fig.savefig(IMG / "render_conventions.png", dpi=110)
    print(f"wrote {IMG / 'render_conventions.png'}")


if __name__ == "__main__":
    if MESHES.exists():
        gallery()
    else:
        print(f"{MESHES} not present: gallery skipped")
    conventions()
