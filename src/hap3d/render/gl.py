"""The GL rasterizer (the ``'egl'`` backend): moderngl on a headless EGL context, faster on large images.

Optional: it needs ``pip install hap3d[render]`` (moderngl) and Mesa EGL. When either is missing,
:func:`gl_available` is false and the ``'auto'`` backend falls back to :mod:`hap3d.render.raster`.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np

from hap3d.render.camera import Camera
from hap3d.render.raster import empty_buffers
from hap3d.utils import Hap3dError

_VERTEX_SHADER = """
#version 330
uniform vec4 proj_xy;   // clip.x = proj_xy.x * x + proj_xy.y * z ; clip.y = proj_xy.z * y + proj_xy.w * z
uniform float near;
in vec3 in_pos;
out float cam_z;
void main() {
    cam_z = in_pos.z;
    // w = z and z_clip = z - 2 near: an infinite far plane, so nothing is ever far-clipped.
    gl_Position = vec4(proj_xy.x * in_pos.x + proj_xy.y * in_pos.z,
                       proj_xy.z * in_pos.y + proj_xy.w * in_pos.z,
                       in_pos.z - 2.0 * near, in_pos.z);
}
"""

_FRAGMENT_SHADER = """
#version 330
in float cam_z;
out vec2 out_id_z;
void main() {
    out_id_z = vec2(float(gl_PrimitiveID + 1), cam_z);  // exact face ids up to 2^24 faces
}
"""


class _GLState:
    """One lazily created EGL context per process; creation costs ~0.4 s, rendering a few ms."""

    lock = threading.Lock()
    ctx: Any = None
    program: Any = None
    error: str | None = None


def _gl() -> tuple[Any, Any]:
    """The shared moderngl context and program, or raise ``Hap3dError`` saying why GL is unavailable."""
    with _GLState.lock:
        if _GLState.ctx is None and _GLState.error is None:
            try:
                import moderngl

                ctx = moderngl.create_standalone_context(backend="egl")
                _GLState.program = ctx.program(vertex_shader=_VERTEX_SHADER, fragment_shader=_FRAGMENT_SHADER)
                _GLState.ctx = ctx
            except Exception as exc:  # ImportError, missing libEGL, no device: all mean "use the rasterizer"
                _GLState.error = f"{type(exc).__name__}: {exc}"
        if _GLState.error is not None:
            raise Hap3dError(
                f"EGL rendering is unavailable ({_GLState.error}); install hap3d[render] (moderngl) and Mesa EGL, "
                "or use backend='raster'"
            )
        return _GLState.ctx, _GLState.program


def gl_available() -> bool:
    """Whether ``backend='egl'`` works in this process (creates the context on first call)."""
    try:
        _gl()
    except Hap3dError:
        return False
    return True


def rasterize_gl(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    height: int,
    width: int,
    near: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """The GL twin of :func:`hap3d.render.raster.rasterize`: same conventions and outputs, drawn by moderngl on EGL.

    Faces crossing the near plane are clipped by GL instead of skipped. Depth is tested in a 24-bit buffer with
    an infinite far plane (about 1 mm resolution at 10 m); the returned depth is the interpolated camera z.
    """
    H, W = int(height), int(width)
    f = np.ascontiguousarray(np.asarray(faces, dtype=np.uint32).reshape(-1, 3))
    if len(f) == 0 or H <= 0 or W <= 0:
        return empty_buffers(H, W)
    ctx, prog = _gl()
    v = np.ascontiguousarray(np.asarray(vertices, dtype=np.float32).reshape(-1, 3))
    # Window x = u + 0.5 puts OpenCV pixel centres (integer u) on GL pixel centres; window row v is read back as
    # array row v, so no flip is needed (triangle winding is irrelevant: no culling).
    proj = (2 * camera.fx / W, 2 * (camera.cx + 0.5) / W - 1, 2 * camera.fy / H, 2 * (camera.cy + 0.5) / H - 1)
    with _GLState.lock:
        prog["proj_xy"].value = proj
        prog["near"].value = float(near)
        colour = ctx.renderbuffer((W, H), components=2, dtype="f4")
        depth_rb = ctx.depth_renderbuffer((W, H))
        fbo = ctx.framebuffer(color_attachments=[colour], depth_attachment=depth_rb)
        vbo, ibo = ctx.buffer(v.tobytes()), ctx.buffer(f.tobytes())
        vao = ctx.vertex_array(prog, [(vbo, "3f", "in_pos")], index_buffer=ibo, index_element_size=4)
        try:
            fbo.use()
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            ctx.enable(ctx.DEPTH_TEST)
            vao.render()
            data = np.frombuffer(fbo.read(components=2, dtype="f4"), dtype=np.float32).reshape(H, W, 2)
        finally:
            for obj in (vao, vbo, ibo, fbo, colour, depth_rb):
                obj.release()
    face_index = np.rint(data[..., 0]).astype(np.int32) - 1
    depth = np.where(face_index >= 0, data[..., 1], np.inf).astype(np.float32)
    return depth, face_index

