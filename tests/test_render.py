"""Pixel checks of the renderer against geometry computed by hand.

Every mesh is built here with known colours and positions; expected pixels come from the
pinhole model (f = (res/2) / tan(fov/2)), not from the renderer.
"""

from __future__ import annotations

import json
import math
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from gencritic.errors import InputError, ItemError
from gencritic.io.resize import MARGIN_KEY
from gencritic.render.api import render_asset, render_asset_views, write_views
from gencritic.render.cameras import make_rig
from gencritic.render.compose import composite, unpremultiply, view_problem
from gencritic.render.settings import parse_render_options
from tests.conftest import MESHES_WITHOUT_THEIR_MTL, shared_data

FACE_COLOURS = {  # cube face normal -> colour of its texture cell
    (0, 0, 1): (230, 30, 30), (1, 0, 0): (30, 200, 40), (0, 1, 0): (40, 60, 230),
    (0, 0, -1): (240, 220, 20), (-1, 0, 0): (200, 40, 200), (0, -1, 0): (20, 210, 210),
}
CELL = 64


def _atlas() -> tuple[Image.Image, dict[tuple[int, int, int], tuple[int, int]]]:
    img = np.zeros((2 * CELL, 3 * CELL, 3), np.uint8)
    cells = {}
    for k, (normal, colour) in enumerate(FACE_COLOURS.items()):
        col, row = k % 3, k // 3
        img[row * CELL:(row + 1) * CELL, col * CELL:(col + 1) * CELL] = colour
        cells[normal] = (col, row)
    return Image.fromarray(img, "RGB"), cells


def textured_cube() -> trimesh.Trimesh:
    """Unit cube (side 1, centred) whose each face samples the centre of its own texture cell."""
    image, cells = _atlas()
    vertices, faces, uvs = [], [], []
    for normal, (col, row) in cells.items():
        n = np.array(normal, float)
        a = np.array([n[1], n[2], n[0]]) if n[0] == 0 else np.array([0.0, 1.0, 0.0])
        u_axis = np.cross(a, n)
        u_axis /= np.linalg.norm(u_axis)
        v_axis = np.cross(n, u_axis)
        base = len(vertices)
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            vertices.append(0.5 * n + 0.5 * su * u_axis + 0.5 * sv * v_axis)
            inset = 8 / CELL  # stay inside the cell, away from neighbours
            u = (col + 0.5 + su * (0.5 - inset)) / 3
            v_img = (row + 0.5 - sv * (0.5 - inset)) / 2  # image rows grow downward
            uvs.append((u, 1.0 - v_img))  # trimesh/OBJ uv: v=0 at the image bottom
        faces += [[base, base + 1, base + 2], [base, base + 2, base + 3]]
    material = trimesh.visual.material.PBRMaterial(baseColorTexture=image)
    visual = trimesh.visual.TextureVisuals(uv=np.array(uvs), material=material)
    return trimesh.Trimesh(np.array(vertices), np.array(faces), visual=visual, process=False)


def coloured_sphere(radius: float = 0.5, center=(0.0, 0.0, 0.0), subdivisions: int = 4) -> trimesh.Trimesh:
    sphere = trimesh.creation.icosphere(subdivisions=subdivisions, radius=radius)
    top = sphere.vertices[:, 1] >= 0
    colours = np.where(top[:, None], [255, 0, 0, 255], [0, 0, 255, 255]).astype(np.uint8)
    sphere.visual = trimesh.visual.ColorVisuals(sphere, vertex_colors=colours)
    sphere.apply_translation(center)
    return sphere


def split_glb(data: bytes) -> tuple[dict, bytes]:
    """(JSON, binary chunk) of a GLB, read by the spec's layout (independent of gencritic's reader)."""
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + json_len])
    bin_len = struct.unpack_from("<I", data, 20 + json_len)[0]
    return doc, data[28 + json_len:28 + json_len + bin_len]


def join_glb(doc: dict, binary: bytes) -> bytes:
    text = json.dumps(doc).encode()
    text += b" " * (-len(text) % 4)
    binary += b"\0" * (-len(binary) % 4)
    body = struct.pack("<I4s", len(text), b"JSON") + text + struct.pack("<I4s", len(binary), b"BIN\0") + binary
    return b"glTF" + struct.pack("<II", 2, 12 + len(body)) + body


