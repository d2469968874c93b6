""".blend files read through Blender: converted to GLB with their colours, textures checked,
cached by content, failures as rows, one line without Blender.

The .blend files are made here by Blender itself (a small script run in Blender's Python), with
colours chosen in sRGB and stored the way Blender stores them (linear), so the expected
drawn colours are independent of gencritic's conversion. Tests that need Blender skip where it
is not installed (`bash scripts/setup.sh --with-blender`, as CI does).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from gencritic.blender import blender_command
from gencritic.errors import InputError, ItemError
from gencritic.mesh import asset_sha256, load_asset
from gencritic.mesh import blend as blend_module
from gencritic.mesh.blend import convert_blend_files, converted_blend, prepare_blend_files
from gencritic.render.api import render_asset

MAKER = r'''
import sys
from pathlib import Path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
import bpy

def linear(c):  # sRGB 0..255 -> Blender's stored linear value
    c = c / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

def material(name, srgb, shader="ShaderNodeBsdfPrincipled", socket="Base Color"):
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    tree = mat.node_tree
    for node in [n for n in tree.nodes if n.type != "OUTPUT_MATERIAL"]:
        tree.nodes.remove(node)
    node = tree.nodes.new(shader)
    node.inputs[socket].default_value = (*[linear(c) for c in srgb], 1.0)
    tree.links.new(node.outputs[0], tree.nodes["Material Output"].inputs["Surface"])
    return mat, node

args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
recipe, out = args[0], args[1]
bpy.ops.wm.read_factory_settings(use_empty=True)
if recipe == "scene":
    # a red Principled cube at the origin, a green Diffuse sphere above it (Blender's +Z), a blue
    # cube far away that is hidden from renders, a camera and a light (not exported)
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(0, 0, 0))
    bpy.context.active_object.data.materials.append(material("red", (200, 50, 50))[0])
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.25, location=(0, 0, 1.0))
    bpy.context.active_object.data.materials.append(
        material("green", (40, 180, 60), "ShaderNodeBsdfDiffuse", "Color")[0])
    bpy.ops.mesh.primitive_cube_add(size=1.0, location=(10, 0, 0))
    bpy.context.active_object.hide_render = True
    bpy.ops.object.camera_add(location=(0, -5, 0))
    bpy.ops.object.light_add(type="SUN", location=(0, 0, 5))
elif recipe == "textured":
    # a plane whose base colour is an image texture kept beside the .blend (relative path)
    bpy.ops.mesh.primitive_plane_add(size=1.0)
    mat, bsdf = material("tex", (255, 255, 255))
    node = mat.node_tree.nodes.new("ShaderNodeTexImage")
    node.image = bpy.data.images.load(args[2])
    node.image.filepath = "//" + Path(args[2]).name
    mat.node_tree.links.new(node.outputs["Color"], bsdf.inputs["Base Color"])
    bpy.context.active_object.data.materials.append(mat)
elif recipe == "instances":
    # a cube kept in a collection outside the scene, drawn twice by collection instances
    parts = bpy.data.collections.new("parts")
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    cube = bpy.context.active_object
    for collection in cube.users_collection:
        collection.objects.unlink(cube)
    parts.objects.link(cube)
    cube.data.materials.append(material("blue", (30, 60, 220), "ShaderNodeBsdfDiffuse", "Color")[0])
    for x in (-1.0, 1.0):
        empty = bpy.data.objects.new(f"instance{x}", None)
        empty.instance_type = "COLLECTION"
        empty.instance_collection = parts
        empty.location = (x, 0, 0)
        bpy.context.scene.collection.objects.link(empty)
elif recipe == "script":
    # a cube, and a text block registered to run when the file is opened with scripts allowed
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    text = bpy.data.texts.new("payload.py")
    text.write("open(" + repr(args[2]) + ", 'w').write('ran')\n")
    text.use_module = True
elif recipe == "curves":
    # a text object and a bevelled curve beside a cube: glTF's exporter skips non-mesh geometry
    bpy.ops.mesh.primitive_cube_add(size=0.5)
    bpy.ops.object.text_add(location=(1.0, 0, 0))
    bpy.context.active_object.data.extrude = 0.05
    bpy.ops.curve.primitive_bezier_circle_add(radius=0.3, location=(-1.0, 0, 0))
    bpy.context.active_object.data.bevel_depth = 0.05
elif recipe == "degraded":
    # a cube coloured by a procedural Noise texture (glTF cannot carry it) and a glowing sphere
    # (an Emission shader: its colour survives, its glow is not drawn)
    bpy.ops.mesh.primitive_cube_add(size=1.0)
    mat, bsdf = material("marble", (200, 200, 200))
    noise = mat.node_tree.nodes.new("ShaderNodeTexNoise")
    mat.node_tree.links.new(noise.outputs["Color"], bsdf.inputs["Base Color"])
    bpy.context.active_object.data.materials.append(mat)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.25, location=(0, 0, 1.0))
    bpy.context.active_object.data.materials.append(material("lamp", (250, 220, 120), "ShaderNodeEmission", "Color")[0])
elif recipe == "empty":
    bpy.ops.object.camera_add(location=(0, -5, 0))
bpy.ops.wm.save_as_mainfile(filepath=out)
'''


def make_blend(tmp_path: Path, recipe: str, name: str, *extra: str) -> Path:
    script = tmp_path / "make_blend.py"
    script.write_text(MAKER)
    out = tmp_path / name
    done = subprocess.run([*blender_command(script), recipe, str(out), *extra], capture_output=True, text=True,
                          timeout=300, check=False)
    assert done.returncode == 0 and out.exists(), done.stderr[-2000:]
    return out


@pytest.fixture()
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("GENCRITIC_CACHE_DIR", str(folder))
    return folder


def _colour_of(prim_colors: np.ndarray) -> tuple[int, ...]:
    return tuple(round(float(c) * 255) for c in np.median(prim_colors[:, :3], axis=0))


def test_blend_scene_loads_what_renders_in_its_colours_y_up(tmp_path: Path, blender: str, cache: Path) -> None:
    path = make_blend(tmp_path, "scene", "toy.blend")
    mesh = load_asset(path)
    assert mesh.source == str(path)
    assert len(mesh.primitives) == 2  # the render-hidden cube, the camera and the light stay out
    by_height = sorted(mesh.primitives, key=lambda p: float(p.positions[:, 1].mean()))
    cube, sphere = by_height
    # Blender's +Z (up) is glTF's +Y: the sphere sits above the cube
    assert sphere.positions[:, 1].min() == pytest.approx(0.75, abs=1e-4)
    np.testing.assert_allclose(cube.positions.min(axis=0), [-0.5, -0.5, -0.5], atol=1e-5)
    np.testing.assert_allclose(cube.positions.max(axis=0), [0.5, 0.5, 0.5], atol=1e-5)
    # colours come back as picked in sRGB, the Diffuse BSDF's too (glTF's exporter alone drops it: white)
    assert all(abs(a - b) <= 1 for a, b in zip(_colour_of(cube.colors), (200, 50, 50), strict=True))
    assert all(abs(a - b) <= 1 for a, b in zip(_colour_of(sphere.colors), (40, 180, 60), strict=True))
    # the front view shows the red cube and the green sphere above it
    render = render_asset(path, {"rig": "six", "resolution": 96, "lighting": "flat", "cache": False})
    front = np.asarray(render.views[0].image.rgb).astype(int)
    assert tuple(front[60, 48]) == pytest.approx((200, 50, 50), abs=1)
    top_rows = front[:40, 40:56].reshape(-1, 3)
    assert any(abs(r - 40) <= 1 and abs(g - 180) <= 1 and abs(b - 60) <= 1 for r, g, b in top_rows)
    assert render.warnings == []  # every colour carried: nothing to warn about


def test_blend_texture_is_applied_hashed_and_required(tmp_path: Path, blender: str, cache: Path) -> None:
    texture = tmp_path / "paint.png"
    pixels = np.zeros((8, 8, 3), np.uint8)
    pixels[:, :4] = (250, 20, 20)
    pixels[:, 4:] = (20, 20, 250)
    Image.fromarray(pixels).save(texture)
    path = make_blend(tmp_path, "textured", "plane.blend", str(texture))
    mesh = load_asset(path)
    (prim,) = mesh.primitives
    assert prim.texture is not None
    np.testing.assert_array_equal(prim.texture[..., :3], pixels)
    sha = asset_sha256(path)
    assert asset_sha256(path) == sha  # stable; and cached: the second call starts no Blender

    # an edited texture is a different asset (render and embedding caches must miss)
    pixels[:, :4] = (20, 250, 20)
    Image.fromarray(pixels).save(texture)
    assert asset_sha256(path) != sha
    np.testing.assert_array_equal(load_asset(path).primitives[0].texture[..., :3], pixels)

    # a copy of the .blend elsewhere is checked against its own textures, not the cached ones
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    (elsewhere / "plane.blend").write_bytes(path.read_bytes())
    with pytest.raises(ItemError, match=r"plane\.blend: texture paint\.png .*not found"):
        load_asset(elsewhere / "plane.blend")
    (elsewhere / "paint.png").write_bytes(texture.read_bytes())
    np.testing.assert_array_equal(load_asset(elsewhere / "plane.blend").primitives[0].texture[..., :3], pixels)

    texture.write_bytes(b"not an image")  # present but undecodable: as wrong as missing
    with pytest.raises(ItemError, match=r"plane\.blend: texture paint\.png of material tex cannot be decoded"):
        load_asset(path)
    texture.unlink()  # without its texture the asset would be drawn white: its row fails instead
    with pytest.raises(ItemError, match=r"plane\.blend: texture paint\.png .*not found"):
        load_asset(path)


def test_conversion_is_cached_by_content(tmp_path: Path, blender: str, cache: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    path = make_blend(tmp_path, "scene", "toy.blend")
    first = converted_blend(path)
    assert first.glb.is_file() and first.glb.is_relative_to(cache)
    moved = tmp_path / "renamed.blend"
    path.rename(moved)

    def no_blender(*args: object, **kwargs: object) -> None:
        raise AssertionError("Blender started although the conversion is cached")

    monkeypatch.setattr(blend_module.subprocess, "run", no_blender)
    assert converted_blend(moved).glb == first.glb  # renames are free: keyed by content


def test_batch_goes_on_past_bad_files(tmp_path: Path, blender: str, cache: Path) -> None:
    good = make_blend(tmp_path, "scene", "good.blend")
    corrupt = tmp_path / "corrupt.blend"
    corrupt.write_bytes(b"BLENDER-v300" + bytes(200))
    empty = make_blend(tmp_path, "empty", "empty.blend")
    other = make_blend(tmp_path, "textured", "other.blend", str(_png(tmp_path)))
    outcomes = convert_blend_files([good, corrupt, empty, other], jobs=1)
    assert not isinstance(outcomes[good], str) and not isinstance(outcomes[other], str)
    assert isinstance(outcomes[corrupt], str) and "corrupt.blend" in outcomes[corrupt]
    assert isinstance(outcomes[empty], str) and "no renderable mesh" in outcomes[empty]
    with pytest.raises(ItemError, match=r"corrupt\.blend"):
        load_asset(corrupt)


def _png(tmp_path: Path) -> Path:
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((4, 4, 3), 128, np.uint8)).save(path)
    return path


def test_without_blender_one_line(tmp_path: Path, cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "toy.blend"
    path.write_bytes(b"BLENDER-v300" + bytes(64))
    monkeypatch.setenv("GENCRITIC_BLENDER", str(tmp_path / "no-such-python"))
    with pytest.raises(ItemError, match=r"toy\.blend: reading \.blend files needs Blender.*pip install bpy"):
        load_asset(path)
    with pytest.raises(InputError, match=r"1 \.blend file\(s\).*need Blender"):
        prepare_blend_files([path])
    assert prepare_blend_files([tmp_path / "a.glb"]) == {}  # no .blend: Blender is not looked for
    from gencritic.scoring import score

    # a run says so before any model is loaded (this model does not exist either)
    with pytest.raises(InputError, match=r"need Blender"):
        score(path, prompt="a toy", model=str(tmp_path / "no-such-model"), device="cpu", progress=False)


def test_toys4k_reads_the_blend_files_it_ships(tmp_path: Path, blender: str, cache: Path,
                                               tiny_clip_dir: Path) -> None:
    from gencritic.datasets.toys4k import Toys4kOptions, run_toys4k
    from tests.test_toys4k import reference_clip_score

    root = tmp_path / "toys4k"
    folder = root / "toys4k_blend_files" / "toy" / "toy_000"
    folder.mkdir(parents=True)
    blend = make_blend(tmp_path, "scene", "toy_000.blend")
    blend.rename(folder / "toy_000.blend")
    broken = root / "toys4k_blend_files" / "bad" / "bad_000"
    broken.mkdir(parents=True)
    (broken / "bad_000.blend").write_bytes(b"not a blend file")
    other = root / "toys4k_blend_files" / "other" / "other_000"
    other.mkdir(parents=True)
    shutil.copy(folder / "toy_000.blend", other / "other_000.blend")  # not the file its sha256 names

    def sha(path: Path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    metadata = tmp_path / "metadata.csv"
    with metadata.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["sha256", "file_identifier", "aesthetic_score", "captions"])
        w.writerow([sha(folder / "toy_000.blend"), "toy/toy_000/toy_000.blend", 5.0,
                    json.dumps(["a red box with a green ball"])])
        w.writerow([sha(broken / "bad_000.blend"), "bad/bad_000/bad_000.blend", 5.0, json.dumps(["a broken toy"])])
        w.writerow(["c" * 64, "other/other_000/other_000.blend", 5.0, json.dumps(["a toy"])])
    options = Toys4kOptions(model=str(tiny_clip_dir), device="cpu", resolution=64, cache_dir=tmp_path / "emb",
                            progress=False)
    result = run_toys4k(metadata, root, tmp_path / "out", options)
    good, bad, mismatched = result.rows
    assert good["success"] is True and good["num_views_rendered"] == 8
    expected = reference_clip_score(tiny_clip_dir, folder / "toy_000.blend", "a red box with a green ball",
                                    {"resolution": 64})
    assert good["clip_score"] == pytest.approx(expected, abs=2e-5)
    assert bad["success"] is False and "bad_000.blend" in bad["error"] and bad["clip_score"] is None
    assert mismatched["success"] is False and "not the file the metadata describes" in mismatched["error"]
    options.verify_sha256, options.overwrite = False, True
    rescored = run_toys4k(metadata, root, tmp_path / "out", options).rows[2]
    expected_other = reference_clip_score(tiny_clip_dir, other / "other_000.blend", "a toy", {"resolution": 64})
    assert rescored["success"] is True and rescored["clip_score"] == pytest.approx(expected_other, abs=2e-5)


def test_cache_commands_count_and_clear_conversions(tmp_path: Path, blender: str, cache: Path) -> None:
    from gencritic.cache_maintenance import clear_cache, inspect_cache, prune_cache

    path = make_blend(tmp_path, "scene", "toy.blend")
    glb = converted_blend(path).glb
    stale = cache / "blend" / ".staging-dead"
    stale.mkdir()
    (stale / "0.glb").write_bytes(b"half")
    os.utime(stale, (0, 0))
    report = inspect_cache(cache)
    assert report.conversions.count == 1 and report.conversions.bytes > glb.stat().st_size
    assert report.temporaries.count == 1
    assert prune_cache(cache).temporaries.count == 1 and not stale.exists()
    assert clear_cache(cache, renders=False, embeddings=False, conversions=True).conversions.count == 1
    assert not glb.exists() and inspect_cache(cache).conversions.count == 0
    assert converted_blend(path).glb == glb and glb.exists()  # converted again on the next use


FAKE_BLENDER = r'''#!{python}
"""Stands in for Blender: converts by copying a GLB, hangs on hang*.blend, dies on crash*.blend."""
import json, os, sys, time
if sys.argv[1] == "-c":
    print("Blender 9.9.9")
    sys.exit(0)
job = json.load(open(sys.argv[2]))
with open(job["status"], "a") as status:
    for entry in job["files"]:
        name = os.path.basename(entry["src"])
        if name.startswith("hang"):
            time.sleep(120)
        if name.startswith("crash"):
            print("Segmentation fault in the exporter")
            sys.stdout.flush()
            os._exit(3)
        with open({glb!r}, "rb") as src, open(entry["dst"], "wb") as dst:
            dst.write(src.read())
        status.write(json.dumps({{"src": entry["src"], "ok": True, "error": None, "externals": [],
                                 "notes": [], "objects": 1}}) + "\n")
        status.flush()
'''


def test_a_hang_or_crash_fails_that_file_and_the_rest_go_on(tmp_path: Path, cache: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Host-side batching without Blender: a stand-in worker that hangs on one file and dies on
    another. Each fails its own row with the reason; every other file is converted."""
    import sys

    import trimesh

    glb = tmp_path / "box.glb"
    trimesh.creation.box().export(glb)
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_BLENDER.format(python=sys.executable, glb=str(glb)))
    fake.chmod(0o755)
    monkeypatch.setenv("GENCRITIC_BLENDER", str(fake))
    monkeypatch.setattr(blend_module, "TIMEOUT_PER_FILE_S", 1.0)
    names = ["a", "hang", "b", "crash", "c"]
    paths = []
    for name in names:
        path = tmp_path / f"{name}.blend"
        path.write_bytes(f"BLENDER-v300 {name}".encode())
        paths.append(path)
    outcomes = convert_blend_files(paths, jobs=1)
    ok = {p.stem for p, o in outcomes.items() if not isinstance(o, str)}
    assert ok == {"a", "b", "c"}
    assert "did not finish converting it within 1 s" in str(outcomes[paths[1]])
    assert "exit 3" in str(outcomes[paths[3]]) and "Segmentation fault" in str(outcomes[paths[3]])
    assert len(load_asset(paths[4]).primitives) == 1  # cached: loads without starting the stand-in


