"""The rasteriser: moderngl on a headless EGL context (Mesa llvmpipe on CPU, the GPU's driver
when one is present), one hand-written shader, all views of an asset in one pass.

Why this shape (measured, see docs/rendering.md):

* the mesh is uploaded once and drawn into every view's tile of one atlas framebuffer; the
  atlas is resolved (MSAA) and read back once, so per-view overhead is a viewport change;
* the shader is small: albedo (vertex colour x base-colour factor x texture) times soft
  ambient plus two directional lights fixed in camera space, so every view is lit alike;
  normals are flipped toward the viewer, so winding or mirrored transforms never turn a face
  black;
* clear colour is (0, 0, 0, 0) and alpha is coverage, so the resolved colour is premultiplied
  and compositing on any background is exact: pixels with no coverage are the background;
* a small pool of long-lived render threads, one context each (:func:`render_views`), so the
  scoring pipeline's worker threads render different assets at once without sharing GL state
  and without creating (and leaking) a context per short-lived thread.

No fallback: a context that cannot be created raises :class:`RenderContextError`, whose text
says which system packages EGL needs.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from gencritic.mesh.data import MeshData
from gencritic.render.cameras import Camera

VERTEX_SHADER = """
#version 330
uniform mat4 u_model;
uniform mat4 u_view;
uniform mat4 u_proj;
uniform mat3 u_normal;
uniform float u_point_size;
in vec3 in_pos;
in vec3 in_normal;
in vec4 in_color;
in vec2 in_uv;
out vec3 v_normal_cam;
out vec3 v_pos_cam;
out vec4 v_color;
out vec2 v_uv;
void main() {
    vec4 world = u_model * vec4(in_pos, 1.0);
    vec4 cam = u_view * world;
    v_pos_cam = cam.xyz;
    v_normal_cam = mat3(u_view) * (u_normal * in_normal);
    v_color = in_color;
    v_uv = in_uv;
    gl_PointSize = u_point_size;
    gl_Position = u_proj * cam;
}
"""

FRAGMENT_SHADER = """
#version 330
uniform sampler2D u_tex;
const bool u_use_tex = USE_TEX;
const bool u_lit = LIT;
const bool u_flat = FLAT;
uniform float u_ambient;
uniform vec3 u_key_dir;
uniform float u_key;
uniform vec3 u_fill_dir;
uniform float u_fill;
in vec3 v_normal_cam;
in vec3 v_pos_cam;
in vec4 v_color;
in vec2 v_uv;
out vec4 f_color;
void main() {
    vec3 albedo = v_color.rgb;
    if (u_use_tex) {
        albedo *= texture(u_tex, v_uv).rgb;
    }
    vec3 rgb = albedo;
    if (u_lit) {
        vec3 n = u_flat ? cross(dFdx(v_pos_cam), dFdy(v_pos_cam)) : v_normal_cam;
        n = length(n) > 0.0 ? normalize(n) : vec3(0.0, 0.0, 1.0);
        vec3 to_eye = normalize(-v_pos_cam);
        if (dot(n, to_eye) < 0.0) { n = -n; }
        float light = u_ambient + u_key * max(dot(n, u_key_dir), 0.0) + u_fill * max(dot(n, u_fill_dir), 0.0);
        rgb = albedo * light;
    }
    f_color = vec4(clamp(rgb, 0.0, 1.0), 1.0);
}
"""


def fragment_shader(use_tex: bool, lit: bool, flat: bool) -> str:
    """The fragment shader with its three switches fixed at compile time.

    Why variants instead of uniform switches: llvmpipe then compiles only the path a primitive
    takes (no texture fetch for an untextured mesh, no derivative normals for a smooth one).
    Measured on real meshes, 8 views at 512²: 5-17% less render time, identical pixels.
    """
    def glsl(flag: bool) -> str:
        return "true" if flag else "false"

    return (FRAGMENT_SHADER.replace("USE_TEX", glsl(use_tex)).replace("= LIT", "= " + glsl(lit))
            .replace("= FLAT", "= " + glsl(flat and lit)))


# lights in camera space (x right, y up, z toward the viewer): a key from upper left-front,
# a weak fill from the right; ambient keeps faces turned away from both readable.
AMBIENT = 0.45
KEY = 0.5
FILL = 0.15
KEY_DIR = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
FILL_DIR = np.array([0.6, 0.1, 0.5]) / np.linalg.norm([0.6, 0.1, 0.5])

EGL_HINT = ("headless rendering needs EGL: on Debian/Ubuntu `apt-get install libegl1 libegl-mesa0 "
            "libgl1-mesa-dri` (CPU, Mesa llvmpipe) or an NVIDIA driver with EGL")


class RenderContextError(RuntimeError):
    """The GL context could not be created or used; the message says how to fix it."""


_preload_lock = threading.Lock()
_preloaded = False


def _preload_bundled_llvm() -> None:
    """Load triton's bundled LLVM before Mesa's llvmpipe loads the system libLLVM.

    Why: triton (installed with torch) ships its own LLVM inside ``libtriton.so``; if Mesa's
    libLLVM is already in the process, triton's static initialisers bind to Mesa's symbols
    and the process segfaults the moment anything imports triton (torchvision does, through
    torch.ops). Loaded in this order, both coexist (checked in tests/test_render_cli.py).
    """
    global _preloaded
    with _preload_lock:
        if _preloaded:
            return
        _preloaded = True
        try:
            import triton  # noqa: F401
        except Exception:  # not installed (or broken): then it cannot clash either
            return


@functools.lru_cache(maxsize=1)
def _gl_finish_releasing_the_gil() -> Callable[[], None] | None:
    """``glFinish`` called through ctypes, which releases the GIL while it waits.

    Why: moderngl holds the GIL for the whole of every GL call, and reading the framebuffer
    back waits for llvmpipe's threads to finish rasterising (most of a render on a CPU). Other
    Python threads, e.g. the pipeline's other worker compositing and resizing the previous
    asset, stalled for that long. After this call the read is a memory copy. Measured: a busy
    Python thread beside 8-view renders ran at 34% of its idle speed before, 57% after (llvmpipe's
    own threads take the rest). The pixels are the same: glFinish only waits. Resolved through
    eglGetProcAddress, as the context's own functions are, so it reaches the current context's
    driver; None (then moderngl's read waits, holding the GIL) where that is not available.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
        egl.eglGetProcAddress.restype = ctypes.c_void_p
        egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
        address = egl.eglGetProcAddress(b"glFinish")
    except (OSError, AttributeError):
        return None
    return ctypes.CFUNCTYPE(None)(address) if address else None


def _set_uniform(program: Any, name: str, value: Any) -> None:
    """Set a uniform if this shader variant kept it (the compiler drops the ones it never reads)."""
    uniform = program.get(name, None)
    if uniform is None:
        return
    if isinstance(value, bytes):
        uniform.write(value)
    else:
        uniform.value = value


class GLRenderer:
    """One EGL context with its compiled programs and a reusable atlas framebuffer."""

    def __init__(self) -> None:
        _preload_bundled_llvm()
        try:
            import moderngl
        except ImportError as exc:
            raise RenderContextError(f"moderngl is not installed ({exc}): `pip install gencritic[render]`") from None
        try:
            self.ctx: Any = moderngl.create_standalone_context(backend="egl")  # type: ignore[arg-type]
        except Exception as exc:
            raise RenderContextError(f"cannot create a headless EGL context ({exc}); {EGL_HINT}") from None
        self._mgl = moderngl
        self._programs: dict[tuple[bool, bool, bool], Any] = {}
        self.max_size = int(self.ctx.info.get("GL_MAX_RENDERBUFFER_SIZE", 8192))
        self.max_samples = int(self.ctx.max_samples)
        self._fbos: dict[tuple[int, int, int], tuple[Any, Any]] = {}
        self.renderer_name = str(self.ctx.info.get("GL_RENDERER", "unknown"))

    # -- framebuffers -------------------------------------------------------------------------
    def _framebuffers(self, width: int, height: int, samples: int) -> tuple[Any, Any]:
        key = (width, height, samples)
        if key not in self._fbos:
            for old in list(self._fbos):  # keep one size around; assets of a run share settings
                draw, resolve = self._fbos.pop(old)
                for fbo in {id(draw): draw, id(resolve): resolve}.values():
                    for att in (*fbo.color_attachments, fbo.depth_attachment):
                        if att is not None:
                            att.release()
                    fbo.release()
            size = (width, height)
            if samples > 1:
                draw = self.ctx.framebuffer(self.ctx.renderbuffer(size, 4, samples=samples),
                                            self.ctx.depth_renderbuffer(size, samples=samples))
                resolve = self.ctx.framebuffer(self.ctx.renderbuffer(size, 4))
            else:
                draw = self.ctx.framebuffer(self.ctx.renderbuffer(size, 4), self.ctx.depth_renderbuffer(size))
                resolve = draw
            self._fbos[key] = (draw, resolve)
        return self._fbos[key]

    # -- drawing ------------------------------------------------------------------------------
    def render(self, mesh: MeshData, model: np.ndarray, cameras: Sequence[Camera], resolution: int,
               samples: int = 0, lit: bool = True, point_size: float = 4.0, cull_closed: bool = False) -> np.ndarray:
        """Premultiplied RGBA uint8 views, shape (V, H, W, 4), row 0 = image top.

        ``cull_closed``: skip back faces of closed, consistently wound primitives. Only valid when
        every camera is outside the geometry (the caller checks); halves the triangles rasterised.
        """
        samples = min(samples, self.max_samples) if samples > 1 else 0
        per_row = max(1, min(len(cameras), self.max_size // resolution))
        out = []
        uploads = self._upload(mesh, lit)
        try:
            for start in range(0, len(cameras), per_row * max(1, self.max_size // resolution)):
                chunk = cameras[start:start + per_row * max(1, self.max_size // resolution)]
                out.append(self._render_chunk(uploads, model, chunk, resolution, samples, point_size, per_row,
                                              cull_closed))
        finally:
            for vao, buffers, tex, _ in uploads:
                vao.release()
                for b in buffers:
                    b.release()
                if tex is not None:
                    tex.release()
        return np.concatenate(out, axis=0)

    def program(self, use_tex: bool, lit: bool, flat: bool) -> Any:
        """This context's compiled variant (compiled on first use, at most 8 per context)."""
        key = (use_tex, lit, flat and lit)
        if key not in self._programs:
            self._programs[key] = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=fragment_shader(*key))
        return self._programs[key]

    def _upload(self, mesh: MeshData, lit: bool = True) -> list[tuple[Any, list[Any], Any, Any]]:
        ctx = self.ctx
        uploads = []
        for prim in mesh.primitives:
            n = prim.count
            normals = prim.normals if prim.normals is not None else np.zeros((n, 3), np.float32)
            uvs = prim.uvs if prim.uvs is not None else np.zeros((n, 2), np.float32)
            buffers = [ctx.buffer(np.ascontiguousarray(a, dtype=np.float32).tobytes())
                       for a in (prim.positions, normals, prim.colors, uvs)]
            content = [(buffers[0], "3f", "in_pos"), (buffers[1], "3f", "in_normal"),
                       (buffers[2], "4f", "in_color"), (buffers[3], "2f", "in_uv")]
            points = prim.mode == "points"
            flat = prim.mode == "triangles" and prim.normals is None
            # points have no normals: albedo; a variant drops the inputs it does not read (skip_errors)
            program = self.program(prim.texture is not None, lit and not points, flat)
            if prim.indices is not None:
                ibo = ctx.buffer(np.ascontiguousarray(prim.indices, dtype=np.uint32).tobytes())
                buffers.append(ibo)
                vao = ctx.vertex_array(program, content, index_buffer=ibo, index_element_size=4, skip_errors=True)
            else:
                vao = ctx.vertex_array(program, content, skip_errors=True)
            tex = None
            if prim.texture is not None:
                h, w = prim.texture.shape[:2]
                tex = ctx.texture((w, h), 4, np.ascontiguousarray(prim.texture).tobytes())
                tex.build_mipmaps()
                tex.filter = (self._mgl.LINEAR_MIPMAP_LINEAR, self._mgl.LINEAR)
                tex.repeat_x = True
                tex.repeat_y = True
            mode = self._mgl.POINTS if points else self._mgl.TRIANGLES
            uploads.append((vao, buffers, tex, (mode, program, prim.orientation)))
        return uploads

    def _render_chunk(self, uploads: list[tuple[Any, list[Any], Any, Any]], model: np.ndarray,
                      cameras: Sequence[Camera], res: int, samples: int, point_size: float,
                      per_row: int, cull_closed: bool = False) -> np.ndarray:
        ctx = self.ctx
        n = len(cameras)
        cols = min(n, per_row)
        rows = -(-n // cols)
        width, height = cols * res, rows * res
        draw, resolve = self._framebuffers(width, height, samples)
        draw.use()
        ctx.viewport = (0, 0, width, height)
        draw.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
        ctx.enable(self._mgl.DEPTH_TEST | self._mgl.PROGRAM_POINT_SIZE)
        ctx.disable(self._mgl.CULL_FACE | self._mgl.BLEND)
        ctx.cull_face = "back"
        normal3 = np.linalg.inv(model[:3, :3]).T
        programs = list({id(u[3][1]): u[3][1] for u in uploads}.values())
        for prog in programs:  # per-asset uniforms, in every variant this asset uses
            _set_uniform(prog, "u_model", model.astype("f4").T.tobytes())
            _set_uniform(prog, "u_normal", normal3.astype("f4").T.tobytes())
            _set_uniform(prog, "u_ambient", AMBIENT)
            _set_uniform(prog, "u_key", KEY)
            _set_uniform(prog, "u_fill", FILL)
            _set_uniform(prog, "u_key_dir", tuple(float(x) for x in KEY_DIR))
            _set_uniform(prog, "u_fill_dir", tuple(float(x) for x in FILL_DIR))
            _set_uniform(prog, "u_point_size", float(point_size))
            _set_uniform(prog, "u_tex", 0)
        for i, cam in enumerate(cameras):
            col, row = i % cols, i // cols
            ctx.viewport = (col * res, (rows - 1 - row) * res, res, res)  # flipped at readback
            view = cam.view_matrix().astype("f4").T.tobytes()
            proj = cam.projection_matrix().astype("f4").T.tobytes()
            for prog in programs:
                _set_uniform(prog, "u_view", view)
                _set_uniform(prog, "u_proj", proj)
            for vao, _, tex, (mode, _prog, orientation) in uploads:
                if cull_closed and orientation != 0:  # back faces of a closed surface are never visible
                    ctx.enable(self._mgl.CULL_FACE)
                    ctx.front_face = "ccw" if orientation > 0 else "cw"
                else:
                    ctx.disable(self._mgl.CULL_FACE)
                if tex is not None:  # untextured variants never sample
                    tex.use(0)
                vao.render(mode)
        if resolve is not draw:
            ctx.copy_framebuffer(resolve, draw)
        finish = _gl_finish_releasing_the_gil()
        if finish is not None:
            finish()  # wait for the rasteriser without holding the GIL; the read is then a copy
        raw = resolve.read(viewport=(0, 0, width, height), components=4, alignment=1)
        atlas = np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 4)[::-1]
        views = [atlas[(i // cols) * res:(i // cols + 1) * res, (i % cols) * res:(i % cols + 1) * res]
                 for i in range(n)]
        return np.ascontiguousarray(np.stack(views))


_local = threading.local()


def thread_renderer() -> GLRenderer:
    """This thread's renderer (created on first use; GL contexts are not shared across threads)."""
    renderer = getattr(_local, "renderer", None)
    if renderer is None:
        renderer = GLRenderer()
        _local.renderer = renderer
    return renderer


RENDER_THREADS = max(1, int(os.environ.get("GENCRITIC_RENDER_THREADS", "2")))
_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def render_views(mesh: MeshData, model: np.ndarray, cameras: Sequence[Camera], resolution: int,
                 **kwargs: Any) -> tuple[np.ndarray, str]:
    """Render on gencritic's long-lived GL threads; returns (premultiplied views, renderer name).

    Why a pool of its own: callers' threads come and go (each scoring run makes new workers),
    and an EGL context is tied to the thread that made it current. Destroying contexts does
    not give llvmpipe's memory back (~20 MB per context, measured), so contexts are created
    once per process, one per render thread (``GENCRITIC_RENDER_THREADS``, default 2), and
    never move between threads. Callers just wait for the result.
    """
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=RENDER_THREADS, thread_name_prefix="gencritic-gl")
        executor = _executor

    def job() -> tuple[np.ndarray, str]:
        renderer = thread_renderer()
        return renderer.render(mesh, model, cameras, resolution, **kwargs), renderer.renderer_name

    return executor.submit(job).result()
