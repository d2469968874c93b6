"""Mesh loading and normalisation, checked against meshes the tests build with known numbers."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from gencritic.errors import ItemError
from gencritic.mesh import asset_files, asset_sha256, load_asset, normalization_transform
from gencritic.mesh.normalize import up_rotation
from tests.conftest import MESHES_WITHOUT_THEIR_MTL, shared_data


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
        unshipped = MESHES_WITHOUT_THEIR_MTL.get(path.name)
        if unshipped:  # would be drawn in the default colour: refused with the fix, drawn when allowed
            with pytest.raises(ItemError, match=rf"needs material library {re.escape(unshipped)} .*--allow-untextured"):
                load_asset(path)
        data = load_asset(path, allow_untextured=unshipped is not None)
        assert data.num_faces > 0, path.name
    textured = {p.name: load_asset(p) for p in meshes if p.name in ("Duck.glb", "fuze.obj", "BoxTextured.glb")}
    for name, data in textured.items():
        assert any(p.texture is not None and p.uvs is not None for p in data.primitives), name


# ------------------------------------------------------------------------------------------------
# glTF extensions: decoded right, or refused with the fix; never drawn wrongly


def _glb_with(tmp_path: Path, name: str, edit) -> Path:
    """A vertex-coloured box GLB (trimesh's export) whose JSON ``edit(doc)`` changes."""
    from tests.test_render import join_glb, split_glb

    box = trimesh.creation.box()
    box.visual.vertex_colors = np.tile([200, 100, 50, 255], (len(box.vertices), 1)).astype(np.uint8)
    doc, binary = split_glb(trimesh.exchange.gltf.export_glb(trimesh.Scene([box])))
    edit(doc)
    path = tmp_path / name
    path.write_bytes(join_glb(doc, binary))
    return path


@pytest.mark.parametrize(("extension", "module", "reason"), [
    ("EXT_meshopt_compression", "meshopt", r"meshopt-compressed.*gltf-transform/cli copy"),
    ("KHR_texture_basisu", "opengl_basisu", r"KTX2/Basis.*PNG or JPEG"),
])
def test_undecodable_gltf_extensions_fail_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       extension: str, module: str, reason: str) -> None:
    """Without their decoders (both in the render extra; tests/test_gltf_features.py decodes them)."""
    def edit(doc: dict) -> None:
        doc["extensionsUsed"] = [extension]
        doc["extensionsRequired"] = [extension]
        if extension == "KHR_texture_basisu":  # a base colour with only a KTX2 source
            doc["images"] = [{"uri": "t.ktx2"}]
            doc["textures"] = [{"extensions": {extension: {"source": 0}}}]
            doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {"index": 0}}}]
            doc["meshes"][0]["primitives"][0]["material"] = 0

    path = _glb_with(tmp_path, "m.glb", edit)
    (tmp_path / "t.ktx2").write_bytes(b"\xabKTX 20\xbb\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(ItemError, match=f"uses {extension}: .*{reason}"):
        load_asset(path)


def test_texture_transform_moves_coordinates_and_identity_keeps_them(tmp_path: Path) -> None:
    """Applied now (it failed the row before); its pixels: tests/test_gltf_features.py."""
    def with_transform(transform: dict):
        def edit(doc: dict) -> None:
            doc["extensionsUsed"] = ["KHR_texture_transform"]
            doc["materials"] = [{"pbrMetallicRoughness": {"baseColorTexture": {
                "index": 0, "extensions": {"KHR_texture_transform": transform}}}}]
        return edit

    load_asset(_glb_with(tmp_path, "identity.glb", with_transform({"offset": [0, 0], "scale": [1, 1]})))
    load_asset(_glb_with(tmp_path, "scaled.glb", with_transform({"scale": [2, 2]})))


def test_draco_without_its_decoder_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    def edit(doc: dict) -> None:
        doc["extensionsUsed"] = ["KHR_draco_mesh_compression"]

    path = _glb_with(tmp_path, "d.glb", edit)
    monkeypatch.setitem(sys.modules, "DracoPy", None)  # as if it were not installed
    with pytest.raises(ItemError, match=r"Draco-compressed.*gencritic\[render\]"):
        load_asset(path)


def _srgb(linear: float) -> float:
    """IEC 61966-2-1, written out here independently of the loader's version."""
    return 12.92 * linear if linear <= 0.0031308 else 1.055 * linear ** (1 / 2.4) - 0.055


def _linear(srgb: float) -> float:
    """The inverse sRGB transfer function, written out from IEC 61966-2-1."""
    return srgb / 12.92 if srgb <= 0.04045 else ((srgb + 0.055) / 1.055) ** 2.4


def test_normalized_colours_are_left_to_trimesh_and_read_as_linear(tmp_path: Path) -> None:
    """COLOR_0 as normalized bytes is core glTF that trimesh reads right: not rewritten; its
    values are linear by the specification, so they reach the renderer sRGB-encoded."""
    from gencritic.mesh.gltf_prepare import needs_rewrite

    path = _glb_with(tmp_path, "c.glb", lambda doc: None)
    from tests.test_render import split_glb

    doc, _ = split_glb(path.read_bytes())
    colour_accessor = doc["accessors"][doc["meshes"][0]["primitives"][0]["attributes"]["COLOR_0"]]
    assert colour_accessor.get("normalized") and not needs_rewrite(doc)
    np.testing.assert_allclose(load_asset(path).primitives[0].colors[0],
                               [_srgb(200 / 255), _srgb(100 / 255), _srgb(50 / 255), 1.0], rtol=1e-6)


@pytest.mark.parametrize("component", [5126, 5123])  # float (what Blender writes), normalized 16-bit
def test_fine_vertex_colours_keep_their_precision(tmp_path: Path, component: int) -> None:
    """trimesh keeps COLOR_0 as bytes of the linear value: sRGB 40 came back 38 once encoded.
    Colours finer than a byte are encoded to sRGB before trimesh rounds them."""
    import base64

    target = np.array([40, 12, 200])
    linear = np.array([_linear(v / 255) for v in target] + [1.0])

    def float_colours(doc: dict) -> None:
        prim = doc["meshes"][0]["primitives"][0]
        count = doc["accessors"][prim["attributes"]["COLOR_0"]]["count"]
        values = np.tile(linear, (count, 1))
        data = (values.astype("<f4") if component == 5126 else np.round(values * 65535).astype("<u2")).tobytes()
        doc["buffers"].append({"byteLength": len(data),
                               "uri": "data:application/octet-stream;base64," + base64.b64encode(data).decode()})
        doc["bufferViews"].append({"buffer": len(doc["buffers"]) - 1, "byteOffset": 0, "byteLength": len(data)})
        acc = {"bufferView": len(doc["bufferViews"]) - 1, "componentType": component, "count": count, "type": "VEC4"}
        if component != 5126:
            acc["normalized"] = True
        doc["accessors"].append(acc)
        prim["attributes"]["COLOR_0"] = len(doc["accessors"]) - 1

    colours = load_asset(_glb_with(tmp_path, "fine.glb", float_colours)).primitives[0].colors
    np.testing.assert_allclose(colours[:, :3] * 255, np.tile(target, (len(colours), 1)), atol=0.5 + 1e-4)


def test_gltf_point_cloud_colours_are_linear_too(tmp_path: Path) -> None:
    cloud = trimesh.PointCloud(np.random.default_rng(0).random((50, 3)),
                               colors=np.tile([128, 51, 13, 255], (50, 1)).astype(np.uint8))
    path = tmp_path / "cloud.glb"
    trimesh.Scene([cloud]).export(path)
    (prim,) = load_asset(path).primitives
    assert prim.mode == "points"
    np.testing.assert_allclose(prim.colors[0], [_srgb(128 / 255), _srgb(51 / 255), _srgb(13 / 255), 1.0], rtol=1e-6)


def test_quantized_positions_decode_to_the_float_originals(tmp_path: Path) -> None:
    from tests.test_render import quantize_glb, textured_cube

    float_path = tmp_path / "f.glb"
    textured_cube().export(float_path)
    quant_path = tmp_path / "q.glb"
    quant_path.write_bytes(quantize_glb(float_path.read_bytes()))
    ref, got = load_asset(float_path).primitives[0], load_asset(quant_path).primitives[0]
    np.testing.assert_allclose(got.positions, ref.positions, atol=1 / 32767)
    np.testing.assert_allclose(got.uvs, ref.uvs, atol=1 / 65535)
    assert got.normals is None and ref.normals is None  # trimesh writes no normals for this cube
    # normals as normalized int8 (4-byte stride), on a sphere exported with them
    sphere = tmp_path / "s.glb"
    sphere.write_bytes(trimesh.exchange.gltf.export_glb(
        trimesh.Scene([trimesh.creation.icosphere(subdivisions=2, radius=0.5)]), include_normals=True))
    quant_sphere = tmp_path / "qs.glb"
    quant_sphere.write_bytes(quantize_glb(sphere.read_bytes()))
    ref, got = load_asset(sphere).primitives[0], load_asset(quant_sphere).primitives[0]
    assert ref.normals is not None and got.normals is not None
    np.testing.assert_allclose(got.positions, ref.positions, atol=1 / 32767)
    np.testing.assert_allclose(got.normals, ref.normals, atol=2 / 127)  # renormalised after decoding


def test_sparse_accessors_are_applied(tmp_path: Path) -> None:
    from tests.test_render import sparsify_glb, textured_cube

    float_path = tmp_path / "f.glb"
    textured_cube().export(float_path)
    ref = load_asset(float_path).primitives[0]
    path = tmp_path / "sparse.glb"
    path.write_bytes(sparsify_glb(float_path.read_bytes()))
    np.testing.assert_array_equal(load_asset(path).primitives[0].positions, ref.positions)


# ------------------------------------------------------------------------------------------------
# side files: a missing texture fails the row instead of rendering a white asset


def _textured_obj(folder: Path, texture_name: str = "tex ture.png", map_line: str | None = None) -> Path:
    from tests.test_render import textured_cube

    folder.mkdir(parents=True, exist_ok=True)
    textured_cube().export(folder / "cube.obj")
    mtl = next(folder.glob("*.mtl"))
    written = next(p for p in folder.iterdir() if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    written.rename(folder / texture_name)
    lines = [ln for ln in mtl.read_text().splitlines() if not ln.strip().lower().startswith("map_kd")]
    lines.append(map_line or f"map_Kd {texture_name}")
    mtl.write_text("\n".join(lines) + "\n")
    return folder / "cube.obj"


def test_obj_texture_names_with_options_and_spaces_are_found(tmp_path: Path) -> None:
    path = _textured_obj(tmp_path / "a", "tex ture.png", "map_Kd -s 1 1 1 -clamp on tex ture.png")
    assert load_asset(path).primitives[0].texture is not None


def test_obj_with_its_texture_missing_fails_naming_it(tmp_path: Path) -> None:
    path = _textured_obj(tmp_path / "b", "skin.png")
    (path.parent / "skin.png").unlink()
    with pytest.raises(ItemError, match=r"needs texture skin\.png \(map_Kd in .*\.mtl\).*copy it there"):
        load_asset(path)


def test_obj_naming_an_absent_material_library_loads_and_says_so(tmp_path: Path, caplog) -> None:
    path = _box(tmp_path / "box.obj")
    path.write_text("mtllib nowhere.mtl\n" + path.read_text())
    with caplog.at_level("WARNING", logger="gencritic"):
        assert load_asset(path).num_faces == 12
    assert "nowhere.mtl" in caplog.text


def test_gltf_missing_base_colour_image_fails_but_unused_image_does_not(tmp_path: Path) -> None:
    from tests.test_render import textured_cube

    files = trimesh.exchange.gltf.export_gltf(trimesh.Scene([textured_cube()]), embed_buffers=False)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    doc = json.loads((tmp_path / "model.gltf").read_text())
    image_uri = "base colour.png"  # the texture as a file of its own, by URI
    textured_cube().visual.material.baseColorTexture.save(tmp_path / image_uri)
    doc["images"][0] = {"uri": "base%20colour.png"}
    (tmp_path / "model.gltf").write_text(json.dumps(doc))
    assert load_asset(tmp_path / "model.gltf").primitives[0].texture is not None
    # an extra image nobody uses as base colour may be absent
    doc["images"].append({"uri": "unused%20normal.png"})
    (tmp_path / "model.gltf").write_text(json.dumps(doc))
    load_asset(tmp_path / "model.gltf")
    (tmp_path / image_uri).unlink()
    with pytest.raises(ItemError, match=f"needs image {image_uri}"):
        load_asset(tmp_path / "model.gltf")


def test_obj_texture_that_cannot_be_decoded_fails(tmp_path: Path) -> None:
    path = _textured_obj(tmp_path / "c", "skin.png")
    (path.parent / "skin.png").write_bytes(b"not an image")
    with pytest.raises(ItemError, match=r"texture skin\.png (of material \S+ )?could not be"):
        load_asset(path)


def test_other_3d_formats_fail_with_how_to_convert(tmp_path: Path) -> None:
    from gencritic.items import kind_for_path

    path = tmp_path / "toy.fbx"
    path.write_bytes(b"Kaydara FBX Binary  \0")
    assert kind_for_path(path) == "mesh"  # not mistaken for an undecodable image
    with pytest.raises(ItemError, match=r"does not read \.fbx files.*File > Export > glTF 2\.0"):
        load_asset(path)


def test_gltf_base_colour_factor_is_linear(tmp_path: Path) -> None:
    box = trimesh.creation.box()
    box.visual = trimesh.visual.TextureVisuals(
        material=trimesh.visual.material.PBRMaterial(baseColorFactor=[128, 51, 13, 255]))
    path = tmp_path / "f.glb"
    trimesh.Scene([box]).export(path)
    colour = load_asset(path).primitives[0].colors[0]
    np.testing.assert_allclose(colour, [_srgb(128 / 255), _srgb(51 / 255), _srgb(13 / 255), 1.0], rtol=1e-6)


def test_gltf_base_colour_factor_keeps_its_float_precision(tmp_path: Path) -> None:
    """trimesh keeps the linear factor as a byte: sRGB 40 (linear 0.0212) came back as 38, and
    near black a colour moved by 3 levels. The file's floats are used instead."""
    from tests.test_render import join_glb, split_glb

    linear = [_linear(v / 255) for v in (40, 12, 200)]
    boxes = []
    for name, offset in (("dark", 0.0), ("dark", 3.0)):  # two materials of one name, same factor
        box = trimesh.creation.box()
        box.apply_translation([offset, 0, 0])
        box.visual = trimesh.visual.TextureVisuals(material=trimesh.visual.material.PBRMaterial(
            name=name, baseColorFactor=[*linear, 1.0]))
        boxes.append(box)
    doc, binary = split_glb(trimesh.Scene(boxes).export(file_type="glb"))
    for material in doc["materials"]:
        material["pbrMetallicRoughness"]["baseColorFactor"] = [*linear, 1.0]  # trimesh wrote bytes/255
    path = tmp_path / "dark.glb"
    path.write_bytes(join_glb(doc, binary))
    for prim in load_asset(path).primitives:
        np.testing.assert_allclose(prim.colors[0][:3] * 255, [40, 12, 200], atol=1e-3)


@pytest.mark.parametrize("header", ["# Blender 4.2.1 MTL File: 'None'\n# www.blender.org\n",
                                    "# Blender MTL File: 'None'\n# Material Count: 1\n", "# made by hand\n", ""])
def test_mtl_kd_is_linear_when_blender_wrote_it(tmp_path: Path, header: str) -> None:
    box = trimesh.creation.box()
    lines = [f"v {x} {y} {z}" for x, y, z in box.vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]
    (tmp_path / "m.obj").write_text("mtllib m.mtl\nusemtl paint\n" + "\n".join(lines) + "\n")
    (tmp_path / "m.mtl").write_text(header + "newmtl paint\nKd 0.2 0.5 0.8\n")
    colour = load_asset(tmp_path / "m.obj").primitives[0].colors[0][:3]
    expected = [_srgb(0.2), _srgb(0.5), _srgb(0.8)] if "Blender" in header else [0.2, 0.5, 0.8]
    np.testing.assert_allclose(colour, expected, atol=1 / 255)  # trimesh keeps Kd as bytes


def test_ply_texture_file_is_hashed_and_must_be_there(tmp_path: Path) -> None:
    from tests.test_render import _atlas, textured_cube

    _atlas()[0].save(tmp_path / "skin.png")
    text = trimesh.exchange.ply.export_ply(textured_cube(), encoding="ascii").decode()
    path = tmp_path / "cube.ply"
    path.write_text(text.replace("format ascii 1.0\n", "format ascii 1.0\ncomment TextureFile skin.png\n", 1))
    assert load_asset(path).primitives[0].texture is not None
    before = asset_sha256(path)
    _atlas()[0].transpose(0).save(tmp_path / "skin.png")  # another picture: another render
    assert asset_sha256(path) != before
    (tmp_path / "skin.png").unlink()
    with pytest.raises(ItemError, match=r"needs texture skin\.png \(TextureFile in its header\)"):
        load_asset(path)


def test_obj_with_one_of_two_textures_undecodable_fails(tmp_path: Path) -> None:
    from PIL import Image

    verts, uvs, faces = [], [], []
    for part, x0 in (("red", 0.0), ("blue", 2.0)):
        base = len(verts)
        verts += [(x0, 0, 0), (x0 + 1, 0, 0), (x0 + 1, 1, 0), (x0, 1, 0)]
        uvs += [(0, 0), (1, 0), (1, 1), (0, 1)]
        faces.append((part, [base + 1, base + 2, base + 3, base + 4]))
    lines = ["mtllib two.mtl"] + [f"v {x} {y} {z}" for x, y, z in verts] + [f"vt {u} {v}" for u, v in uvs]
    for part, idx in faces:
        lines += [f"usemtl {part}", "f " + " ".join(f"{i}/{i}" for i in idx)]
    (tmp_path / "two.obj").write_text("\n".join(lines) + "\n")
    (tmp_path / "two.mtl").write_text("newmtl red\nKd 1 1 1\nmap_Kd red.png\nnewmtl blue\nKd 1 1 1\nmap_Kd blue.png\n")
    Image.new("RGB", (4, 4), (255, 0, 0)).save(tmp_path / "red.png")
    Image.new("RGB", (4, 4), (0, 0, 255)).save(tmp_path / "blue.png")
    data = load_asset(tmp_path / "two.obj")
    assert len(data.primitives) == 2 and all(p.texture is not None for p in data.primitives)
    (tmp_path / "blue.png").write_bytes(b"not a png")
    with pytest.raises(ItemError, match=r"texture blue\.png of material blue could not be read"):
        load_asset(tmp_path / "two.obj")


def test_missing_material_library_is_said_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Said when the asset is hashed (in the parent: loader processes stay quiet), once per file."""
    import logging

    from gencritic.render.api import render_asset

    box = trimesh.creation.box()
    lines = [f"v {x} {y} {z}" for x, y, z in box.vertices] + [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in box.faces]
    path = tmp_path / "plain.obj"
    path.write_text("mtllib gone.mtl\n" + "\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="gencritic.mesh.sidefiles"):
        for _ in range(2):
            render_asset(path, {"resolution": 32, "cache": False})
    said = [r.getMessage() for r in caplog.records if "gone.mtl" in r.getMessage()]
    assert said == ["plain.obj refers to material library gone.mtl, which is not beside it: drawn untextured, "
                    "in the default colour"]
