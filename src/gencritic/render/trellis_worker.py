"""Render an asset the way TRELLIS renders its datasets; runs inside a Python that has ``bpy``.

Run as ``PYTHON trellis_worker.py JOB.json OUT_DIR`` by :mod:`gencritic.render.trellis`, never
imported by gencritic itself (``bpy`` lives in its own environment, see :mod:`gencritic.blender`).
Only the standard library, numpy and bpy are used here.

What it reproduces is TRELLIS' ``dataset_toolkits/blender_script/render.py`` (Blender 3.0.1),
setting by setting (``docs/rendering.md``, *The trellis preset*, says where each value comes
from and where Blender 5 differs): the asset is imported with Blender's own importers and keeps
its full materials; Cycles with 128 samples, one diffuse and one glossy bounce, three
transparent and three transmission bounces, OpenImageDenoise, a transparent film, the Filmic
view transform; the factory world (a dim grey background); a 1000 W point light at (4, 1, 6), a
10000 W area light at (0, 0, 10) scaled 100 and a 1000 W area light at (0, 0, -10); the camera a
32 mm sensor with lens ``16 / tan(fov / 2)``, Z up.

One difference is deliberate: the asset is placed by gencritic's normalisation (the job's
``root_matrix``), computed on the exact vertices gencritic's loader reads, so a Cycles view and a
rasterised view (and the geometry metrics) show the same triangles in the same frame. TRELLIS'
``normalize_scene`` applies the same rule (bounding box centred, longest side 1) to the union of
each object's transformed local bounding box, which is larger than the exact box when an object
is rotated. The worker checks the imported scene's exact box against gencritic's and fails the
asset when Blender's importer read a different shape.

The job file (JSON): ``asset`` (path), ``kind`` (``gltf``/``obj``/``ply``/``stl``/``blend``/``kit``),
``parts`` (kit part paths), ``root_matrix`` (4x4, Blender world), ``expected_bounds`` (2x3,
Blender world), ``cameras`` (list of ``matrix_world`` 4x4 and ``fov_deg``), ``resolution``,
``spp``, ``seed``, ``threads``, ``render`` (false: build the scene and describe it, no pixels).

Writes ``OUT_DIR/scene.json`` (every setting read back from the scene, per view camera too),
``OUT_DIR/view_{k}.png`` (RGBA, straight alpha, 8-bit, Filmic) and ``OUT_DIR/done.json``.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path; its modules would shadow Blender's own.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import bpy  # type: ignore[import-not-found]  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix  # type: ignore[import-not-found]  # noqa: E402

# Blender 3.0.1's factory world: a Background of this linear grey, strength 1 (TRELLIS keeps the
# startup file's world; Blender 5's factory world is the same, set explicitly all the same).
FACTORY_WORLD_GREY = 0.05087608844041824
SENSOR_MM = 32.0  # TRELLIS sets sensor_width = sensor_height = 32 (Blender's default is 36 x 24)


class JobError(RuntimeError):
    """What makes this asset unrenderable, in one line (printed last, read by gencritic)."""


def reset_scene(kind: str, asset: str) -> None:
    """TRELLIS' start: the factory startup file with every object, material, texture and image
    removed; a .blend file is opened itself (``blender -b FILE -P render.py``) and only its
    invisible objects and its lights are removed."""
    if kind == "blend":
        bpy.ops.wm.open_mainfile(filepath=asset)
        for obj in list(bpy.context.scene.objects):  # delete_invisible_objects()
            if obj.hide_viewport or obj.hide_render:
                bpy.data.objects.remove(obj, do_unlink=True)
        for col in [c for c in bpy.data.collections if c.hide_viewport]:
            bpy.data.collections.remove(col)
        for obj in [o for o in bpy.context.scene.objects if o.type == "LIGHT"]:  # init_lighting() clears lights
            bpy.data.objects.remove(obj, do_unlink=True)
        return
    bpy.ops.wm.read_factory_settings(use_empty=False)
    for collection in (bpy.data.objects, bpy.data.materials, bpy.data.textures, bpy.data.images):
        for block in list(collection):
            collection.remove(block, do_unlink=True)


def import_file(path: str, kind: str) -> None:
    """Blender's own importers with TRELLIS' options. Every format is read Y-up, as the glTF
    importer always does (file (x, y, z) -> Blender (x, -z, y)), so one ``root_matrix`` places a
    kit of mixed parts; the asset's true up axis is in that matrix (gencritic's ``up`` option)."""
    if kind == "gltf":
        result = bpy.ops.import_scene.gltf(filepath=path, merge_vertices=True, import_shading="NORMALS")
    elif kind == "obj":
        result = bpy.ops.wm.obj_import(filepath=path, forward_axis="NEGATIVE_Z", up_axis="Y")
    elif kind == "ply":
        result = bpy.ops.wm.ply_import(filepath=path, forward_axis="NEGATIVE_Z", up_axis="Y")
    elif kind == "stl":
        result = bpy.ops.wm.stl_import(filepath=path, forward_axis="NEGATIVE_Z", up_axis="Y")
    else:
        raise JobError(f"no Blender importer for {kind!r}")
    if "FINISHED" not in result:
        raise JobError(f"Blender's {kind} importer could not read {Path(path).name}")


def place_asset(root_matrix: list[list[float]]) -> Any:
    """Parent every root object to one empty (as TRELLIS' normalize_scene) and give it the matrix."""
    scene = bpy.context.scene
    roots = [obj for obj in scene.objects if obj.parent is None]
    if not any(obj.type == "MESH" for obj in scene.objects):
        raise JobError("Blender imported no mesh from the asset")
    empty = bpy.data.objects.new("gencritic_root", None)
    scene.collection.objects.link(empty)
    bpy.context.view_layer.update()
    for obj in roots:
        world = obj.matrix_world.copy()
        obj.parent = empty
        obj.matrix_parent_inverse = Matrix.Identity(4)
        obj.matrix_basis = world  # the empty is still the identity: same place
    empty.matrix_world = Matrix(root_matrix)
    bpy.context.view_layer.update()
    return empty


def exact_bounds() -> np.ndarray:
    """(2, 3) min/max of every evaluated mesh vertex in world coordinates."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    lo, hi = np.full(3, np.inf), np.full(3, -np.inf)
    for obj in bpy.context.scene.objects:
        if obj.type != "MESH":
            continue
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        co = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
        mesh.vertices.foreach_get("co", co)
        evaluated.to_mesh_clear()
        if not len(co):
            continue
        m = np.array(evaluated.matrix_world)
        world = co.reshape(-1, 3) @ m[:3, :3].T + m[:3, 3]
        lo, hi = np.minimum(lo, world.min(axis=0)), np.maximum(hi, world.max(axis=0))
    return np.stack([lo, hi])


def set_render(job: dict[str, Any]) -> None:
    """TRELLIS' ``init_render`` (render.py), with what Blender 3.0.1 left at its defaults set
    explicitly where Blender 5 differs or could differ."""
    import addon_utils  # type: ignore[import-not-found]

    addon_utils.enable("cycles", default_set=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.render.resolution_x = scene.render.resolution_y = int(job["resolution"])
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"
    scene.render.film_transparent = True
    scene.render.threads_mode = "FIXED"
    scene.render.threads = int(job["threads"])
    c = scene.cycles
    c.device = "CPU"  # TRELLIS: GPU (CUDA); the same integrator, so the same images in expectation
    c.samples = int(job["spp"])
    # TRELLIS writes cycles.filter_type = 'BOX', a name Cycles renamed to pixel_filter_type in
    # Blender 2.77: the renderer only reads pixel_filter_type, so TRELLIS' views were filtered
    # by the default Blackman-Harris at the width it did set (docs/rendering.md).
    c.pixel_filter_type = "BLACKMAN_HARRIS"
    c.filter_width = 1.0
    c.diffuse_bounces = 1
    c.glossy_bounces = 1
    c.transparent_max_bounces = 3
    c.transmission_bounces = 3
    c.max_bounces = 12  # Blender 3.0's defaults from here on
    c.volume_bounces = 0
    c.sample_clamp_direct = 0.0
    c.sample_clamp_indirect = 10.0
    c.caustics_reflective = True
    c.caustics_refractive = True
    c.blur_glossy = 1.0
    c.film_exposure = 1.0
    c.use_adaptive_sampling = True
    c.adaptive_threshold = 0.01
    c.adaptive_min_samples = 0
    c.use_light_tree = False  # Blender 3.0 had no light tree: lights picked as it did
    c.use_denoising = True
    c.denoiser = "OPENIMAGEDENOISE"  # on the CPU: same result run to run
    c.denoising_use_gpu = False
    c.denoising_input_passes = "RGB_ALBEDO_NORMAL"
    c.denoising_prefilter = "ACCURATE"
    c.seed = int(job["seed"])
    c.use_animated_seed = False
    # Blender 3.0's default view transform; Blender 5 starts new scenes with AgX
    scene.display_settings.display_device = "sRGB"
    scene.view_settings.view_transform = "Filmic"
    scene.view_settings.look = "None"
    scene.view_settings.exposure = 0.0
    scene.view_settings.gamma = 1.0
    scene.view_settings.use_curve_mapping = False


def set_world(kind: str) -> None:
    """The factory world TRELLIS renders under (its script never touches it). A .blend keeps
    its own world, as TRELLIS' does."""
    scene = bpy.context.scene
    if kind == "blend" and scene.world is not None:
        return
    world = scene.world or bpy.data.worlds.new("World")
    scene.world = world
    world.use_nodes = True
    background = next(n for n in world.node_tree.nodes if n.bl_idname == "ShaderNodeBackground")
    background.inputs["Color"].default_value = (FACTORY_WORLD_GREY, FACTORY_WORLD_GREY, FACTORY_WORLD_GREY, 1.0)
    background.inputs["Strength"].default_value = 1.0


def add_lights() -> None:
    """TRELLIS' ``init_lighting``, plus the light sizes Blender 3.0 gave new lights (a point
    light's radius was 0.25 m then; Blender 5 creates it with 0)."""
    collection = bpy.context.collection
    specs = [("Default_Light", "POINT", 1000.0, (4.0, 1.0, 6.0), (1.0, 1.0, 1.0)),
             ("Top_Light", "AREA", 10000.0, (0.0, 0.0, 10.0), (100.0, 100.0, 100.0)),
             ("Bottom_Light", "AREA", 1000.0, (0.0, 0.0, -10.0), (1.0, 1.0, 1.0))]
    for name, kind, energy, location, scale in specs:
        light = bpy.data.lights.new(name, type=kind)
        light.energy = energy
        if kind == "POINT":
            light.shadow_soft_size = 0.25
        else:
            light.shape = "SQUARE"
            light.size = 0.25
        obj = bpy.data.objects.new(name, light)
        collection.objects.link(obj)
        obj.location = location
        obj.rotation_euler = (0.0, 0.0, 0.0)
        obj.scale = scale


def add_camera() -> Any:
    """TRELLIS' ``init_camera``: a 32 x 32 mm sensor (fit AUTO), placed per view."""
    data = bpy.data.cameras.new("Camera")
    data.sensor_width = data.sensor_height = SENSOR_MM
    data.sensor_fit = "AUTO"
    camera = bpy.data.objects.new("Camera", data)
    bpy.context.collection.objects.link(camera)
    bpy.context.scene.camera = camera
    return camera


def _unit(v: np.ndarray) -> list[float]:
    return [float(x) for x in v / np.linalg.norm(v)]


def describe(camera_records: list[dict[str, Any]]) -> dict[str, Any]:
    """Every setting the preset decides, read back from the scene (what the tests check)."""
    scene = bpy.context.scene
    c = scene.cycles
    cycles_keys = ("device", "samples", "pixel_filter_type", "filter_width", "diffuse_bounces", "glossy_bounces",
                   "transparent_max_bounces", "transmission_bounces", "max_bounces", "volume_bounces",
                   "use_denoising", "denoiser", "denoising_use_gpu", "denoising_input_passes", "denoising_prefilter",
                   "use_adaptive_sampling", "adaptive_threshold", "adaptive_min_samples", "use_light_tree", "seed",
                   "sample_clamp_direct", "sample_clamp_indirect", "film_exposure")
    lights = []
    for obj in scene.objects:
        if obj.type == "LIGHT":
            lights.append({"name": obj.name, "type": obj.data.type, "energy": obj.data.energy,
                           "location": list(obj.location), "rotation_euler": list(obj.rotation_euler),
                           "scale": list(obj.scale), "shadow_soft_size": obj.data.shadow_soft_size,
                           "size": getattr(obj.data, "size", None),
                           "emits_along": _unit(np.array(obj.matrix_world)[:3, :3] @ np.array([0.0, 0.0, -1.0]))})
    world = scene.world
    background = None
    if world is not None and world.node_tree is not None:
        node = next((n for n in world.node_tree.nodes if n.bl_idname == "ShaderNodeBackground"), None)
        if node is not None:
            background = {"color": list(node.inputs["Color"].default_value),
                          "strength": node.inputs["Strength"].default_value}
    materials = sorted({node.bl_idname for mat in bpy.data.materials if mat.node_tree is not None
                        for node in mat.node_tree.nodes})
    return {
        "blender": bpy.app.version_string,
        "engine": scene.render.engine,
        "resolution": [scene.render.resolution_x, scene.render.resolution_y, scene.render.resolution_percentage],
        "film_transparent": scene.render.film_transparent,
        "image": [scene.render.image_settings.file_format, scene.render.image_settings.color_mode,
                  scene.render.image_settings.color_depth],
        "cycles": {k: getattr(c, k) for k in cycles_keys},
        "view_transform": scene.view_settings.view_transform, "look": scene.view_settings.look,
        "exposure": scene.view_settings.exposure, "gamma": scene.view_settings.gamma,
        "display_device": scene.display_settings.display_device,
        "world_background": background,
        "lights": lights,
        "material_nodes": materials,
        "cameras": camera_records,
        "bounds": exact_bounds().tolist(),
    }


def main(job_path: str, out_dir: str) -> None:
    job = json.loads(Path(job_path).read_text())
    out = Path(out_dir)
    kind = job["kind"]
    reset_scene(kind, job["asset"])
    set_render(job)
    set_world(kind)
    if kind == "kit":
        for part, part_kind in job["parts"]:
            import_file(part, part_kind)
    elif kind != "blend":
        import_file(job["asset"], kind)
    place_asset(job["root_matrix"])
    bounds, expected = exact_bounds(), np.asarray(job["expected_bounds"], dtype=np.float64)
    if not np.allclose(bounds, expected, atol=1e-3):
        raise JobError(f"Blender's importer read another shape than gencritic's loader (bounding box "
                       f"{np.round(bounds, 4).tolist()} against {np.round(expected, 4).tolist()})")
    add_lights()
    camera = add_camera()
    records = []
    for k, view in enumerate(job["cameras"]):
        camera.matrix_world = Matrix(view["matrix_world"])
        camera.data.lens = 16.0 / math.tan(math.radians(float(view["fov_deg"])) / 2.0)
        bpy.context.view_layer.update()
        records.append({"location": list(camera.location), "matrix_world": [list(r) for r in camera.matrix_world],
                        "lens": camera.data.lens, "sensor_width": camera.data.sensor_width,
                        "sensor_height": camera.data.sensor_height, "sensor_fit": camera.data.sensor_fit,
                        "angle": camera.data.angle})
        if job["render"]:
            bpy.context.scene.render.filepath = str(out / f"view_{k}.png")
            bpy.ops.render.render(write_still=True)
    (out / "scene.json").write_text(json.dumps(describe(records)))
    (out / "done.json").write_text(json.dumps({"blender": bpy.app.version_string, "views": len(records)}))


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    try:
        main(argv[0], argv[1])
    except JobError as exc:
        print(f"gencritic: {exc}", file=sys.stderr)
        sys.exit(3)