def test_a_run_keeps_a_blend_texture_out_of_the_items(tmp_path: Path, blender: str, cache: Path) -> None:
    from gencritic.scoring.plan import convert_blends, gather_items

    folder = tmp_path / "assets"
    folder.mkdir()
    texture = folder / "paint.png"
    Image.fromarray(np.full((4, 4, 3), 90, np.uint8)).save(texture)
    make_blend(folder, "textured", "plane.blend", str(texture))
    (folder / "make_blend.py").unlink()
    # the run's planning step converts the .blend, then knows its texture
    items = convert_blends(folder, gather_items(folder, None, None), set(), progress=False).items
    assert [i.path.name for i in items] == ["plane.blend"]  # paint.png is the plane's, not an image to score
    assert items[0].kind == "mesh"


def test_listing_a_folder_does_not_run_blender(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Listing reads the folder; converting .blend files is the scoring run's planning step."""
    from gencritic.io.manifest import items_from_folder

    (tmp_path / "toy.blend").write_bytes(b"BLENDER-v300" + bytes(64))
    _png(tmp_path)
    monkeypatch.setenv("GENCRITIC_BLENDER", str(tmp_path / "no-such-python"))
    items = items_from_folder(tmp_path)  # no Blender: the listing does not need one
    assert [(i.path.name, i.kind, i.error) for i in items] == [("grey.png", "image", None), ("toy.blend", "mesh", None)]
    with pytest.raises(InputError, match=r"need Blender"):  # a run that would render it still says so up front
        from gencritic.scoring import score

        score(tmp_path, model=str(tmp_path / "no-such-model"), device="cpu", progress=False)


IMPORTER = r'''
import sys
from pathlib import Path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
import bpy
args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
bpy.ops.wm.read_factory_settings(use_empty=True)
for src, out in zip(args[0::2], args[1::2]):
    bpy.ops.wm.read_factory_settings(use_empty=True)
    if src.endswith(".glb"):
        bpy.ops.import_scene.gltf(filepath=src)
    else:
        bpy.ops.wm.obj_import(filepath=src)
    for image in bpy.data.images:
        if image.source == "FILE" and image.packed_file is None:
            image.pack()
    bpy.ops.wm.save_as_mainfile(filepath=out)
'''


def test_real_meshes_through_blender_render_as_the_originals(tmp_path: Path, blender: str, cache: Path) -> None:
    """Real assets imported into Blender by its own importers and saved as .blend (textures packed)
    render as the originals do: Blender's round trip plus gencritic's conversion lose nothing the
    views show (textured glTF, JPEG- and PNG-textured OBJ)."""
    from tests.conftest import shared_data

    meshes = shared_data("meshes-small")
    names = ["Duck.glb", "BoxTextured.glb", "fuze.obj", "wood.obj"]
    script = tmp_path / "import.py"
    script.write_text(IMPORTER)
    pairs = [(meshes / n, tmp_path / f"{Path(n).stem}.blend") for n in names]
    args = [str(p) for pair in pairs for p in pair]
    done = subprocess.run([*blender_command(script), *args], capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    options = {"resolution": 128, "cache": False}
    for original, blend in pairs:
        want, got = render_asset(original, options), render_asset(blend, options)
        assert [v.error is None for v in got.views] == [v.error is None for v in want.views], original.name
        for a, b in zip(want.views, got.views, strict=True):
            if a.image is None:
                continue
            diff = np.abs(np.asarray(a.image.rgb).astype(int) - np.asarray(b.image.rgb).astype(int)).max(axis=2)
            assert (diff > 8).mean() <= 0.005, (original.name, a.name, float((diff > 8).mean()))


def test_collection_instances_are_drawn(tmp_path: Path, blender: str, cache: Path) -> None:
    """An object drawn only through collection instances (a common way to lay out parts) renders,
    with its Diffuse colour."""
    mesh = load_asset(make_blend(tmp_path, "instances", "pair.blend"))
    centres = sorted(float(p.positions[:, 0].mean()) for p in mesh.primitives)
    assert centres == pytest.approx([-1.0, 1.0], abs=1e-5)
    for prim in mesh.primitives:
        assert all(abs(a - b) <= 1 for a, b in zip(_colour_of(prim.colors), (30, 60, 220), strict=True))


def test_convert_command_writes_glbs_in_the_same_layout(tmp_path: Path, blender: str, cache: Path) -> None:
    from typer.testing import CliRunner

    from gencritic.cli.main import app

    tree = tmp_path / "blends"
    (tree / "toy" / "toy_000").mkdir(parents=True)
    make_blend(tmp_path, "scene", "toy_000.blend").rename(tree / "toy" / "toy_000" / "toy_000.blend")
    (tree / "bad.blend").write_bytes(b"not a blend file")
    out = tmp_path / "glb"
    result = CliRunner().invoke(app, ["convert", str(tree), "--out", str(out), "-q"])
    assert result.exit_code == 1  # one file failed, and says why
    assert "bad.blend: error: bad.blend: Blender cannot open it" in result.output
    assert "converted 1/2 .blend files" in result.output
    glb = out / "toy" / "toy_000" / "toy_000.glb"
    assert glb.read_bytes()[:4] == b"glTF"
    mesh = load_asset(glb)  # the written GLB draws what the .blend does
    np.testing.assert_allclose(mesh.bounds(), load_asset(tree / "toy" / "toy_000" / "toy_000.blend").bounds())
    missing = CliRunner().invoke(app, ["convert", str(tmp_path / "nothing"), "--out", str(out)])
    assert isinstance(missing.exception, InputError) and "input not found" in str(missing.exception)


def test_a_blend_files_own_scripts_never_run(tmp_path: Path, blender: str, cache: Path) -> None:
    """A .blend can carry Python that Blender runs on opening when scripts are trusted; files may
    come from anywhere (uploads to `gencritic serve`), so conversion never trusts them."""
    marker = tmp_path / "ran.txt"
    path = make_blend(tmp_path, "script", "scripted.blend", str(marker))
    assert not marker.exists()
    # the payload is live: Blender runs it when the file is opened trusting its scripts
    probe = tmp_path / "trusting_open.py"
    probe.write_text("import sys\nfrom pathlib import Path\n"
                     "sys.path[:] = [p for p in sys.path if Path(p or '.').resolve() != Path(__file__).resolve().parent]\n"
                     "import bpy\nbpy.ops.wm.open_mainfile(filepath=sys.argv[-1], use_scripts=True)\n")
    subprocess.run([*blender_command(probe), str(path)], capture_output=True, timeout=300, check=False)
    assert marker.exists()
    marker.unlink()
    assert len(load_asset(path).primitives) == 1
    assert not marker.exists()


def test_text_and_curves_are_drawn(tmp_path: Path, blender: str, cache: Path) -> None:
    mesh = load_asset(make_blend(tmp_path, "curves", "signs.blend"))
    centres = sorted(float(p.positions[:, 0].mean()) for p in mesh.primitives)
    assert len(centres) == 3  # the cube, the text and the curve, each its own mesh
    assert centres[0] == pytest.approx(-1.0, abs=0.05) and centres[1] == pytest.approx(0.0, abs=1e-5)
    assert centres[2] > 1.0  # the text starts at x = 1 and runs right


def test_what_the_export_drops_is_named_in_the_row(tmp_path: Path, blender: str, cache: Path) -> None:
    """Procedural colours and Emission glow do not survive the GLB: each is a row warning, on every
    render of the asset, cached or not."""
    from gencritic.row_warnings import kind_of

    path = make_blend(tmp_path, "degraded", "toy.blend")
    options = {"rig": "six", "resolution": 48, "cache_dir": tmp_path / "renders"}
    first = render_asset(path, options)
    assert sorted(kind_of(w) for w in first.warnings) == ["emissive", "procedural-colour"]
    procedural = next(w for w in first.warnings if kind_of(w) == "procedural-colour")
    assert procedural.startswith("procedural-colour: toy.blend (converted by Blender): material marble: its colour "
                                 "comes from procedural nodes (Noise Texture)")
    again = render_asset(path, options)
    assert again.from_cache and again.warnings == first.warnings


def test_conversion_notes_become_warnings_of_their_kind(tmp_path: Path, cache: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Host side, with a stand-in for Blender: a note's kind is kept; a note without one (written by
    an older converter) is counted as blend-export."""
    import sys

    import trimesh

    glb = tmp_path / "box.glb"
    trimesh.creation.box().export(glb)
    notes = ["shader-mix: material m mixes shaders, drawn with the colour of its Diffuse BSDF",
             "material n: something an older converter said"]
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_BLENDER.format(python=sys.executable, glb=str(glb)).replace('"notes": []',
                                                                                     f'"notes": {notes!r}'))
    fake.chmod(0o755)
    monkeypatch.setenv("GENCRITIC_BLENDER", str(fake))
    from gencritic.mesh import parallel

    parallel.shutdown()  # loader processes forked earlier would keep another Blender and cache
    monkeypatch.setenv("GENCRITIC_LOAD_PROCESSES", "0")
    path = tmp_path / "toy.blend"
    path.write_bytes(b"BLENDER-v300 toy")
    assert render_asset(path, {"rig": "six", "resolution": 32, "cache": False}).warnings == [
        "shader-mix: toy.blend (converted by Blender): material m mixes shaders, drawn with the colour of its "
        "Diffuse BSDF",
        "blend-export: toy.blend (converted by Blender): material n: something an older converter said"]
