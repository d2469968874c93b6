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
from dataclasses import dataclass
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
const bool u_trellis = TRELLIS;
const int u_alpha = ALPHA;  // 0 opaque (alpha ignored), 1 mask (cut below u_cutoff), 2 blend (premultiplied)
uniform float u_cutoff;
uniform float u_ambient;
uniform vec3 u_key_dir;
uniform float u_key;
uniform vec3 u_fill_dir;
uniform float u_fill;
// the trellis variant (world-fixed lights in linear light, then a Filmic-like curve): gl.TrellisLighting
uniform vec3 u_up;
uniform vec3 u_point_pos;
uniform vec4 u_trellis_gains;  // ambient, top light, point light, white glossy reflection of the top light
uniform float u_top_profile[TOP_SAMPLES];
uniform vec4 u_tone;
in vec3 v_normal_cam;
in vec3 v_pos_cam;
in vec4 v_color;
in vec2 v_uv;
out vec4 f_color;
vec3 to_linear(vec3 c) {
    return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(vec3(0.04045), c));
}
float top_light(float c) {  // the overhead light's irradiance profile over cos(normal, up)
    float x = clamp((c + 1.0) * 0.5, 0.0, 1.0) * float(TOP_SAMPLES - 1);
    int i = min(int(floor(x)), TOP_SAMPLES - 2);
    return mix(u_top_profile[i], u_top_profile[i + 1], x - float(i));
}
vec3 tone(vec3 x) {  // Filmic (base contrast) fitted as a logistic of a cubic in log2 exposure
    vec3 t = log2(max(x, vec3(1e-10)));
    vec3 p = ((u_tone.x * t + u_tone.y) * t + u_tone.z) * t + u_tone.w;
    return 1.0 / (1.0 + exp(-p));
}
void main() {
    vec3 albedo = v_color.rgb;
    vec3 linear = u_trellis ? to_linear(v_color.rgb) : albedo;
    float alpha = 1.0;
    if (u_use_tex) {
        vec4 texel = texture(u_tex, v_uv);
        albedo *= texel.rgb;
        linear *= u_trellis ? to_linear(texel.rgb) : texel.rgb;
        if (u_alpha != 0) { alpha = v_color.a * texel.a; }
    } else if (u_alpha != 0) {
        alpha = v_color.a;
    }
    if (u_alpha == 1) {
        if (alpha < u_cutoff) { discard; }
        alpha = 1.0;
    }
    vec3 rgb = albedo;
    if (u_lit) {
        vec3 n = u_flat ? cross(dFdx(v_pos_cam), dFdy(v_pos_cam)) : v_normal_cam;
        n = length(n) > 0.0 ? normalize(n) : vec3(0.0, 0.0, 1.0);
        vec3 to_eye = normalize(-v_pos_cam);
        if (dot(n, to_eye) < 0.0) { n = -n; }
        if (u_trellis) {
            vec3 to_light = u_point_pos - v_pos_cam;
            float d2 = dot(to_light, to_light);
            float e = u_trellis_gains.x + u_trellis_gains.y * top_light(dot(n, u_up))
                      + u_trellis_gains.z * max(dot(n, to_light) * inversesqrt(d2), 0.0) / d2;
            // a rough dielectric coat (Principled BSDF's specular) mirrors the bright top light in
            // white, more at grazing angles (Schlick's Fresnel, F0 = 0.04)
            float fresnel = 0.04 + 0.96 * pow(1.0 - clamp(dot(n, to_eye), 0.0, 1.0), 5.0);
            float gloss = u_trellis_gains.w * fresnel * top_light(dot(reflect(-to_eye, n), u_up));
            rgb = tone(linear * e + vec3(gloss));
        } else {
            float light = u_ambient + u_key * max(dot(n, u_key_dir), 0.0) + u_fill * max(dot(n, u_fill_dir), 0.0);
            rgb = albedo * light;
        }
    }
    if (u_alpha == 2) {
        alpha = clamp(alpha, 0.0, 1.0);
        f_color = vec4(clamp(rgb, 0.0, 1.0) * alpha, alpha);
    } else {
        f_color = vec4(clamp(rgb, 0.0, 1.0), 1.0);
    }
}
"""

ALPHA_MODES = {"OPAQUE": 0, "MASK": 1, "BLEND": 2}


def fragment_shader(use_tex: bool, lit: bool, flat: bool, alpha: int = 0, trellis: bool = False) -> str:
    """The fragment shader with its switches fixed at compile time (``alpha``: 0 opaque,
    1 masked, 2 blended; the opaque variant is the shader drawn before alpha modes existed;
    ``trellis``: the ``--lighting trellis`` shading, :class:`TrellisLighting`).

    Why variants instead of uniform switches: llvmpipe then compiles only the path a primitive
    takes (no texture fetch for an untextured mesh, no derivative normals for a smooth one).
    Measured on real meshes, 8 views at 512²: 5-17% less render time, identical pixels.
    """
    def glsl(flag: bool) -> str:
        return "true" if flag else "false"

    return (FRAGMENT_SHADER.replace("USE_TEX", glsl(use_tex)).replace("= LIT", "= " + glsl(lit))
            .replace("= FLAT", "= " + glsl(flat and lit)).replace("= ALPHA", f"= {int(alpha)}")
            .replace("= TRELLIS", "= " + glsl(trellis and lit)).replace("TOP_SAMPLES", str(TOP_SAMPLES)))


# lights in camera space (x right, y up, z toward the viewer): a key from upper left-front,
# a weak fill from the right; ambient keeps faces turned away from both readable.
AMBIENT = 0.45
KEY = 0.5
FILL = 0.15
KEY_DIR = np.array([-0.4, 0.6, 0.7]) / np.linalg.norm([-0.4, 0.6, 0.7])
FILL_DIR = np.array([0.6, 0.1, 0.5]) / np.linalg.norm([0.6, 0.1, 0.5])

# the light on a surface facing the camera (n = +z in camera space): what glTF lines and points get
FACING = float(AMBIENT + KEY * max(KEY_DIR[2], 0.0) + FILL * max(FILL_DIR[2], 0.0))

# -- the trellis preset (``--lighting trellis``): TRELLIS' Blender scene as far as a rasteriser goes.
# TRELLIS' lights are fixed in the world (Blender, Z up); in gencritic's Y-up world the 1000 W point
# light at Blender (4, 1, 6) is at (4, 6, -1) and the 10000 W area light is 10 above the asset,
# 25 m square (0.25 m scaled 100), facing down. Its 1000 W twin at z = -10 faces down too, away from
# the asset, and lights nothing (checked in Cycles: docs/rendering.md). Shading is in linear light:
# albedo x (ambient + top x profile(n . up) + point x cos / d^2) + gloss x profile(r . up), r the
# mirrored view direction (the white reflection of the top light in glossy materials), then a fit
# of Filmic's curve. No shadows, no inter-reflection, one gloss for every material: the gap this
# leaves is measured per view by
# benchmarks/bench_trellis_gap.py; the gains are fitted to Cycles renders by benchmarks/fit_trellis_gl.py.
TRELLIS_GL_VERSION = "trellis-gl-1"  # bump when the trellis variant's pixels change
TOP_SAMPLES = 33
TRELLIS_POINT_LIGHT = np.array([4.0, 6.0, -1.0])
TRELLIS_TOP_LIGHT = (10.0, 25.0)  # height above the asset's centre, side of the square


@dataclass(frozen=True)
class TrellisLighting:
    """The rasteriser's stand-in for TRELLIS' scene: four gains (fitted) and a tone curve (fitted).

    ``tone`` are the coefficients (t³, t², t, 1) of p(t), t = log2(linear radiance), with display
    value 1 / (1 + exp(-p)): Blender's Filmic view transform (base contrast, sRGB display) sampled
    on a grey ramp and fitted (rms 0.003, max 0.011 below its white point).
    """

    ambient: float
    top: float
    point: float
    gloss: float = 0.0
    tone: tuple[float, float, float, float] = (0.002582, 0.034204, 0.663465, 1.460018)


TRELLIS_LIGHTING = TrellisLighting(ambient=0.3703, top=0.9974, point=58.7415, gloss=2.4771)


@functools.lru_cache(maxsize=1)
def top_light_profile() -> tuple[float, ...]:
    """Irradiance of the overhead square light on a surface at the origin, against cos(normal, up)
    from -1 to 1 (``TOP_SAMPLES`` values, 1 when facing it), averaged over the normal's azimuth.

    Why a table: the light is large (it spans 51° from the zenith), so a surface tilted past 39°
    sees part of it below its horizon and a clamped cosine is wrong there. Integrated once by
    the midpoint rule over the square (cosines at both ends, inverse square), exactly enough
    for a shading term (128² cells, 16 azimuths).
    """
    height, side = TRELLIS_TOP_LIGHT
    cells = 128
    u = (np.arange(cells) + 0.5) / cells * side - side / 2
    gx, gz = np.meshgrid(u, u)
    points = np.stack([gx.ravel(), np.full(gx.size, height), gz.ravel()], axis=1)
    dist = np.linalg.norm(points, axis=1)
    omega = points / dist[:, None]
    weight = (height / dist) / dist ** 2  # the light's cosine (it faces down) over distance squared
    values = []
    for c in np.linspace(-1.0, 1.0, TOP_SAMPLES):
        s_ = np.sqrt(max(0.0, 1.0 - c * c))
        total = 0.0
        for phi in np.linspace(0.0, 2 * np.pi, 16, endpoint=False):
            normal = np.array([s_ * np.cos(phi), c, s_ * np.sin(phi)])
            total += float((np.maximum(omega @ normal, 0.0) * weight).sum())
        values.append(total / 16)
    top = values[-1]
    return tuple(v / top for v in values)


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


GL_REPEAT, GL_CLAMP_TO_EDGE, GL_MIRRORED_REPEAT = 10497, 33071, 33648


@functools.lru_cache(maxsize=1)
def _gl_tex_parameteri() -> Callable[[int, int, int], None] | None:
    """``glTexParameteri`` of the current context's driver (through eglGetProcAddress, as
    :func:`_gl_finish_releasing_the_gil`): moderngl sets repeat or clamp, not mirrored repeat."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("EGL") or "libEGL.so.1"
    try:
        egl = ctypes.CDLL(name)
        egl.eglGetProcAddress.restype = ctypes.c_void_p
        egl.eglGetProcAddress.argtypes = [ctypes.c_char_p]
        address = egl.eglGetProcAddress(b"glTexParameteri")
    except (OSError, AttributeError):
        return None
    return ctypes.CFUNCTYPE(None, ctypes.c_uint, ctypes.c_uint, ctypes.c_int)(address) if address else None


