"""glTF features drawn as the files mean them, checked on pixels of small files written here.

Each file is a few primitives in the XY plane at z = 0, facing +Z, built accessor by accessor
(:class:`Gltf`), and rendered with ``normalize=none`` from the ``six`` rig's front camera (yaw 0,
pitch 0, radius 2, FoV 40°), so a world point (x, y, 0) lands on pixel
``(res/2 + x·f/2, res/2 − y·f/2)`` with ``f = (res/2) / tan 20°`` and areas scale by ``(f/2)²``:
every expected position and area below is computed from the geometry, not read off a render.
"""

from __future__ import annotations

import io
import json
import math
import struct
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from gencritic.errors import ItemError
from gencritic.mesh import load_asset
from gencritic.mesh.fidelity import asset_warnings
from gencritic.render.api import render_asset

RES = 256
SCALE = (RES / 2) / math.tan(math.radians(20.0)) / 2.0  # pixels per world unit at z = 0, camera at distance 2
# black: the files' default material is white, and a white object on white is a uniform (refused) view
OPTIONS = {"cache": False, "rig": "six", "resolution": RES, "normalize": "none", "lighting": "flat",
           "background": "black"}
WHITE = np.array([255, 255, 255])
BLACK = np.array([0, 0, 0])


class Gltf:
    """A glTF document and its binary chunk, written accessor by accessor (independently of the
    loader: the layout is the specification's)."""

    def __init__(self) -> None:
        self.doc: dict[str, Any] = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": []}],
                                    "nodes": [], "meshes": [], "accessors": [], "bufferViews": [],
                                    "buffers": [{"byteLength": 0}]}
        self.blob = bytearray()

    def view(self, data: bytes) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.doc["bufferViews"].append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob.extend(data)
        return len(self.doc["bufferViews"]) - 1

    def accessor(self, values: Any, component: int = 5126, normalized: bool = False) -> int:
        arr = np.asarray(values)
        arr = arr.reshape(len(arr), -1)
        dtype = {5126: "<f4", 5125: "<u4", 5123: "<u2", 5121: "<u1"}[component]
        acc: dict[str, Any] = {"bufferView": self.view(arr.astype(dtype).tobytes()), "componentType": component,
                               "count": len(arr), "type": {1: "SCALAR", 2: "VEC2", 3: "VEC3", 4: "VEC4",
                                                           16: "MAT4"}[arr.shape[1]]}
        if normalized:
            acc["normalized"] = True
        if component == 5126 and arr.shape[1] == 3:
            acc["min"], acc["max"] = arr.min(axis=0).tolist(), arr.max(axis=0).tolist()
        self.doc["accessors"].append(acc)
        return len(self.doc["accessors"]) - 1

    def texture(self, rgba: np.ndarray, sampler: dict[str, Any] | None = None) -> int:
        png = io.BytesIO()
        Image.fromarray(rgba.astype(np.uint8), "RGBA").save(png, format="PNG")
        self.doc.setdefault("images", []).append({"bufferView": self.view(png.getvalue()), "mimeType": "image/png"})
        texture: dict[str, Any] = {"source": len(self.doc["images"]) - 1}
        if sampler is not None:
            self.doc.setdefault("samplers", []).append(sampler)
            texture["sampler"] = len(self.doc["samplers"]) - 1
        self.doc.setdefault("textures", []).append(texture)
        return len(self.doc["textures"]) - 1

    def material(self, **fields: Any) -> int:
        self.doc.setdefault("materials", []).append(fields)
        return len(self.doc["materials"]) - 1

    def mesh(self, *primitives: dict[str, Any], **fields: Any) -> int:
        self.doc["meshes"].append({"primitives": list(primitives), **fields})
        return len(self.doc["meshes"]) - 1

    def node(self, root: bool = True, **fields: Any) -> int:
        self.doc["nodes"].append(fields)
        index = len(self.doc["nodes"]) - 1
        if root:
            self.doc["scenes"][0]["nodes"].append(index)
        return index

    def use(self, *extensions: str) -> None:
        self.doc["extensionsUsed"] = sorted({*self.doc.get("extensionsUsed", []), *extensions})

    def write(self, path: Path) -> Path:
        self.doc["buffers"][0]["byteLength"] = len(self.blob)
        text = json.dumps(self.doc).encode()
        text += b" " * (-len(text) % 4)
        binary = bytes(self.blob) + b"\0" * (-len(self.blob) % 4)
        body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
        path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body)
        return path


