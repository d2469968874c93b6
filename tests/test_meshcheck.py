"""``gencritic meshcheck``: mesh health per asset, checked on constructed defects and against
brute-force references on real meshes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from tests.conftest import shared_data
from tests.geometry_refs import brute_force_intersections
from tests.test_geometry import box, export, gencritic


def run(source: Path, out: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
        ) -> dict[str, dict[str, str]]:
    code, err = gencritic(["meshcheck", str(source), "--out", str(out), "-q"], monkeypatch, capsys)
    assert code == 0, err
    with open(out / "results.csv", newline="") as fh:
        return {row["asset"]: row for row in csv.DictReader(fh)}


def _ints(row: dict[str, str], *names: str) -> list[int]:
    return [int(row[n]) for n in names]


@pytest.fixture()
def defects(tmp_path: Path) -> Path:
    """One asset per defect, each otherwise a clean closed box."""
    folder = tmp_path / "assets"
    folder.mkdir()
    cube = box((0, 0, 0), (1, 1, 1))
    cube.export(folder / "clean.obj")
    export(cube.vertices, cube.faces[1:], folder / "open.ply")  # one triangle missing: 3 boundary edges
    fin = np.vstack([cube.vertices, [[0.5, 0.5, 2.0]]])  # a fin on an existing edge: 3 faces on it
    edge = cube.faces[0][:2]
    export(fin, np.vstack([cube.faces, [[edge[0], edge[1], 8]]]), folder / "fin.ply")
    flipped = cube.faces.copy()
    flipped[0] = flipped[0][::-1]
    export(cube.vertices, flipped, folder / "flipped.ply")
    sliver = np.vstack([cube.vertices, (cube.vertices[0] + cube.vertices[1]) / 2])
    export(sliver, np.vstack([cube.faces, [[0, 1, 8]]]), folder / "sliver.ply")  # collinear: zero area
    export(cube.vertices, np.vstack([cube.faces, cube.faces[:2]]), folder / "doubled.ply")
    two = trimesh.util.concatenate([cube, box((3, 0, 0), (4, 1, 1))])
    export(two.vertices, two.faces, folder / "two.ply")
    crossing = trimesh.util.concatenate([cube, box((0.5, 0.25, 0.25), (1.5, 0.75, 0.75))])
    export(crossing.vertices, crossing.faces, folder / "crossing.ply")
    # a cube split at every edge (as a UV-seamed export is): welding makes it closed again
    split = trimesh.Trimesh(cube.triangles.reshape(-1, 3), np.arange(36).reshape(-1, 3), process=False)
    export(split.vertices, split.faces, folder / "seams.ply")
    return folder


def test_each_defect_is_counted(defects: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    rows = run(defects, tmp_path / "out", monkeypatch, capsys)
    cols = ("boundary_edges", "non_manifold_edges", "inconsistent_winding_edges", "components", "degenerate_faces",
            "duplicate_faces", "self_intersections")
    assert rows["clean.obj"]["watertight"] == "true" and _ints(rows["clean.obj"], *cols) == [0, 0, 0, 1, 0, 0, 0]
    assert rows["open.ply"]["watertight"] == "false" and _ints(rows["open.ply"], *cols) == [3, 0, 0, 1, 0, 0, 0]
    assert _ints(rows["fin.ply"], *cols) == [2, 1, 0, 1, 0, 0, 0]
    assert _ints(rows["flipped.ply"], *cols) == [0, 0, 3, 1, 0, 0, 0]
    assert _ints(rows["sliver.ply"], "degenerate_faces") == [1]
    assert _ints(rows["doubled.ply"], "duplicate_faces", "non_manifold_edges") == [2, 5]
    assert _ints(rows["two.ply"], "components", "self_intersections") == [2, 0]
    crossing = rows["crossing.ply"]
    assert _ints(crossing, "components") == [2] and int(crossing["self_intersections"]) > 0
    assert rows["seams.ply"]["watertight"] == "true"
    assert _ints(rows["seams.ply"], "faces", "vertices", "render_vertices") == [12, 8, 36]
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["assets"] == 9 and summary["successes"] == 9 and summary["with_self_intersections"] == 1


def test_self_intersections_equal_a_brute_force_reference_on_crossing_shapes() -> None:
    from gencritic.geometry.intersections import intersecting_pairs

    a = trimesh.creation.icosphere(2)
    b = trimesh.creation.icosphere(2)
    b.apply_translation([0.6, 0.3, 0.1])
    both = trimesh.util.concatenate([a, b])
    expected = brute_force_intersections(np.asarray(both.vertices), np.asarray(both.faces))
    found = {tuple(p) for p in intersecting_pairs(both.vertices, both.faces).tolist()}
    assert len(expected) > 50 and found == expected
    rng = np.random.default_rng(3)  # a soup of random triangles: every kind of generic crossing
    soup = rng.random((150, 3, 3))
    v, f = soup.reshape(-1, 3), np.arange(450).reshape(-1, 3)
    expected = brute_force_intersections(v, f)
    assert len(expected) > 100
    assert {tuple(p) for p in intersecting_pairs(v, f).tolist()} == expected


def test_coplanar_cases() -> None:
    from gencritic.geometry.intersections import intersecting_pairs

    grid = trimesh.creation.box().subdivide().subdivide()  # flat faces tessellated: neighbours touch, never cross
    assert len(intersecting_pairs(grid.vertices, grid.faces)) == 0
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0.2, 0.5, 0], [0.2, 0.2, 0.0], [2, 2, 0.0], [1, 1, 0.0]])
    folded = np.array([[0, 1, 2], [0, 1, 3]])  # both on the same side of their shared edge
    assert intersecting_pairs(v, folded).tolist() == [[0, 1]]
    flat = np.array([[0, 1, 2], [1, 6, 2]])  # a flat quad: opposite sides of the diagonal
    assert len(intersecting_pairs(v, flat)) == 0
    overlapping = np.array([[0, 1, 2], [4, 5, 3]])  # coplanar, no shared vertex, overlapping
    assert intersecting_pairs(v, overlapping).tolist() == [[0, 1]]


@pytest.mark.shared_data
def test_real_meshes_match_brute_force_and_trimesh(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from gencritic.geometry.surface import load_surface
    from gencritic.geometry.topology import index_degenerate, weld

    folder = shared_data("meshes-small")
    rows = run(folder, tmp_path / "out", monkeypatch, capsys)
    assert len(rows) == 13 and all(r["success"] == "true" for r in rows.values())
    for name in ("teapot.stl", "suzanne.ply", "rabbit.obj", "Duck.glb", "fuze.obj"):
        surface = load_surface(folder / name)
        v, f = weld(surface.vertices, surface.faces)
        f = f[~index_degenerate(f)]
        assert int(rows[name]["self_intersections"]) == len(brute_force_intersections(v, f)), name
        welded = trimesh.Trimesh(v, f, process=False)
        assert (rows[name]["watertight"] == "true") == welded.is_watertight, name
        assert int(rows[name]["components"]) == len(welded.split(only_watertight=False)), name
    assert rows["Duck.glb"]["texture_resolution"] == "512x512" and rows["Duck.glb"]["pbr_channels"] == "base_color"
    assert rows["fuze.obj"]["texture_resolution"] == "1024x1024"
    assert rows["capsule.obj"]["textures"] == "0" and rows["capsule.obj"]["uv_coverage"] == ""  # no MTL: no texture
    # its material library is missing: checked all the same (the shape does not depend on it), and said
    assert "capsule.mtl" in rows["capsule.obj"]["missing_files"] and rows["fuze.obj"]["missing_files"] == ""
    assert float(rows["BoxTextured.glb"]["uv_outside"]) > 0  # its UVs tile (u up to 6)


def test_pbr_channels_and_uv_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    def image(size: tuple[int, int]) -> Image.Image:
        return Image.fromarray(np.random.default_rng(0).integers(0, 255, (size[1], size[0], 4), dtype=np.uint8))

    quad = trimesh.Trimesh([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]], [[0, 1, 2], [0, 2, 3]], process=False)
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image((64, 32)), normalTexture=image((16, 16)),
                                                   metallicRoughnessTexture=image((128, 64)))
    full = quad.copy()
    full.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [1, 0], [1, 1], [0, 1]], material=material)
    full.export(tmp_path / "full.glb")
    stacked = trimesh.Trimesh(quad.vertices, [[0, 1, 2], [0, 2, 3], [0, 1, 2]], process=False)  # a face twice in UV
    stacked.visual = trimesh.visual.TextureVisuals(uv=[[0, 0], [0.5, 0], [0.5, 0.5], [0, 0.5]], material=material)
    stacked.export(tmp_path / "stacked.glb")
    rows = run(tmp_path, tmp_path / "out", monkeypatch, capsys)
    full_row, stacked_row = rows["full.glb"], rows["stacked.glb"]
    assert full_row["pbr_channels"] == "base_color;metallic_roughness;normal"
    assert full_row["textures"] == "3" and full_row["texture_resolution"] == "128x64"
    # two UV triangles sharing their diagonal cover the square exactly once: the tie rule in action
    assert float(full_row["uv_coverage"]) == 1.0 and float(full_row["uv_overlap"]) == 0.0
    assert float(stacked_row["uv_coverage"]) == pytest.approx(0.25, abs=2 / 64)
    assert float(stacked_row["uv_overlap"]) == pytest.approx(0.5, abs=2 / 64)


def test_bad_input_is_one_line_and_a_bad_file_one_failed_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    code, err = gencritic(["meshcheck", str(tmp_path / "missing"), "--out", str(tmp_path / "o")], monkeypatch, capsys)
    assert code == 2 and len(err) == 1 and "not found" in err[0]
    folder = tmp_path / "in"
    folder.mkdir()
    box((0, 0, 0), (1, 1, 1)).export(folder / "good.ply")
    (folder / "broken.obj").write_text("v 0 0 0\nf 1 2 3\n")
    (folder / "ghost.glb").symlink_to(tmp_path / "nowhere.glb")
    rows = run(folder, tmp_path / "out", monkeypatch, capsys)
    assert rows["ghost.glb"]["success"] == "false" and "ghost.glb" in rows["ghost.glb"]["error"]
    assert rows["good.ply"]["success"] == "true"
    assert rows["broken.obj"]["success"] == "false" and rows["broken.obj"]["error"]
    text = (tmp_path / "out" / "summary.json").read_text()
    json.loads(text, parse_constant=lambda token: pytest.fail(f"non-strict JSON token {token}"))