def _set_wrap(tex: Any, wrap: Sequence[int]) -> None:
    """Set a texture's wrap modes (GL/glTF numbers) on the bound context."""
    parameteri = _gl_tex_parameteri()
    if parameteri is None:
        raise RenderContextError("glTexParameteri is not available from EGL: cannot set a texture's wrap mode")
    tex.use(0)
    for pname, mode in zip((0x2802, 0x2803), wrap, strict=True):  # GL_TEXTURE_WRAP_S, GL_TEXTURE_WRAP_T
        parameteri(0x0DE1, pname, int(mode) if int(mode) in (GL_REPEAT, GL_CLAMP_TO_EDGE, GL_MIRRORED_REPEAT)
                   else GL_REPEAT)  # GL_TEXTURE_2D


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
        self._programs: dict[tuple[bool, bool, bool, int, bool], Any] = {}
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
               samples: int = 0, lit: bool = True, point_size: float = 4.0, cull_closed: bool = False,
               trellis: bool = False, trellis_lighting: TrellisLighting | None = None) -> np.ndarray:
        """Premultiplied RGBA uint8 views, shape (V, H, W, 4), row 0 = image top.

        ``trellis``: TRELLIS' world-fixed lights and Filmic-like curve (:class:`TrellisLighting`,
        ``TRELLIS_LIGHTING`` unless ``trellis_lighting`` is given: the fit script's way in).

        ``cull_closed``: skip back faces of closed, consistently wound primitives. Only valid when
        every camera is outside the geometry (the caller checks); halves the triangles rasterised.
        """
        samples = min(samples, self.max_samples) if samples > 1 else 0
        per_row = max(1, min(len(cameras), self.max_size // resolution))
        out = []
        uploads = self._upload(mesh, lit, trellis)
        lighting = (trellis_lighting or TRELLIS_LIGHTING) if trellis else None
        try:
            for start in range(0, len(cameras), per_row * max(1, self.max_size // resolution)):
                chunk = cameras[start:start + per_row * max(1, self.max_size // resolution)]
                out.append(self._render_chunk(uploads, model, chunk, resolution, samples, point_size, per_row,
                                              cull_closed, lighting))
        finally:
            for vao, buffers, tex, _ in uploads:
                vao.release()
                for b in buffers:
                    b.release()
                if tex is not None:
                    tex.release()
        return np.concatenate(out, axis=0)

    def program(self, use_tex: bool, lit: bool, flat: bool, alpha: int = 0, trellis: bool = False) -> Any:
        """This context's compiled variant (compiled on first use, at most 36 per context)."""
        key = (use_tex, lit, flat and lit, alpha, trellis and lit)
        if key not in self._programs:
            self._programs[key] = self.ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=fragment_shader(*key))
        return self._programs[key]

    def _upload(self, mesh: MeshData, lit: bool = True, trellis: bool = False) -> list[tuple[Any, list[Any], Any, Any]]:
        ctx = self.ctx
        uploads = []
        for prim in mesh.primitives:
            n = prim.count
            normals = prim.normals if prim.normals is not None else np.zeros((n, 3), np.float32)
            uvs = prim.uvs if prim.uvs is not None else np.zeros((n, 2), np.float32)
            colors = prim.colors
            if lit and prim.facing_light and not prim.unlit:  # glTF lines and points: lit as if facing the camera
                colors = colors * np.array([FACING, FACING, FACING, 1.0], np.float32)
            buffers = [ctx.buffer(np.ascontiguousarray(a, dtype=np.float32).tobytes())
                       for a in (prim.positions, normals, colors, uvs)]
            content = [(buffers[0], "3f", "in_pos"), (buffers[1], "3f", "in_normal"),
                       (buffers[2], "4f", "in_color"), (buffers[3], "2f", "in_uv")]
            points = prim.mode == "points"
            flat = prim.mode == "triangles" and prim.normals is None
            alpha = ALPHA_MODES.get(prim.alpha_mode, 0) if prim.mode == "triangles" else 0
            # points and lines have no normals: albedo, as unlit materials; a variant drops the inputs it
            # does not read (skip_errors)
            shaded = lit and prim.mode == "triangles" and not prim.unlit
            program = self.program(prim.texture is not None, shaded, flat, alpha, trellis)
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
                if tuple(prim.texture_wrap) != (GL_REPEAT, GL_REPEAT):  # a glTF sampler's clamp or mirror
                    _set_wrap(tex, prim.texture_wrap)
            mode = self._mgl.POINTS if points else self._mgl.LINES if prim.mode == "lines" else self._mgl.TRIANGLES
            sort = (prim.positions.astype(np.float64), prim.indices.reshape(-1, 3), ibo) \
                if alpha == 2 and prim.indices is not None else None
            cutoff = prim.alpha_cutoff if alpha == 1 else None  # only the masked variant reads it
            uploads.append((vao, buffers, tex, (mode, program, prim.orientation, sort, cutoff)))
        return uploads

    def _render_chunk(self, uploads: list[tuple[Any, list[Any], Any, Any]], model: np.ndarray,
                      cameras: Sequence[Camera], res: int, samples: int, point_size: float,
                      per_row: int, cull_closed: bool = False,
                      trellis: TrellisLighting | None = None) -> np.ndarray:
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
            if trellis is not None:
                _set_uniform(prog, "u_trellis_gains", (trellis.ambient, trellis.top, trellis.point, trellis.gloss))
                _set_uniform(prog, "u_tone", tuple(float(x) for x in trellis.tone))
                _set_uniform(prog, "u_top_profile", top_light_profile())
        ctx.line_width = float(point_size)
        opaque = [u for u in uploads if u[3][3] is None]
        blended = [u for u in uploads if u[3][3] is not None]
        for i, cam in enumerate(cameras):
            col, row = i % cols, i // cols
            ctx.viewport = (col * res, (rows - 1 - row) * res, res, res)  # flipped at readback
            view_matrix = cam.view_matrix()
            view = view_matrix.astype("f4").T.tobytes()
            proj = cam.projection_matrix().astype("f4").T.tobytes()
            up_cam = tuple(float(x) for x in view_matrix[:3, :3] @ np.array([0.0, 1.0, 0.0]))
            light_cam = tuple(float(x) for x in view_matrix[:3, :3] @ TRELLIS_POINT_LIGHT + view_matrix[:3, 3])
            for prog in programs:
                _set_uniform(prog, "u_view", view)
                _set_uniform(prog, "u_proj", proj)
                if trellis is not None:  # the lights stay in the world: camera space differs per view
                    _set_uniform(prog, "u_up", up_cam)
                    _set_uniform(prog, "u_point_pos", light_cam)
            for vao, _, tex, (mode, prog, orientation, _sort, cutoff) in opaque:
                if cull_closed and orientation != 0:  # back faces of a closed surface are never visible
                    ctx.enable(self._mgl.CULL_FACE)
                    ctx.front_face = "ccw" if orientation > 0 else "cw"
                else:
                    ctx.disable(self._mgl.CULL_FACE)
                if tex is not None:  # untextured variants never sample
                    tex.use(0)
                if cutoff is not None:
                    _set_uniform(prog, "u_cutoff", float(cutoff))
                vao.render(mode)
            if blended:
                self._draw_blended(blended, model, cam, cull_closed, draw)
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


    def _draw_blended(self, blended: list[tuple[Any, list[Any], Any, Any]], model: np.ndarray, cam: Camera,
                      cull_closed: bool, draw: Any) -> None:
        """Blended primitives after everything opaque, far to near: primitives by their mean depth,
        each one's triangles by their centroid's depth (stable sorts, so the order is the same on
        every run). Depth is tested, not written. Exact unless transparent triangles intersect or a
        primitive's triangles interleave in depth with another's (named in the row's warnings)."""
        ctx = self.ctx
        to_camera = cam.view_matrix() @ model
        order = []
        for item in blended:
            positions, triangles, _ = item[3][3]
            z = positions @ to_camera[2, :3] + to_camera[2, 3]  # camera looks along -z: more negative is farther
            depth = z[triangles].mean(axis=1)
            order.append((float(depth.mean()) if len(depth) else 0.0, item, depth))
        order.sort(key=lambda entry: entry[0])  # stable: ties keep the file's order
        ctx.enable(self._mgl.BLEND)
        ctx.blend_func = (self._mgl.ONE, self._mgl.ONE_MINUS_SRC_ALPHA)  # premultiplied colour and coverage
        draw.depth_mask = False
        try:
            for _, (vao, _, tex, (mode, _prog, orientation, (_, triangles, ibo), _cutoff)), depth in order:
                far_first = np.argsort(depth, kind="stable")
                ibo.write(np.ascontiguousarray(triangles[far_first].reshape(-1), dtype=np.uint32).tobytes())
                if cull_closed and orientation != 0:
                    ctx.enable(self._mgl.CULL_FACE)
                    ctx.front_face = "ccw" if orientation > 0 else "cw"
                else:
                    ctx.disable(self._mgl.CULL_FACE)
                if tex is not None:
                    tex.use(0)
                vao.render(mode)
        finally:
            draw.depth_mask = True
            ctx.disable(self._mgl.BLEND)


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