def quad(g: Gltf, x0: float, y0: float, x1: float, y1: float, z: float = 0.0, uv: bool = True,
         material: int | None = None) -> dict[str, Any]:
    """A primitive: the rectangle [x0, x1] × [y0, y1] at depth z, facing +Z; uv (0, 0) at its top left."""
    positions = [[x0, y1, z], [x1, y1, z], [x1, y0, z], [x0, y0, z]]
    prim: dict[str, Any] = {"attributes": {"POSITION": g.accessor(positions)},
                            "indices": g.accessor([0, 3, 2, 0, 2, 1], component=5125)}
    if uv:
        prim["attributes"]["TEXCOORD_0"] = g.accessor([[0, 0], [1, 0], [1, 1], [0, 1]])
    if material is not None:
        prim["material"] = material
    return prim


def front(path: Path, **options: Any) -> np.ndarray:
    """The front view's RGB pixels (int)."""
    view = render_asset(path, {**OPTIONS, **options}).views[0]
    assert view.image is not None, view.error
    return np.asarray(view.image.rgb).astype(int)


def pixel(x: float, y: float) -> tuple[int, int]:
    """(row, column) of the world point (x, y, 0) in the front view."""
    return int(RES / 2 - y * SCALE), int(RES / 2 + x * SCALE)


def object_mask(rgb: np.ndarray, background: np.ndarray = BLACK) -> np.ndarray:
    return np.any(rgb != background, axis=2)


# ------------------------------------------------------------------------------------------------
# KHR_texture_transform


@pytest.mark.parametrize(("transform", "expected"), [
    # u' = u/2 + 1/4, v' = v/2: the marker's texels u' in [0.5, 0.75), v' in [0, 0.25) show at
    # u in [0.5, 1), v in [0, 0.5): the quad's top-right quarter
    ({"offset": [0.25, 0.0], "scale": [0.5, 0.5]}, (0.0, 0.5, 0.0, 0.5)),
    # rotation pi/2: u' = v, v' = -u (mod 1, repeated): u' in [0.5, 0.75) -> v in [0.5, 0.75);
    # v' in [0, 0.25) -> u in (0.75, 1]: x in [0.25, 0.5], y in [-0.25, 0]
    ({"rotation": math.pi / 2}, (0.25, 0.5, -0.25, 0.0)),
])
def test_texture_transform_moves_a_marker_to_a_known_place(tmp_path: Path, transform: dict,
                                                           expected: tuple[float, float, float, float]) -> None:
    size = 64
    rgba = np.full((size, size, 4), 255, np.uint8)
    rgba[: size // 4, size // 2: 3 * size // 4, :3] = (220, 20, 20)  # marker: u in [0.5, 0.75), v in [0, 0.25)
    g = Gltf()
    g.use("KHR_texture_transform")
    mat = g.material(pbrMetallicRoughness={"baseColorTexture": {
        "index": g.texture(rgba), "extensions": {"KHR_texture_transform": transform}}})
    g.node(mesh=g.mesh(quad(g, -0.5, -0.5, 0.5, 0.5, material=mat)))
    rgb = front(g.write(tmp_path / "tt.glb"))
    red = (rgb[..., 0] > 150) & (rgb[..., 1] < 100)
    rows, cols = np.nonzero(red)
    x0, x1, y0, y1 = expected
    (top, left), (bottom, right) = pixel(x0, y1), pixel(x1, y0)
    assert red.sum() > 0.8 * (right - left) * (bottom - top)
    assert abs(cols.min() - left) <= 3 and abs(cols.max() - right) <= 3
    assert abs(rows.min() - top) <= 3 and abs(rows.max() - bottom) <= 3


def test_gltfpack_style_quantized_coordinates_are_dequantized_by_the_transform(tmp_path: Path) -> None:
    """gltfpack stores uvs as normalized uint16 and scales them back with KHR_texture_transform."""
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:, :4, 0] = 255  # left half red, right half blue
    rgba[:, 4:, 2] = 255
    g = Gltf()
    g.use("KHR_texture_transform", "KHR_mesh_quantization")
    mat = g.material(pbrMetallicRoughness={"baseColorTexture": {
        "index": g.texture(rgba), "extensions": {"KHR_texture_transform": {"scale": [65535 / 1000, 1.0]}}}})
    prim = quad(g, -0.5, -0.5, 0.5, 0.5, uv=False, material=mat)
    # u stored as 0..1000 of 65535: the transform's scale maps it back to 0..1
    prim["attributes"]["TEXCOORD_0"] = g.accessor(np.array([[0, 0], [1000, 0], [1000, 65535], [0, 65535]]),
                                                  component=5123, normalized=True)
    g.node(mesh=g.mesh(prim))
    rgb = front(g.write(tmp_path / "q.glb"))
    row, left = pixel(-0.3, 0.0)
    _, right = pixel(0.3, 0.0)
    assert rgb[row, left, 0] > 200 and rgb[row, left, 2] < 50
    assert rgb[row, right, 2] > 200 and rgb[row, right, 0] < 50


