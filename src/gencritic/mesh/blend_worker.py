"""Convert ``.blend`` files to GLB; runs inside a Python that has ``bpy`` (or a blender binary).

Run as ``PYTHON blend_worker.py JOB.json`` by :mod:`gencritic.mesh.blend`, never imported by
gencritic itself (``bpy`` lives in its own environment: :mod:`gencritic.blender` says why).
Only the standard library and bpy are used here.

``JOB.json``: ``{"files": [{"src": "a.blend", "dst": "tmp/0.glb"}, ...], "status": "status.jsonl"}``.
For each file, in order, one JSON line is appended to the status file (and flushed) as soon as
that file is done, so a crash on one file loses nothing before it: ``{"src", "ok", "error",
"externals", "notes", "objects"}``.

What a file goes through, and why:

1. It is opened as it is (``open_mainfile``: what Blender would render, with its modifiers,
   linked libraries and packed images), with the file's own scripts off. The user's file is
   never written.
2. A base-colour image that is neither packed nor on disk, or that Blender cannot decode, and a
   linked library that is missing, fail the file: drawn without them, the asset would be scored
   in the wrong colours without a word.
3. glTF's exporter reads colours from Principled BSDF only: a material whose surface is another
   single shader with a colour (Diffuse, Glossy, Emission, Toon, ...; Blender's older files use
   them widely) came out white. Such a shader's colour, a value or a linked image/attribute, is
   rewired into a Principled BSDF first, in memory. A mix of shaders takes the colour of its
   first coloured shader, and procedural textures that glTF cannot carry are noted, as are
   Emission shaders (drawn in their colour, without the glow): these notes ("kind: text", the
   kinds of :mod:`gencritic.row_warnings`) travel with the conversion, the host logs them and
   every row of the asset carries them as warnings.
4. Curves, surfaces, metaballs and text are converted to meshes (the exporter skips them).
5. Only what renders is exported (``use_renderable``; collection instances included): hidden
   helpers, cameras and lights stay out;
   modifiers are applied (``export_apply``); Z-up becomes glTF's Y-up, as every glTF from Blender.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

# Run as a script, this folder is first on sys.path and its modules would shadow Blender's own.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import bpy  # type: ignore[import-not-found]  # noqa: E402

GEOMETRY_TO_CONVERT = {"CURVE", "SURFACE", "META", "FONT"}
PROCEDURAL_PREFIX = "TEX_"  # texture nodes; TEX_IMAGE and TEX_ENVIRONMENT read files


class ConversionError(Exception):
    """Why a file cannot be converted faithfully, in one line for the user."""


def _abspath(image_or_library: Any) -> str:
    library = getattr(image_or_library, "library", None)
    return os.path.normpath(bpy.path.abspath(image_or_library.filepath, library=library))


def _surface_link(material: Any) -> Any:
    nodes = material.node_tree.nodes
    outputs = [n for n in nodes if n.type == "OUTPUT_MATERIAL"]
    output = next((n for n in outputs if n.is_active_output), outputs[0] if outputs else None)
    if output is None or not output.inputs["Surface"].is_linked:
        return None
    return output.inputs["Surface"].links[0]


def _colour_shader(node: Any) -> Any:
    """The shader whose colour the material shows: itself, or for a mix, its first coloured one."""
    if node.type in ("MIX_SHADER", "ADD_SHADER"):
        for socket in node.inputs:
            if socket.type == "SHADER" and socket.is_linked:
                found = _colour_shader(socket.links[0].from_node)
                if found is not None:
                    return found
        return None
    if node.type == "BSDF_PRINCIPLED" or "Color" in node.inputs:
        return node
    return None


def _upstream(socket: Any) -> list[Any]:
    """Every node that feeds ``socket``, transitively."""
    seen: dict[str, Any] = {}
    stack = [link.from_node for link in socket.links]
    while stack:
        node = stack.pop()
        if node.name in seen:
            continue
        seen[node.name] = node
        stack.extend(link.from_node for inp in node.inputs for link in inp.links)
    return list(seen.values())


def _prepare_material(material: Any, notes: list[str]) -> list[Any]:
    """Rewire the material so the exporter finds its colour; return the base colour's images."""
    if material is None or material.node_tree is None:
        return []
    tree = material.node_tree
    link = _surface_link(material)
    if link is None:
        return []
    surface = link.from_node
    shader = _colour_shader(surface)
    if shader is None:
        notes.append(f"shader-colour: material {material.name}: its surface ({surface.bl_label}) has no colour glTF "
                     f"can carry, drawn in the default colour")
        return []
    if surface.type in ("MIX_SHADER", "ADD_SHADER"):
        notes.append(f"shader-mix: material {material.name} mixes shaders, drawn with the colour of its "
                     f"{shader.bl_label}")
    if shader.type == "EMISSION":
        notes.append(f"emissive: material {material.name} is an Emission shader, drawn in its colour under the rig's "
                     f"light (the glow is not drawn)")
    if shader.type == "BSDF_PRINCIPLED":
        base = shader.inputs["Base Color"]
    else:
        colour = shader.inputs["Color"]
        principled = tree.nodes.new("ShaderNodeBsdfPrincipled")
        base = principled.inputs["Base Color"]
        base.default_value = colour.default_value
        if colour.is_linked:
            tree.links.new(colour.links[0].from_socket, base)
        tree.links.new(principled.outputs[0], link.to_socket)
    feeding = _upstream(base) if base.is_linked else []
    images = [n.image for n in feeding if n.type == "TEX_IMAGE" and n.image is not None]
    procedural = sorted({n.bl_label for n in feeding if n.type.startswith(PROCEDURAL_PREFIX)
                         and n.type not in ("TEX_IMAGE", "TEX_ENVIRONMENT")})
    if procedural:
        notes.append(f"procedural-colour: material {material.name}: its colour comes from procedural nodes "
                     f"({', '.join(procedural)}) that glTF cannot carry, drawn "
                     f"{'with its image' if images else 'in a plain colour'}")
    return images


