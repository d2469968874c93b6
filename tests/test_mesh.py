"""Mesh loading and normalisation, checked against meshes the tests build with known numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import ItemError
from gencritic.mesh import asset_files, asset_sha256, load_asset, normalization_transform
from gencritic.mesh.normalize import up_rotation
from tests.conftest import shared_data


def _box(path: Path, extents=(2.0, 1.0, 0.5), center=(3.0, -1.0, 0.25)) -> Path:
    mesh = trimesh.creation.box(extents=extents)
    mesh.apply_translation(center)
    mesh.export(path)
    return path


def _apply(matrix: np.ndarray, pts: np.ndarray) -> np.ndarray:
    return pts @ matrix[:3, :3].T + matrix[:3, 3]


def test_trellis_normalisation_centres_bbox_and_scales_longest_side_to_one(tmp_path: Path) -> None:
    data = load_asset(_box(tmp_path / "box.ply"))
    m = normalization_transform(data.all_positions(), "trellis")
    pts = _apply(m, data.all_positions().astype(np.float64))
    lo, hi = pts.min(0), pts.max(0)
    np.testing.assert_allclose((lo + hi) / 2, 0.0, atol=1e-6)
    np.testing.assert_allclose(hi - lo, [1.0, 0.5, 0.25], atol=1e-6)  # 2 : 1 : 0.5 scaled by 1/2


def test_sphere_normalisation_puts_every_vertex_within_radius(tmp_path: Path) -> None:
    data = load_asset(_box(tmp_path / "box.ply"))
    m = normalization_transform(data.all_positions(), "sphere", sphere_radius=0.5)
    pts = _apply(m, data.all_positions().astype(np.float64))
    assert np.linalg.norm(pts, axis=1).max() == pytest.approx(0.5, abs=1e-6)


def test_none_keeps_coordinates_and_z_up_rotates_to_y_up() -> None:
    pts = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])
    np.testing.assert_allclose(_apply(normalization_transform(pts, "none", "y"), pts), pts)
    out = _apply(normalization_transform(pts, "none", "z"), pts)
    # Z-up: +Z (up) -> +Y, -Y (Blender's front) -> +Z (our front), +X stays
    np.testing.assert_allclose(out, [[0, 1, 0], [0, 0, 1], [1, 0, 0]], atol=1e-12)
    assert np.linalg.det(up_rotation("z")) == pytest.approx(1.0)


def test_scene_graph_transform_is_applied(tmp_path: Path) -> None:
    scene = trimesh.Scene()
    box = trimesh.creation.box(extents=(1, 1, 1))
    matrix = trimesh.transformations.translation_matrix([5.0, 0.0, 0.0]) @ trimesh.transformations.scale_matrix(2.0)
    scene.add_geometry(box, node_name="moved", transform=matrix)
    path = tmp_path / "node.glb"
    scene.export(path)
    lo, hi = load_asset(path).bounds()
    np.testing.assert_allclose(lo, [4.0, -1.0, -1.0], atol=1e-5)
    np.testing.assert_allclose(hi, [6.0, 1.0, 1.0], atol=1e-5)


def test_vertex_colours_and_multiple_primitives(tmp_path: Path) -> None:
    a = trimesh.creation.icosphere(subdivisions=1)
    a.visual.vertex_colors = np.tile([255, 0, 0, 255], (len(a.vertices), 1)).astype(np.uint8)
    b = trimesh.creation.box()
    b.apply_translation([3, 0, 0])
    b.visual.face_colors = np.tile([0, 0, 255, 255], (len(b.faces), 1)).astype(np.uint8)
    scene = trimesh.Scene([a, b])
    path = tmp_path / "two.glb"
    scene.export(path)
    data = load_asset(path)
    assert len(data.primitives) == 2
    colours = {tuple(np.round(p.colors[0] * 255).astype(int)) for p in data.primitives}
    assert colours == {(255, 0, 0, 255), (0, 0, 255, 255)}
    assert data.num_faces == len(a.faces) + len(b.faces)


def test_point_cloud_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(500, 3))
    np.savez(tmp_path / "pc.npz", points=pts, colors=np.tile([0, 255, 0], (500, 1)).astype(np.uint8))
    data = load_asset(tmp_path / "pc.npz")
    assert data.num_points == 500 and data.num_faces == 0
    np.testing.assert_allclose(data.primitives[0].colors[0], [0, 1, 0, 1])


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.glb", b"", "empty"),
        ("garbage.glb", b"not a gltf file at all" * 10, "cannot read mesh"),
        ("point.obj", b"v 1 1 1\nv 1 1 1\nv 1 1 1\nf 1 2 3\n", "degenerate"),
        ("flat.obj", b"v 0 0 0\nv 1 0 0\nv 2 0 0\nf 1 2 3\n", "zero area"),
        ("nan.obj", b"v 0 0 0\nv 1 0 0\nv nan 1 0\nf 1 2 3\n", "NaN"),
        ("nofaces.obj", b"# nothing here\n", "no faces"),
        ("bad.npz", b"PK\x03\x04garbage", "cannot read point cloud"),
    ],
)
def test_bad_meshes_are_item_errors_with_reason(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ItemError, match=reason):
        load_asset(path)


def test_missing_mesh_is_item_error(tmp_path: Path) -> None:
    with pytest.raises(ItemError, match="not found"):
        load_asset(tmp_path / "nope.glb")
    with pytest.raises(ItemError, match="not found"):
        asset_sha256(tmp_path / "nope.glb")


def test_obj_hash_covers_mtl_and_texture(tmp_path: Path) -> None:
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\nusemtl a\nf 1/1 2/2 3/3\n")
    (tmp_path / "m.mtl").write_text("newmtl a\nKd 1 1 1\nmap_Kd -s 1 1 1 tex.png\n")
    (tmp_path / "tex.png").write_bytes(b"one")
    files = asset_files(tmp_path / "m.obj")
    assert [f.name for f in files] == ["m.obj", "m.mtl", "tex.png"]
    before = asset_sha256(tmp_path / "m.obj")
    (tmp_path / "tex.png").write_bytes(b"two")
    assert asset_sha256(tmp_path / "m.obj") != before


def test_gltf_hash_covers_external_buffers(tmp_path: Path) -> None:
    (tmp_path / "a.gltf").write_text(json.dumps({"buffers": [{"uri": "a.bin"}], "images": [{"uri": "t.png"}]}))
    (tmp_path / "a.bin").write_bytes(b"x")
    (tmp_path / "t.png").write_bytes(b"y")
    assert [f.name for f in asset_files(tmp_path / "a.gltf")] == ["a.gltf", "a.bin", "t.png"]


def test_real_meshes_load(tmp_path: Path) -> None:
    folder = shared_data("meshes-small")
    meshes = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".glb", ".obj", ".ply", ".stl"})
    assert len(meshes) >= 10
    for path in meshes:
        data = load_asset(path)
        assert data.num_faces > 0, path.name
    textured = {p.name: load_asset(p) for p in meshes if p.name in ("Duck.glb", "fuze.obj", "BoxTextured.glb")}
    for name, data in textured.items():
        assert any(p.texture is not None and p.uvs is not None for p in data.primitives), name