# ------------------------------------------------------------------------------------------------
# morph targets


def test_morph_target_default_weight_changes_the_silhouette_by_its_area(tmp_path: Path) -> None:
    # base triangle area 0.8 * 0.6 / 2 = 0.24; the target lifts the apex by 0.4, weight 0.5 -> +0.2:
    # area 0.8 * 0.8 / 2 = 0.32
    def triangle(weights: list[float] | None) -> Path:
        g = Gltf()
        prim = {"attributes": {"POSITION": g.accessor([[-0.4, -0.4, 0], [0.4, -0.4, 0], [-0.4, 0.2, 0]])},
                "targets": [{"POSITION": g.accessor([[0, 0, 0], [0, 0, 0], [0, 0.4, 0]])}]}
        g.node(mesh=g.mesh(prim, **({"weights": weights} if weights is not None else {})))
        return g.write(tmp_path / f"morph{weights}.glb")

    base = object_mask(front(triangle(None))).sum()
    morphed = object_mask(front(triangle([0.5]))).sum()
    assert base == pytest.approx(0.24 * SCALE ** 2, rel=0.03)
    assert morphed == pytest.approx(0.32 * SCALE ** 2, rel=0.03)


def test_node_weights_override_the_mesh_weights(tmp_path: Path) -> None:
    g = Gltf()
    prim = {"attributes": {"POSITION": g.accessor([[-0.4, -0.4, 0], [0.4, -0.4, 0], [-0.4, 0.2, 0]])},
            "targets": [{"POSITION": g.accessor([[0, 0, 0], [0, 0, 0], [0, 0.4, 0]])}]}
    g.node(mesh=g.mesh(prim, weights=[0.0]), weights=[1.0])  # apex at 0.6: area 0.8 * 1.0 / 2
    area = object_mask(front(g.write(tmp_path / "w.glb"))).sum()
    assert area == pytest.approx(0.4 * SCALE ** 2, rel=0.03)


# ------------------------------------------------------------------------------------------------
# skins