def _check_image(image: Any, material: Any, externals: list[str]) -> None:
    if image.source == "TILED":
        raise ConversionError(f"texture {image.name} of material {material.name} is a UDIM tile set, which glTF "
                              f"cannot carry: bake it to one image")
    if image.source not in ("FILE", "SEQUENCE"):
        return  # generated or movie: nothing on disk to check
    if image.packed_file is None:
        path = _abspath(image)
        if not os.path.isfile(path):
            raise ConversionError(f"texture {os.path.basename(path) or image.name} (image {image.name} of material "
                                  f"{material.name}) not found at {path}: put it there, or pack it into the .blend "
                                  f"(File > External Data > Pack Resources)")
        externals.append(path)
    if tuple(image.size) == (0, 0):
        raise ConversionError(f"texture {image.name} of material {material.name} cannot be decoded by Blender: "
                              f"convert it to PNG")


def _convert_geometry(scene: Any) -> None:
    others = [o for o in scene.objects if o.type in GEOMETRY_TO_CONVERT and not o.hide_render]
    if not others:
        return
    view_layer = bpy.context.view_layer
    for obj in scene.objects:
        obj.select_set(False)
    for obj in others:
        if obj.name in view_layer.objects:
            obj.hide_set(False)
            obj.select_set(True)
            view_layer.objects.active = obj
    bpy.ops.object.convert(target="MESH")


def _renderable_meshes(objects: Any, seen: set[str] | None = None) -> list[Any]:
    """Mesh objects that render: those among ``objects`` not hidden from renders, and those in the
    collections that render-visible empties instance (Blender's "collection instances", nested too)."""
    seen = set() if seen is None else seen
    found = []
    for obj in objects:
        if obj.hide_render or obj.name in seen:
            continue
        seen.add(obj.name)
        if obj.type == "MESH":
            found.append(obj)
        elif obj.instance_type == "COLLECTION" and obj.instance_collection is not None:
            found.extend(_renderable_meshes(obj.instance_collection.all_objects, seen))
    return found


def convert(src: str, dst: str) -> dict[str, Any]:
    notes: list[str] = []
    externals: list[str] = []
    try:
        # never run the file's own Python (registered text blocks, driver expressions): a .blend
        # may come from anywhere, e.g. an upload to `gencritic serve`
        bpy.context.preferences.filepaths.use_scripts_auto_execute = False
        bpy.ops.wm.open_mainfile(filepath=src, load_ui=False, use_scripts=False)
    except RuntimeError as exc:
        raise ConversionError(f"Blender cannot open it: {' '.join(str(exc).split())[:200]}") from None
    for library in bpy.data.libraries:
        path = _abspath(library)
        if not os.path.isfile(path):
            raise ConversionError(f"linked library {os.path.basename(path)} not found at {path}: put it there, or "
                                  f"make the links local (File > External Data > Make Paths ... / Object > Relations)")
        externals.append(path)
    scene = bpy.context.scene
    _convert_geometry(scene)
    meshes = _renderable_meshes(scene.objects)
    if not meshes:
        raise ConversionError("no renderable mesh objects in its scene (is the object hidden from renders, or in "
                              "another scene?)")
    seen: set[str] = set()
    for obj in meshes:
        for slot in obj.material_slots:
            material = slot.material
            if material is None or material.name in seen:
                continue
            seen.add(material.name)
            for image in _prepare_material(material, notes):
                _check_image(image, material, externals)
    bpy.ops.export_scene.gltf(filepath=dst, export_format="GLB", use_renderable=True, use_active_scene=True,
                              export_apply=True, export_yup=True, export_cameras=False, export_lights=False,
                              export_animations=False, export_extras=False)
    if not os.path.isfile(dst):
        raise ConversionError("Blender's glTF exporter wrote nothing")
    return {"ok": True, "error": None, "externals": sorted(set(externals)), "notes": notes, "objects": len(meshes)}


def main() -> None:
    args = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else sys.argv[1:]
    job = json.loads(Path(args[0]).read_text())
    with open(job["status"], "a", encoding="utf-8") as status:
        for entry in job["files"]:
            try:
                result = convert(entry["src"], entry["dst"])
            except ConversionError as exc:
                result = {"ok": False, "error": str(exc)}
            except Exception as exc:  # an exporter bug on one file fails that file
                detail = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
                traceback.print_exc()
                result = {"ok": False, "error": f"Blender's conversion failed: {detail}"}
            status.write(json.dumps({"src": entry["src"], **result}) + "\n")
            status.flush()


if __name__ == "__main__":
    main()