def quantize_glb(data: bytes) -> bytes:
    """Encode a float GLB's positions, normals and texture coordinates as KHR_mesh_quantization
    does: normalized int16 (positions, padded to a 4-byte stride), int8 (normals), uint16 (uvs)."""
    doc, binary = split_glb(data)
    blob = bytearray(binary)
    plan = {"POSITION": (5122, np.int16, 32767, 4), "NORMAL": (5120, np.int8, 127, 4),
            "TEXCOORD_0": (5123, np.uint16, 65535, 2)}  # component type, dtype, scale, padded width
    for mesh in doc["meshes"]:
        for prim in mesh["primitives"]:
            for semantic, index in prim["attributes"].items():
                if semantic not in plan:
                    continue
                acc = doc["accessors"][index]
                view = doc["bufferViews"][acc["bufferView"]]
                width = {"VEC2": 2, "VEC3": 3}[acc["type"]]
                start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
                floats = np.frombuffer(binary, "<f4", acc["count"] * width, start).reshape(-1, width)
                ctype, dtype, scale, padded = plan[semantic]
                ints = np.zeros((len(floats), padded), dtype)
                ints[:, :width] = np.round(np.clip(floats, -1 if scale != 65535 else 0, 1) * scale)
                blob += b"\0" * (-len(blob) % 4)
                doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": ints.nbytes,
                                           "byteStride": ints.itemsize * padded})
                blob += ints.tobytes()
                acc.update(bufferView=len(doc["bufferViews"]) - 1, byteOffset=0, componentType=ctype, normalized=True)
                acc.pop("min", None), acc.pop("max", None)
    doc["buffers"][0]["byteLength"] = len(blob)
    doc["extensionsUsed"] = [*doc.get("extensionsUsed", []), "KHR_mesh_quantization"]
    doc["extensionsRequired"] = [*doc.get("extensionsRequired", []), "KHR_mesh_quantization"]
    return join_glb(doc, bytes(blob))


def sparsify_glb(data: bytes, count: int = 6) -> bytes:
    """Move the first ``count`` positions of a GLB into a sparse substitution over a base view
    where they are zeros (valid glTF; a reader that ignores ``sparse`` collapses those corners)."""
    doc, binary = split_glb(data)
    blob = bytearray(binary)
    for mesh in doc["meshes"]:
        for prim in mesh["primitives"]:
            acc = doc["accessors"][prim["attributes"]["POSITION"]]
            view = doc["bufferViews"][acc["bufferView"]]
            start = view.get("byteOffset", 0) + acc.get("byteOffset", 0)
            positions = np.frombuffer(binary, "<f4", acc["count"] * 3, start).reshape(-1, 3).copy()
            real = positions[:count].copy()
            positions[:count] = 0.0

            def append(array: np.ndarray) -> int:
                blob.extend(b"\0" * (-len(blob) % 4))
                doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": array.nbytes})
                blob.extend(array.tobytes())
                return len(doc["bufferViews"]) - 1

            acc.update(bufferView=append(positions), byteOffset=0)
            acc["sparse"] = {"count": count,
                             "indices": {"bufferView": append(np.arange(count, dtype="<u2")), "componentType": 5123},
                             "values": {"bufferView": append(real.astype("<f4"))}}
    doc["buffers"][0]["byteLength"] = len(blob)
    return join_glb(doc, bytes(blob))


def second_uv_set_glb(data: bytes) -> bytes:
    """The same cube with its real uvs as TEXCOORD_1 (the material says ``texCoord: 1``) and a
    decoy TEXCOORD_0 that maps every corner to one texel of one face's colour."""
    doc, binary = split_glb(data)
    blob = bytearray(binary)
    for mesh in doc["meshes"]:
        for prim in mesh["primitives"]:
            real = prim["attributes"]["TEXCOORD_0"]
            decoy = np.full((doc["accessors"][real]["count"], 2), 0.1, "<f4")
            blob.extend(b"\0" * (-len(blob) % 4))
            doc["bufferViews"].append({"buffer": 0, "byteOffset": len(blob), "byteLength": decoy.nbytes})
            blob.extend(decoy.tobytes())
            doc["accessors"].append({"bufferView": len(doc["bufferViews"]) - 1, "componentType": 5126,
                                     "count": len(decoy), "type": "VEC2"})
            prim["attributes"]["TEXCOORD_1"] = real
            prim["attributes"]["TEXCOORD_0"] = len(doc["accessors"]) - 1
    for material in doc["materials"]:
        material["pbrMetallicRoughness"]["baseColorTexture"]["texCoord"] = 1
    doc["buffers"][0]["byteLength"] = len(blob)
    return join_glb(doc, bytes(blob))