def test_two_skinned_nodes_sharing_one_mesh_are_drawn_in_two_places(tmp_path: Path) -> None:
    g = Gltf()
    prim = quad(g, -0.1, -0.1, 0.1, 0.1, uv=False)
    prim["attributes"]["JOINTS_0"] = g.accessor(np.zeros((4, 4)), component=5121)
    prim["attributes"]["WEIGHTS_0"] = g.accessor(np.tile([1.0, 0, 0, 0], (4, 1)))
    mesh = g.mesh(prim)
    left = g.node(translation=[-0.4, 0.2, 0])
    right = g.node(translation=[0.4, -0.2, 0])
    ibm = g.accessor(np.eye(4).T.reshape(1, 16))
    g.doc["skins"] = [{"joints": [left], "inverseBindMatrices": ibm}, {"joints": [right]}]
    # the skinned nodes' own transforms are ignored by the specification: (0, 5, 0) is off screen
    g.node(mesh=mesh, skin=0, translation=[0, 5, 0])
    g.node(mesh=mesh, skin=1, translation=[0, 5, 0])
    path = g.write(tmp_path / "skins.glb")
    mask = object_mask(front(path))
    for x, y in ((-0.4, 0.2), (0.4, -0.2)):
        row, col = pixel(x, y)
        half = int(0.1 * SCALE) - 2
        assert mask[row - half:row + half, col - half:col + half].all()
    assert mask.sum() == pytest.approx(2 * 0.04 * SCALE ** 2, rel=0.06)
    assert any(w.startswith("skin: ") and "2 skinned nodes" in w for w in asset_warnings(path))


# ------------------------------------------------------------------------------------------------
# alpha


def test_alpha_masked_quad_has_a_hole_where_alpha_is_below_the_cutoff(tmp_path: Path) -> None:
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[..., 3] = 255
    rgba[4:12, 4:12, 3] = 100  # 0.39 < cutoff 0.6: cut away
    g = Gltf()
    mat = g.material(alphaMode="MASK", alphaCutoff=0.6, pbrMetallicRoughness={"baseColorTexture": {"index": g.texture(
        rgba, {"magFilter": 9728, "minFilter": 9728})}})
    g.node(mesh=g.mesh(quad(g, -0.5, -0.5, 0.5, 0.5, material=mat)))
    rgb = front(g.write(tmp_path / "mask.glb"))
    assert (rgb[pixel(0.0, 0.0)] == BLACK).all()  # the hole shows the background
    assert (rgb[pixel(0.1, -0.1)] == BLACK).all()
    assert rgb[pixel(-0.4, 0.4)][1] > 150 and rgb[pixel(-0.4, 0.4)][0] < 50  # the frame is drawn
    hole = ~object_mask(rgb)[pixel(0.24, 0.24)[0]:pixel(0.24, -0.24)[0], pixel(-0.24, 0)[1]:pixel(0.24, 0)[1]]
    assert hole.mean() > 0.97


def test_blended_quads_are_composited_far_to_near_whatever_the_file_order(tmp_path: Path) -> None:
    for order in ("near-first", "far-first"):
        g = Gltf()
        red = g.material(alphaMode="BLEND", pbrMetallicRoughness={"baseColorFactor": [1, 0, 0, 0.5]})
        blue = g.material(alphaMode="BLEND", pbrMetallicRoughness={"baseColorFactor": [0, 0, 1, 0.5]})
        far = quad(g, -0.4, -0.4, 0.2, 0.2, z=-0.2, uv=False, material=red)
        near = quad(g, -0.2, -0.2, 0.4, 0.4, z=0.0, uv=False, material=blue)
        g.node(mesh=g.mesh(*([near, far] if order == "near-first" else [far, near])))
        path = g.write(tmp_path / f"{order}.glb")
        rgb = front(path, background="white")
        # blue 0.5 over (red 0.5 over white (1, .5, .5)) = (0.5, 0.25, 0.75); the wrong order gives (.75, .25, .5)
        np.testing.assert_allclose(rgb[pixel(0.0, 0.0)], [0.5 * 255, 0.25 * 255, 0.75 * 255], atol=2)
        np.testing.assert_allclose(rgb[pixel(0.3, 0.3)], [127.5, 127.5, 255], atol=2)  # blue alone
        assert any(w.startswith("alpha-blend: ") for w in asset_warnings(path))


