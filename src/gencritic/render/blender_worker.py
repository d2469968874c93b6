"""Path-trace one asset's views with Blender's Cycles; runs inside a Python that has ``bpy``.

Run as ``PYTHON blender_worker.py SCENE.npz OUT_DIR`` by :mod:`gencritic.render.pathtrace`, never
imported by gencritic itself: ``bpy`` pins its own numpy (1.26) and libraries, so it lives in
its own environment (or in a ``blender`` binary: ``blender -b --factory-startup --python
blender_worker.py -- SCENE.npz OUT_DIR``). Only numpy and bpy are used here.

The scene file holds the asset already normalised (gencritic's model matrix applied), per
primitive: ``pos{i}`` (N, 3), ``idx{i}`` (3F,), ``col{i}`` (N, 4) sRGB in [0, 1], optional
``nrm{i}`` (N, 3), ``uv{i}`` (N, 2, v = 0 at the image top) and ``tex{i}`` (H, W, 4) uint8; and
``cam_to_world`` (V, 4, 4), ``fov_y_deg`` (V,), ``near``/``far`` (V,), plus ``settings`` (a JSON
string: resolution, spp, seed, threads, lit, ambient, key, fill, key_dir, fill_dir).

Writes ``OUT_DIR/view_{k}.png`` (RGBA, straight alpha, 8-bit sRGB) and ``OUT_DIR/done.json``.
Lighting matches gencritic's rasteriser in intent: a uniform white environment for the ambient
term and two sun lights fixed in camera space (rotated with each view), with strengths chosen
so a Lambertian surface facing a light gets the same factor as in the rasteriser; Cycles adds
what a rasteriser cannot (shadows, inter-reflection), and shades in linear light.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

# Run as a script, this folder is first on sys.path, and its modules would shadow Blender's
# own (``addon_utils.enable("cycles")`` once imported gencritic's renderer module instead).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import bpy  # type: ignore[import-not-found]  # noqa: E402
import numpy as np  # noqa: E402
from mathutils import Matrix  # type: ignore[import-not-found]  # noqa: E402


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    c = np.clip(c, 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def rotation_z_to(direction: np.ndarray) -> np.ndarray:
    """3x3 rotation taking +Z to ``direction`` (a sun light shines along its own -Z)."""
    z = direction / np.linalg.norm(direction)
    helper = np.array([0.0, 1.0, 0.0]) if abs(z[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


def build_material(index: int, image: object | None) -> object:
    mat = bpy.data.materials.new(f"gencritic_{index}")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    nodes.clear()
    out = nodes.new("ShaderNodeOutputMaterial")
    diffuse = nodes.new("ShaderNodeBsdfDiffuse")
    attr = nodes.new("ShaderNodeAttribute")
    attr.attribute_name = "gencritic_color"
    colour = attr.outputs["Color"]
    if image is not None:
        tex = nodes.new("ShaderNodeTexImage")
        tex.image = image
        tex.interpolation = "Linear"
        uv = nodes.new("ShaderNodeUVMap")
        uv.uv_map = "gencritic_uv"
        links.new(uv.outputs["UV"], tex.inputs["Vector"])
        mix = nodes.new("ShaderNodeMix")
        mix.data_type = "RGBA"
        mix.blend_type = "MULTIPLY"
        mix.inputs["Factor"].default_value = 1.0
        links.new(colour, mix.inputs["A"])
        links.new(tex.outputs["Color"], mix.inputs["B"])
        colour = mix.outputs["Result"]
    links.new(colour, diffuse.inputs["Color"])
    links.new(diffuse.outputs["BSDF"], out.inputs["Surface"])
    return mat


def add_primitive(scene_data: dict, i: int) -> None:
    pos = scene_data[f"pos{i}"].astype(np.float32)
    idx = scene_data[f"idx{i}"].astype(np.int32)
    faces = len(idx) // 3
    mesh = bpy.data.meshes.new(f"prim{i}")
    mesh.vertices.add(len(pos))
    mesh.vertices.foreach_set("co", pos.ravel())
    mesh.loops.add(len(idx))
    mesh.loops.foreach_set("vertex_index", idx)
    mesh.polygons.add(faces)
    mesh.polygons.foreach_set("loop_start", np.arange(0, len(idx), 3, dtype=np.int32))
    mesh.update(calc_edges=True)
    colours = scene_data[f"col{i}"].astype(np.float32).copy()
    colours[:, :3] = srgb_to_linear(colours[:, :3])
    attr = mesh.color_attributes.new("gencritic_color", "FLOAT_COLOR", "POINT")
    attr.data.foreach_set("color", colours.ravel())
    image = None
    if f"uv{i}" in scene_data and f"tex{i}" in scene_data:
        uv = scene_data[f"uv{i}"].astype(np.float32)[idx]
        uv[:, 1] = 1.0 - uv[:, 1]  # gencritic: v = 0 at the image top; Blender: at the bottom
        layer = mesh.uv_layers.new(name="gencritic_uv")
        layer.data.foreach_set("uv", uv.ravel())
        tex = scene_data[f"tex{i}"]
        height, width = tex.shape[:2]
        image = bpy.data.images.new(f"tex{i}", width=width, height=height, alpha=True)
        image.colorspace_settings.name = "sRGB"
        image.pixels.foreach_set((tex[::-1].astype(np.float32) / 255.0).ravel())  # Blender rows: bottom up
        image.pack()
    if f"nrm{i}" in scene_data:
        mesh.shade_smooth()
        mesh.normals_split_custom_set_from_vertices(scene_data[f"nrm{i}"].astype(np.float32).tolist())
    mesh.validate(clean_customdata=False)
    mesh.materials.append(build_material(i, image))
    obj = bpy.data.objects.new(f"prim{i}", mesh)
    bpy.context.scene.collection.objects.link(obj)


def main(scene_path: str, out_dir: str) -> None:
    data = dict(np.load(scene_path, allow_pickle=False))
    settings = json.loads(str(data.pop("settings")))
    bpy.ops.wm.read_factory_settings(use_empty=True)
    import addon_utils  # type: ignore[import-not-found]

    addon_utils.enable("cycles", default_set=True)  # an empty factory scene starts without it
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = int(settings["spp"])
    scene.cycles.use_adaptive_sampling = False  # a fixed number of samples per pixel: reproducible
    scene.cycles.use_denoising = False
    scene.cycles.seed = int(settings["seed"])
    scene.render.threads_mode = "FIXED"
    scene.render.threads = int(settings["threads"])
    scene.render.resolution_x = scene.render.resolution_y = int(settings["resolution"])
    scene.render.resolution_percentage = 100
    scene.render.film_transparent = True
    scene.view_settings.view_transform = "Standard"
    scene.view_settings.look = "None"
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGBA"
    scene.render.image_settings.color_depth = "8"

    world = bpy.data.worlds.new("gencritic_world")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (1.0, 1.0, 1.0, 1.0)
    lit = bool(settings["lit"])
    # Lambertian: a uniform environment of radiance L returns albedo * L; a sun of strength S at
    # normal incidence returns albedo * S / pi. So these strengths give the rasteriser's factors.
    background.inputs["Strength"].default_value = float(settings["ambient"]) if lit else 1.0
    scene.world = world

    primitives = sorted(int(k[3:]) for k in data if k.startswith("pos"))
    for i in primitives:
        add_primitive(data, i)

    suns = []
    if lit:
        for name in ("key", "fill"):
            light = bpy.data.lights.new(name, "SUN")
            light.energy = float(settings[name]) * math.pi
            light.angle = math.radians(10.0)  # soft shadow edges
            obj = bpy.data.objects.new(name, light)
            scene.collection.objects.link(obj)
            suns.append((obj, np.asarray(settings[f"{name}_dir"], dtype=np.float64)))

    cam_data = bpy.data.cameras.new("camera")
    cam_data.lens_unit = "FOV"
    cam_data.sensor_fit = "VERTICAL"
    camera = bpy.data.objects.new("camera", cam_data)
    scene.collection.objects.link(camera)
    scene.camera = camera

    out = Path(out_dir)
    for k, cam_to_world in enumerate(data["cam_to_world"]):
        cam_data.angle = math.radians(float(data["fov_y_deg"][k]))
        cam_data.clip_start = float(data["near"][k])
        cam_data.clip_end = float(data["far"][k])
        # through Matrix: a plain nested list assigned to an RNA matrix is read as columns
        camera.matrix_world = Matrix(cam_to_world.tolist())
        for obj, direction in suns:  # fixed in camera space, as in the rasteriser
            world_dir = cam_to_world[:3, :3] @ direction
            m = np.eye(4)
            m[:3, :3] = rotation_z_to(world_dir)
            obj.matrix_world = Matrix(m.tolist())
        scene.render.filepath = str(out / f"view_{k}.png")
        bpy.ops.render.render(write_still=True)
    (out / "done.json").write_text(json.dumps({"blender": bpy.app.version_string, "views": len(data["cam_to_world"])}))


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    main(argv[0], argv[1])