def focal(res: int, fov: float = 40.0) -> float:
    return (res / 2) / math.tan(math.radians(fov) / 2)


FLAT = {"lighting": "flat", "cache": False}


@pytest.fixture(scope="module")
def cube_glb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cube") / "cube.glb"
    textured_cube().export(path)
    return path


@pytest.fixture(scope="module")
def sphere_ply(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sphere") / "sphere.ply"
    coloured_sphere().export(path)
    return path


# ------------------------------------------------------------------------------------------------
# textures and conventions


@pytest.mark.parametrize("fmt", ["glb", "obj", "gltf", "glb-quantized", "gltf-quantized", "glb-draco", "glb-sparse",
                                 "glb-texcoord1", "ply"])
def test_cube_face_shows_its_texture_colour_where_geometry_says(tmp_path: Path, cube_glb: Path, fmt: str) -> None:
    path = cube_glb
    if fmt == "ply":  # uvs per vertex and Meshlab's `comment TextureFile` naming the image beside it
        image, _ = _atlas()
        image.save(tmp_path / "atlas skin.png")
        text = trimesh.exchange.ply.export_ply(textured_cube(), encoding="ascii").decode()
        path = tmp_path / "cube.ply"
        path.write_text(text.replace("format ascii 1.0\n", "format ascii 1.0\ncomment TextureFile atlas skin.png\n", 1))
    if fmt == "glb-texcoord1":  # the base colour sampled with the second uv set
        path = tmp_path / "cube-uv1.glb"
        path.write_bytes(second_uv_set_glb(cube_glb.read_bytes()))
    if fmt == "glb-sparse":  # positions partly given as a sparse substitution
        path = tmp_path / "cube-sparse.glb"
        path.write_bytes(sparsify_glb(cube_glb.read_bytes()))
    if fmt == "glb-quantized":  # KHR_mesh_quantization: normalized 8/16-bit attributes, strided
        path = tmp_path / "cube-quantized.glb"
        path.write_bytes(quantize_glb(cube_glb.read_bytes()))
    if fmt == "gltf-quantized":  # the same as .gltf JSON + external .bin
        doc, binary = split_glb(quantize_glb(cube_glb.read_bytes()))
        doc["buffers"][0]["uri"] = "cube.bin"
        (tmp_path / "cube.bin").write_bytes(binary)
        path = tmp_path / "cube.gltf"
        path.write_text(json.dumps(doc))
    if fmt == "glb-draco":  # KHR_draco_mesh_compression, decoded through DracoPy
        pytest.importorskip("DracoPy")
        path = tmp_path / "cube-draco.glb"
        path.write_bytes(trimesh.exchange.gltf.export_glb(trimesh.Scene([textured_cube()]), extension_draco=True))
        assert b"KHR_draco_mesh_compression" in path.read_bytes()[:4000]
    if fmt == "obj":  # OBJ + MTL + PNG written by trimesh: the other texture path
        path = tmp_path / "cube.obj"
        textured_cube().export(path)
        assert (tmp_path / "material.mtl").exists() or list(tmp_path.glob("*.mtl"))
    if fmt == "gltf":  # .gltf JSON with external .bin buffer and .png texture files
        files = trimesh.exchange.gltf.export_gltf(trimesh.Scene([textured_cube()]), embed_buffers=False)
        for name, data in files.items():
            (tmp_path / name).write_bytes(data)
        path = tmp_path / "model.gltf"
        assert len(files) >= 2 and path.exists()
    res = 128
    views = render_asset(path, {**FLAT, "rig": "six", "normalize": "none", "resolution": res}).views
    f = focal(res)
    half = f * 0.5 / 1.5  # front face (z = 0.5) seen from distance 2: depth 1.5
    lo, hi = res / 2 - half, res / 2 + half
    expected = {0: (0, 0, 1), 1: (1, 0, 0), 2: (0, 0, -1), 3: (-1, 0, 0), 4: (0, 1, 0), 5: (0, -1, 0)}
    for index, normal in expected.items():
        rgb = np.asarray(views[index].image.rgb)
        inside = rgb[math.ceil(lo) + 1:math.floor(hi) - 1, math.ceil(lo) + 1:math.floor(hi) - 1]
        assert (inside == FACE_COLOURS[normal]).all(), (index, normal, np.unique(inside.reshape(-1, 3), axis=0)[:5])
        alpha = views[index].image.alpha
        assert alpha[:, : math.floor(lo) - 1].max() == 0 and alpha[:, math.ceil(hi) + 1:].max() == 0
        assert rgb[:, : math.floor(lo) - 1].min() == 255  # white background outside the face


def test_yaw_90_views_the_plus_x_side(tmp_path: Path) -> None:
    body = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
    body.visual.face_colors = [200, 200, 200, 255]
    marker = trimesh.creation.box(extents=(0.2, 0.2, 0.2))  # built at the origin...
    marker.visual.face_colors = [255, 0, 0, 255]
    scene = trimesh.Scene()
    scene.add_geometry(body, node_name="body")
    # ...and placed on the +X side by its scene-graph node (a rotation too, harmless for a cube)
    node = trimesh.transformations.translation_matrix([0.6, 0.0, 0.0]) @ trimesh.transformations.rotation_matrix(
        math.pi / 2, [0, 1, 0])
    scene.add_geometry(marker, node_name="marker", transform=node)
    path = tmp_path / "marker.glb"
    scene.export(path)
    res = 128
    views = render_asset(path, {**FLAT, "rig": "orbit4", "pitch": 0.0, "normalize": "none", "resolution": res}).views
    centre = res // 2
    red = [np.all(np.asarray(v.image.rgb) == (255, 0, 0), axis=-1) for v in views]
    assert red[1][centre, centre]  # yaw 90: the camera on +X sees the marker head-on
    assert red[1].sum() > 100
    assert red[3].sum() == 0  # yaw 270 (camera on -X): hidden behind the body
    # yaw 0 (camera on +Z): +X is the image's right, so the marker sticks out on the right
    cols = np.nonzero(red[0].any(axis=0))[0]
    assert cols.min() > centre
    # and the camera JSON projects a point of the marker's front face (0.68, 0, 0.1), visible past
    # the body's corner, onto the red pixels
    cam = make_rig("orbit4", pitch_deg=0.0)[0].to_json(res, res)
    p = np.asarray(cam["w2c_opencv"]) @ np.array([0.68, 0.0, 0.1, 1.0])
    uv = np.asarray(cam["K"]) @ (p[:3] / p[2])
    assert red[0][int(uv[1]), int(uv[0])]


def test_unit_sphere_silhouette_matches_analytic_projection(sphere_ply: Path) -> None:
    res = 256
    for d, radius in ((2.0, 0.5), (3.0, 0.5)):
        r = render_asset(sphere_ply, {**FLAT, "normalize": "none", "resolution": res, "radius": d})
        alpha_px = np.array([float((v.image.alpha > 0.5).sum()) for v in r.views])
        rad_px = focal(res) * math.tan(math.asin(radius / d))
        expected = math.pi * rad_px**2
        np.testing.assert_allclose(alpha_px, expected, rtol=0.02)
    # the TRELLIS frame: bbox-normalised sphere (diameter 1) at radius 2 is the same picture
    r2 = render_asset(sphere_ply, {**FLAT, "resolution": res})
    rad_px = focal(res) * math.tan(math.asin(0.5 / 2.0))
    area = (r2.views[0].image.alpha > 0.5).sum()
    assert area == pytest.approx(math.pi * rad_px**2, rel=0.02)


def test_vertex_colours_render_exactly_in_flat_mode(sphere_ply: Path) -> None:
    res = 128
    v = render_asset(sphere_ply, {**FLAT, "rig": "orbit1", "pitch": 0.0, "normalize": "none", "resolution": res}).views[0]
    rgb = np.asarray(v.image.rgb)
    assert tuple(rgb[res // 2 - 20, res // 2]) == (255, 0, 0)  # upper half red
    assert tuple(rgb[res // 2 + 20, res // 2]) == (0, 0, 255)  # lower half blue


@pytest.mark.parametrize("background", [(255, 255, 255), (0, 0, 0), (12, 200, 99)])
def test_background_exact_outside_silhouette(sphere_ply: Path, background: tuple[int, int, int]) -> None:
    res = 128
    r = render_asset(sphere_ply, {"background": background, "resolution": res, "cache": False})
    rad_px = focal(res) * math.tan(math.asin(0.5 / 2.0))
    yy, xx = np.mgrid[0:res, 0:res] + 0.5
    outside = np.hypot(xx - res / 2, yy - res / 2) > rad_px + 1.5  # analytic disc + a pixel margin
    for view in r.views:
        rgb, alpha = np.asarray(view.image.rgb), view.image.alpha
        assert (alpha[outside] == 0).all()
        assert (rgb[outside] == background).all()
        assert (rgb[alpha == 0] == background).all()
        assert (alpha > 0).sum() > 0.9 * math.pi * rad_px**2


def test_transparent_output_has_zero_alpha_outside(tmp_path: Path, sphere_ply: Path) -> None:
    r = render_asset(sphere_ply, {"resolution": 64, "cache": False})
    write_views(r, tmp_path / "v", transparent=True)
    img = np.asarray(Image.open(tmp_path / "v" / "000.png"))
    assert img.shape == (64, 64, 4)
    assert img[0, 0, 3] == 0 and img[32, 32, 3] == 255


def test_lit_render_is_shaded_and_not_uniform(sphere_ply: Path) -> None:
    v = render_asset(sphere_ply, {"resolution": 128, "cache": False}).views[0]
    rgb = np.asarray(v.image.rgb).astype(int)
    obj = rgb[v.image.alpha == 1.0]
    assert obj[:, 0].max() - obj[:, 0].min() > 50  # light varies over the red hemisphere
    assert obj.max() <= 255 and (obj[:, 1] == 0).all()  # pure red/blue albedo stays pure


# ------------------------------------------------------------------------------------------------
# blank views, determinism, threads, cache


def test_mesh_outside_frustum_gives_blank_views_never_images(tmp_path: Path) -> None:
    path = tmp_path / "far.ply"
    coloured_sphere(center=(10.0, 0.0, 0.0)).export(path)
    views = render_asset_views(path, {"normalize": "none", "resolution": 64, "cache": False})
    assert len(views) == 8
    assert all(v.image is None and v.error and "blank view" in v.error for v in views)


def test_edge_on_plane_blank_only_in_edge_on_views(tmp_path: Path) -> None:
    quad = trimesh.Trimesh([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]], [[0, 1, 2], [0, 2, 3]])
    path = tmp_path / "quad.ply"
    quad.export(path)
    views = render_asset_views(path, {"rig": "orbit4", "pitch": 0.0, "resolution": 64, "cache": False})
    assert [v.error is None for v in views] == [True, False, True, False]


def test_view_problem_on_hand_made_arrays() -> None:
    rgb = np.full((4, 4, 3), 255, np.uint8)
    assert "blank" in view_problem(rgb, np.zeros((4, 4), np.float32))
    assert "uniform" in view_problem(rgb, np.ones((4, 4), np.float32))
    rgb[1, 1] = (10, 10, 10)
    assert view_problem(rgb, np.pad(np.ones((1, 1), np.float32), ((1, 2), (1, 2)))) is None


def test_composite_and_unpremultiply_by_hand() -> None:
    px = np.array([[[100, 50, 0, 128], [0, 0, 0, 0], [200, 10, 30, 255]]], np.uint8)
    rgb, alpha = composite(px, (255, 255, 255))
    assert rgb[0, 0].tolist() == [100 + 127, 50 + 127, 127]  # 255*(255-128)/255 = 127
    assert rgb[0, 1].tolist() == [255, 255, 255]
    assert rgb[0, 2].tolist() == [200, 10, 30]
    np.testing.assert_allclose(alpha, [[128 / 255, 0.0, 1.0]], rtol=1e-6)
    assert unpremultiply(px)[0, 0].tolist() == [199, 100, 0, 128]


def test_same_pixels_twice_and_across_threads(cube_glb: Path) -> None:
    opts = {"resolution": 96, "cache": False}
    first = render_asset(cube_glb, opts).premultiplied
    second = render_asset(cube_glb, opts).premultiplied
    assert np.array_equal(first, second)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        results[i] = render_asset(cube_glb, opts).premultiplied

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(np.array_equal(first, r) for r in results.values())


def test_render_cache_hits_with_identical_pixels_and_misses_on_new_settings(tmp_path: Path, cube_glb: Path) -> None:
    opts = {"resolution": 64, "cache_dir": tmp_path / "renders"}
    a = render_asset(cube_glb, opts)
    b = render_asset(cube_glb, opts)
    assert not a.from_cache and b.from_cache
    assert np.array_equal(a.premultiplied, b.premultiplied)
    assert [v.image.sha256 for v in a.views] == [v.image.sha256 for v in b.views]
    c = render_asset(cube_glb, {**opts, "background": (0, 0, 0)})  # same render, new composite
    assert c.from_cache and c.views[0].image.sha256 != a.views[0].image.sha256
    d = render_asset(cube_glb, {**opts, "lighting": "flat"})
    assert not d.from_cache
    e = render_asset(cube_glb, {**opts, "cache": False})
    assert not e.from_cache


def test_damaged_render_cache_entries_are_misses_and_get_rewritten(tmp_path: Path, cube_glb: Path) -> None:
    from gencritic.render.cache import RenderCache

    opts = {"resolution": 64, "cache_dir": tmp_path / "renders"}
    fresh = render_asset(cube_glb, opts)
    (entry,) = (tmp_path / "renders").rglob("*.gcr")
    good = entry.read_bytes()
    for damage in (good[: len(good) // 2], b"not a render" + good, good[:-40] + bytes(40), b""):
        entry.write_bytes(damage)
        again = render_asset(cube_glb, opts)
        assert not again.from_cache and np.array_equal(again.premultiplied, fresh.premultiplied)
        assert entry.read_bytes() == good  # rewritten, byte for byte (zstd is deterministic)
    views, meta = RenderCache(tmp_path / "renders").get(entry.stem) or (None, None)
    assert views is not None and np.array_equal(views, fresh.premultiplied) and meta == fresh.meta
    assert not list((tmp_path / "renders").rglob(".tmp-*"))  # no temporary files left behind


def test_point_cloud_renders_as_points(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    pts = rng.normal(size=(2000, 3))
    pts /= np.linalg.norm(pts, axis=1, keepdims=True)
    np.savez(tmp_path / "pc.npz", points=pts, colors=np.tile([0, 180, 0], (2000, 1)).astype(np.uint8))
    v = render_asset(tmp_path / "pc.npz", {"resolution": 64, "cache": False}).views[0]
    rgb = np.asarray(v.image.rgb)
    assert (v.image.alpha > 0).sum() > 200
    assert ((rgb == (0, 180, 0)).all(axis=-1)).sum() > 100  # points are drawn unlit, in their colour


def test_bad_options_and_bad_meshes(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown camera rig"):
        parse_render_options({"rig": "spiral"})
    with pytest.raises(InputError, match="unknown render option"):
        parse_render_options({"colour": "red"})
    with pytest.raises(InputError, match="resolution"):
        parse_render_options({"resolution": 2})
    (tmp_path / "bad.glb").write_bytes(b"glTF nonsense")
    with pytest.raises(ItemError):
        render_asset_views(tmp_path / "bad.glb", {"cache": False})


def test_rig_geometry() -> None:
    cams = make_rig("toys4k8")
    assert [c.yaw_deg for c in cams] == [45.0 * i for i in range(8)]
    for c in cams:
        assert c.radius == pytest.approx(2.0)
        assert math.degrees(math.asin(c.eye[1] / 2.0)) == pytest.approx(30.0)
        # the camera looks at the origin: it projects to the principal point
        j = c.to_json(512, 512)
        p = np.asarray(j["w2c_opencv"]) @ np.array([0.0, 0.0, 0.0, 1.0])
        uv = np.asarray(j["K"]) @ (p[:3] / p[2])
        np.testing.assert_allclose(uv[:2], [256, 256], atol=1e-9)
    assert make_rig("random5", seed=3)[2].eye == make_rig("random5", seed=3)[2].eye
    assert make_rig("random5", seed=3)[2].eye != make_rig("random5", seed=4)[2].eye
    assert len(make_rig("six")) == 6 and len(make_rig("orbit24")) == 24


def test_real_meshes_render_with_non_empty_silhouettes() -> None:
    folder = shared_data("meshes-small")
    meshes = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".glb", ".obj", ".ply", ".stl"})
    for path in meshes:
        r = render_asset(path, {"resolution": 64, "cache": False, "allow_untextured": True})
        assert [w.split(" drawn without")[0] for w in r.warnings] == (
            [f"untextured: {path.name}"] if path.name in MESHES_WITHOUT_THEIR_MTL else []), path.name
        ok = [v for v in r.views if v.image is not None]
        assert len(ok) >= 6, path.name  # wood.obj is a flat quad: edge-on at yaw 90/270
        for v in ok:
            covered = (v.image.alpha > 0).mean()
            assert 0.01 < covered < 0.95, (path.name, v.name, covered)
            assert np.asarray(v.image.rgb).std() > 5, (path.name, v.name)  # not a flat grey card


def test_mirrored_closed_mesh_keeps_its_faces_when_back_faces_are_culled(tmp_path: Path) -> None:
    """Culling is only for closed surfaces; a mirroring node flips winding and must be detected."""
    from gencritic.mesh import load_asset

    sphere = coloured_sphere()
    scene = trimesh.Scene()
    scene.add_geometry(sphere, node_name="mirrored", transform=np.diag([-1.0, 1.0, 1.0, 1.0]))
    mirrored = tmp_path / "mirrored.glb"
    scene.export(mirrored)
    plain = tmp_path / "plain.glb"
    trimesh.Scene([sphere]).export(plain)
    assert {p.orientation for p in load_asset(plain).primitives} == {1}
    assert {p.orientation for p in load_asset(mirrored).primitives} == {-1}
    opts = {**FLAT, "resolution": 96}
    a = render_asset(plain, opts).premultiplied
    b = render_asset(mirrored, opts).premultiplied
    area_a, area_b = (a[..., 3] > 0).sum(), (b[..., 3] > 0).sum()
    assert area_b == pytest.approx(area_a, rel=0.01)  # a culled-away sphere would be (nearly) empty
    # the inside of an open hemisphere stays visible (open: nothing is culled)
    cap = trimesh.Trimesh(sphere.vertices, sphere.faces[sphere.triangles_center[:, 1] > 0])
    cap.export(tmp_path / "cap.ply")
    assert {p.orientation for p in load_asset(tmp_path / "cap.ply").primitives} == {0}


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
       st.booleans())
def test_composite_fast_path_equals_the_formula(seed: int, background: tuple[int, int, int], binary: bool) -> None:
    rng = np.random.default_rng(seed)
    a = (rng.integers(0, 2, (9, 7)) * 255) if binary else rng.integers(0, 256, (9, 7))
    rgb = np.floor(rng.random((9, 7, 3)) * (a[..., None] + 1)).clip(0, a[..., None])  # premultiplied: rgb <= a
    px = np.concatenate([rgb, a[..., None]], axis=-1).astype(np.uint8)
    out, alpha = composite(px, background)
    expected = np.clip(rgb + (np.array(background) * (255 - a[..., None]) + 127) // 255, 0, 255)
    assert np.array_equal(out, expected)
    np.testing.assert_allclose(alpha, a / 255, rtol=1e-6)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
       st.sampled_from(["binary", "soft", "blank", "uniform", "uniform-soft"]))
def test_composite_view_equals_composite_then_view_problem(seed: int, background: tuple[int, int, int],
                                                          kind: str) -> None:
    from gencritic.render.compose import composite_view

    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, (9, 7)) * 255 if kind in ("binary", "uniform") else rng.integers(0, 256, (9, 7))
    if kind == "blank":
        a = np.zeros((9, 7), int)
    if kind.startswith("uniform"):
        a = np.full((9, 7), 255 if kind == "uniform" else 200)
        rgb = np.broadcast_to(rng.integers(0, 201, 3), (9, 7, 3))
    else:
        rgb = np.floor(rng.random((9, 7, 3)) * (a[..., None] + 1)).clip(0, a[..., None])
    px = np.ascontiguousarray(np.concatenate([rgb, a[..., None]], axis=-1).astype(np.uint8))
    image, alpha, problem = composite_view(px, background)
    expected_rgb, expected_alpha = composite(px, background)
    assert problem == view_problem(expected_rgb, expected_alpha)
    assert np.array_equal(alpha, expected_alpha)
    assert (image is None) == (problem is not None)
    if image is not None:
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), expected_rgb)
        if MARGIN_KEY in image.info:  # the box outside which the view is all background
            (x0, y0, x1, y1), colour = image.info[MARGIN_KEY]
            outside = expected_rgb.copy()
            outside[y0:y1, x0:x1] = background
            assert colour == background and (outside == np.array(background)).all()
            assert a[y0].any() and a[y1 - 1].any() and a[:, x0].any() and a[:, x1 - 1].any()  # and tight