def test_unlit_material_shows_its_colour_under_the_default_light(tmp_path: Path) -> None:
    g = Gltf()
    g.use("KHR_materials_unlit")
    mat = g.material(extensions={"KHR_materials_unlit": {}}, pbrMetallicRoughness={"baseColorFactor": [0.2, 0.5, 1, 1]})
    g.node(mesh=g.mesh(quad(g, -0.5, -0.5, 0.5, 0.5, uv=False, material=mat)))
    rgb = front(g.write(tmp_path / "unlit.glb"), lighting="default")
    srgb = [round(255 * (1.055 * v ** (1 / 2.4) - 0.055)) for v in (0.2, 0.5, 1.0)]
    np.testing.assert_allclose(rgb[pixel(0.0, 0.0)], srgb, atol=1)
    np.testing.assert_allclose(rgb[pixel(0.3, -0.3)], srgb, atol=1)


# ------------------------------------------------------------------------------------------------
# primitive modes


def test_triangle_fan_area_matches_its_polygon(tmp_path: Path) -> None:
    r = 0.5
    angles = np.arange(6) * math.pi / 3
    hexagon = np.stack([r * np.cos(angles), r * np.sin(angles), np.zeros(6)], axis=1)
    for mode, order in ((6, [0, 1, 2, 3, 4, 5]), (5, [0, 1, 5, 2, 4, 3])):  # fan, and a strip of the same hexagon
        g = Gltf()
        g.node(mesh=g.mesh({"attributes": {"POSITION": g.accessor(hexagon[order])}, "mode": mode}))
        area = object_mask(front(g.write(tmp_path / f"mode{mode}.glb"))).sum()
        assert area == pytest.approx(3 * math.sqrt(3) / 2 * r * r * SCALE ** 2, rel=0.02)


def test_lines_are_drawn_visibly_and_named(tmp_path: Path) -> None:
    g = Gltf()
    square = [[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]]
    g.node(mesh=g.mesh({"attributes": {"POSITION": g.accessor(square)}, "mode": 2}))  # a white line loop
    path = g.write(tmp_path / "loop.glb")
    assert load_asset(path).primitives[0].mode == "lines"
    rgb = front(path, lighting="default", background="white")  # white lines show on white: lit as facing
    for x, y in ((0.0, 0.5), (0.5, 0.0), (0.0, -0.5), (-0.5, 0.0)):  # every side, the closing one too
        assert (rgb[pixel(x, y)] < 245).all()
    assert (rgb[pixel(0.0, 0.0)] == WHITE).all()
    assert any(w.startswith("lines: ") for w in asset_warnings(path))


# ------------------------------------------------------------------------------------------------
# decoders


def _meshopt_glb(tmp_path: Path, extension: str) -> tuple[Path, Path]:
    meshopt = pytest.importorskip("meshopt")
    positions = np.array([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], np.float32)
    indices = np.array([0, 1, 2, 0, 2, 3], np.uint32)
    plain, packed = Gltf(), Gltf()
    plain.node(mesh=plain.mesh({"attributes": {"POSITION": plain.accessor(positions)},
                                "indices": plain.accessor(indices, component=5125)}))
    pos_data = meshopt.encode_gltf_buffer(positions, "ATTRIBUTES")
    idx_data = meshopt.encode_gltf_buffer(indices, "TRIANGLES")
    packed.doc["buffers"].append({"byteLength": positions.nbytes + indices.nbytes,
                                  "extensions": {extension: {"fallback": True}}})
    for data, count, stride, mode, target in ((pos_data, 4, 12, "ATTRIBUTES", 34962), (idx_data, 6, 4, "TRIANGLES", 34963)):
        view = packed.view(bytes(data))
        source = dict(packed.doc["bufferViews"][view])
        packed.doc["bufferViews"][view] = {
            "buffer": 1, "byteOffset": 0, "byteLength": count * stride, "target": target,
            **({"byteStride": stride} if mode == "ATTRIBUTES" else {}),
            "extensions": {extension: {**source, "byteStride": stride, "mode": mode, "count": count}}}
        packed.doc["accessors"].append({"bufferView": view, "componentType": 5126 if mode == "ATTRIBUTES" else 5125,
                                        "count": count, "type": "VEC3" if mode == "ATTRIBUTES" else "SCALAR"})
    packed.node(mesh=packed.mesh({"attributes": {"POSITION": 0}, "indices": 1}))
    packed.doc["extensionsUsed"] = packed.doc["extensionsRequired"] = [extension]
    return plain.write(tmp_path / "plain.glb"), packed.write(tmp_path / "packed.glb")


@pytest.mark.parametrize("extension", ["EXT_meshopt_compression", "KHR_meshopt_compression"])
def test_meshopt_compressed_geometry_loads_as_the_plain_file(tmp_path: Path, extension: str) -> None:
    plain, packed = _meshopt_glb(tmp_path, extension)
    a, b = load_asset(plain).primitives[0], load_asset(packed).primitives[0]
    np.testing.assert_array_equal(a.positions, b.positions)
    np.testing.assert_array_equal(a.indices, b.indices)


def test_meshopt_without_its_decoder_is_refused_with_the_install_line(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, packed = _meshopt_glb(tmp_path, "EXT_meshopt_compression")
    monkeypatch.setitem(sys.modules, "meshopt", None)
    with pytest.raises(ItemError, match=r"meshopt-compressed.*gencritic\[render\].*gltf-transform/cli copy"):
        load_asset(packed)


def test_ktx2_texture_without_its_transcoder_is_refused_with_a_conversion(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    g = Gltf()
    g.use("KHR_texture_basisu")
    g.doc["images"] = [{"uri": "albedo.ktx2"}]
    g.doc["textures"] = [{"extensions": {"KHR_texture_basisu": {"source": 0}}}]
    mat = g.material(pbrMetallicRoughness={"baseColorTexture": {"index": 0}})
    g.node(mesh=g.mesh(quad(g, -0.5, -0.5, 0.5, 0.5, material=mat)))
    path = g.write(tmp_path / "k.glb")
    (tmp_path / "albedo.ktx2").write_bytes(b"\xabKTX 20\xbb\r\n\x1a\n")
    monkeypatch.setitem(sys.modules, "opengl_basisu", None)
    with pytest.raises(ItemError, match=r"KTX2/Basis.*opengl_basisu.*ktx extract --transcode rgba8"):
        load_asset(path)


def test_gpu_instances_are_each_drawn(tmp_path: Path) -> None:
    g = Gltf()
    g.use("EXT_mesh_gpu_instancing")
    mesh = g.mesh(quad(g, -0.05, -0.05, 0.05, 0.05, uv=False))
    offsets = g.accessor([[-0.4, 0, 0], [0, 0, 0], [0.4, 0, 0]])
    g.node(mesh=mesh, extensions={"EXT_mesh_gpu_instancing": {"attributes": {"TRANSLATION": offsets}}})
    mask = object_mask(front(g.write(tmp_path / "inst.glb")))
    for x in (-0.4, 0.0, 0.4):
        assert mask[pixel(x, 0.0)]
    assert mask.sum() == pytest.approx(3 * 0.01 * SCALE ** 2, rel=0.1)


def test_clamped_sampler_is_not_repeated(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 3] = 255
    rgba[:, :, 0] = 255
    rgba[:, 7, :3] = (0, 0, 255)  # a blue last column: clamped, it stretches right of u = 1
    for wrap, right_is_blue in ((33071, True), (10497, False)):
        g = Gltf()
        mat = g.material(pbrMetallicRoughness={"baseColorTexture": {"index": g.texture(
            rgba, {"wrapS": wrap, "magFilter": 9728, "minFilter": 9728})}})
        prim = quad(g, -0.5, -0.5, 0.5, 0.5, material=mat)
        g.doc["accessors"][prim["attributes"]["TEXCOORD_0"]] = g.doc["accessors"][g.accessor(
            [[0, 0], [2, 0], [2, 1], [0, 1]])]  # u from 0 to 2
        g.node(mesh=g.mesh(prim))
        rgb = front(g.write(tmp_path / f"wrap{wrap}.glb"))
        blue = rgb[pixel(0.3, 0.0)]
        assert (blue[2] > 200 and blue[0] < 50) == right_is_blue
