"""Headless mesh rendering for the demo: overlays on the input photo and a side view.

Conventions (shared by every function here):

* Cameras are OpenCV pinholes: x right, y down, z forward; vertices are in metres in the camera frame.
* Pixel ``(row r, column c)`` has its centre at image coordinates ``(u, v) = (c, r)``, so a vertex projects to
  ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` exactly as ``cv2.projectPoints`` would.
* Colours are RGB everywhere (the reference mixed a RGB render into a BGR canvas; we never touch BGR).
* There is no far plane: a person far from the camera is never clipped (the reference clipped at 100 m).
  Faces with a vertex at ``z <= near`` are skipped by the rasterizer (clipped by GL), not drawn mirrored.

Two backends produce the same ``(depth, face_index)`` buffers, and shading is always done in numpy, so both
backends give the same pictures up to edge pixels:

* ``'raster'``: a vectorised numpy z-buffer (always available);
* ``'egl'``: moderngl on a headless EGL context (``pip install hap3d[render]``), faster on large images.

``'auto'`` picks ``'egl'`` when a context can be created, else ``'raster'``.
"""

from __future__ import annotations

import colorsys
import threading
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from hap3d.utils import Hap3dError

Mesh = tuple[np.ndarray, np.ndarray, Any]
"""``(vertices (V,3) metres, faces (F,3) int, colour)``; colour is RGB floats in [0, 1] or integers in 0..255."""

_FRAGMENT_BUDGET = 1 << 20  # candidate pixels evaluated per vectorised chunk (a few tens of MB of temporaries)


@dataclass(frozen=True)
class Camera:
    """OpenCV pinhole intrinsics in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float

    def project(self, vertices: np.ndarray) -> np.ndarray:
        """(N,3) camera-frame points -> (N,2) pixel coordinates (undefined for z <= 0)."""
        v = np.asarray(vertices, dtype=np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.stack([self.fx * v[:, 0] / v[:, 2] + self.cx, self.fy * v[:, 1] / v[:, 2] + self.cy], 1)


def person_colour(index: int) -> tuple[float, float, float]:
    """A deterministic, well-separated RGB colour for person ``index``: golden-ratio hues, s=0.5, v=1 (reference)."""
    return colorsys.hsv_to_rgb((0.13 + 0.618033988749895 * index) % 1.0, 0.5, 1.0)


# ----------------------------------------------------------------------------------------------------------------
# numpy rasterizer


def _bucket_size(n: np.ndarray) -> np.ndarray:
    """Round bounding-box sizes up (exact to 8 px, then 4 steps per octave) so faces batch into few grid shapes.

    Coarser rounding means fewer groups but more wasted candidate pixels; this keeps waste under ~25 % per axis.
    """
    n = np.maximum(n, 1)
    quantum = np.maximum(1, (1 << np.floor(np.log2(np.maximum(n - 1, 1))).astype(np.int64)) // 4)
    return np.where(n <= 8, n, -(-n // quantum) * quantum)


def rasterize(
    vertices: np.ndarray,
    faces: np.ndarray,
    camera: Camera,
    height: int,
    width: int,
    near: float = 0.01,
) -> tuple[np.ndarray, np.ndarray]:
    """Z-buffer a triangle mesh; the nearest face wins at every pixel centre.

    Faces are grouped by their (rounded) pixel bounding-box size, and each group is evaluated as one
    dense ``(faces, bbox_h, bbox_w)`` block of edge functions, so the Python loop runs over (at most a few
    hundred) groups, never over pixels or faces. Depth is the camera-frame z in metres, interpolated
    perspective-correctly (exact on planar faces). Faces with any vertex at ``z <= near`` are skipped; there is
    no far clip.

    Returns ``depth`` (H,W) float32 (``inf`` where empty) and ``face_index`` (H,W) int32 (-1 where empty);
    :func:`barycentrics` gives the interpolation weights when they are needed.
    """
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    H, W = int(height), int(width)
    if len(f) == 0 or H <= 0 or W <= 0:
        return _empty_buffers(H, W)

    uv = camera.project(v)
    fz = v[f, 2]  # (F,3)
    fu, fv = uv[f, 0], uv[f, 1]
    area = (fu[:, 1] - fu[:, 0]) * (fv[:, 2] - fv[:, 0]) - (fv[:, 1] - fv[:, 0]) * (fu[:, 2] - fu[:, 0])
    with np.errstate(invalid="ignore"):
        x0 = np.clip(np.ceil(fu.min(1)), 0, W)
        x1 = np.clip(np.floor(fu.max(1)), -1, W - 1)
        y0 = np.clip(np.ceil(fv.min(1)), 0, H)
        y1 = np.clip(np.floor(fv.max(1)), -1, H - 1)
        keep = (fz > near).all(1) & np.isfinite(area) & (np.abs(area) > 1e-12) & (x1 >= x0) & (y1 >= y0)
    ids = np.flatnonzero(keep)
    if len(ids) == 0:
        return _empty_buffers(H, W)

    # Barycentric l_i(u, v) = a_i * u + b_i * v + c_i, normalised by the signed area so orientation does not matter.
    u0, u1, u2 = (fu[ids, k] for k in range(3))
    w0, w1, w2 = (fv[ids, k] for k in range(3))
    inv = 1.0 / area[ids]
    coef = np.stack(
        [
            np.stack([(w1 - w2) * inv, (u2 - u1) * inv, (u1 * w2 - u2 * w1) * inv], 1),
            np.stack([(w2 - w0) * inv, (u0 - u2) * inv, (u2 * w0 - u0 * w2) * inv], 1),
        ],
        1,
    )  # (n, 2 edges, 3); the third weight is 1 - l0 - l1
    # 1/z is affine in screen space: 1/z = iz2 + l0 (iz0 - iz2) + l1 (iz1 - iz2).
    iz = 1.0 / fz[ids]  # (n,3)
    diz0, diz1, iz2 = iz[:, 0] - iz[:, 2], iz[:, 1] - iz[:, 2], iz[:, 2]
    bx0, by0 = x0[ids].astype(np.int64), y0[ids].astype(np.int64)
    bw, bh = x1[ids].astype(np.int64) - bx0 + 1, y1[ids].astype(np.int64) - by0 + 1
    pw, ph = _bucket_size(bw), _bucket_size(bh)

    frag_pix, frag_z, frag_face = [], [], []
    key = pw * (1 << 32) + ph
    order = np.argsort(key, kind="stable")
    bounds = np.flatnonzero(np.diff(key[order])) + 1
    for group in np.split(order, bounds):
        gw, gh = int(pw[group[0]]), int(ph[group[0]])
        step = max(1, _FRAGMENT_BUDGET // (gw * gh))
        for s in range(0, len(group), step):
            g = group[s : s + step]
            # Pixel-centre coordinates past a face's own box are NaN, which fails every comparison below.
            px = np.where(np.arange(gw) < bw[g, None], bx0[g, None] + np.arange(gw), np.nan)  # (n, gw)
            py = np.where(np.arange(gh) < bh[g, None], by0[g, None] + np.arange(gh), np.nan)  # (n, gh)
            c = coef[g]
            l0 = (c[:, 0, 1, None] * py + c[:, 0, 2, None])[:, :, None] + (c[:, 0, 0, None] * px)[:, None, :]
            l1 = (c[:, 1, 1, None] * py + c[:, 1, 2, None])[:, :, None] + (c[:, 1, 0, None] * px)[:, None, :]
            with np.errstate(invalid="ignore"):
                inside = l0 >= 0
                inside &= l1 >= 0
                inside &= l0 + l1 <= 1
            n_i, r_i, c_i = np.nonzero(inside)
            if len(n_i) == 0:
                continue
            gn = g[n_i]
            frag_z.append(1.0 / (iz2[gn] + l0[n_i, r_i, c_i] * diz0[gn] + l1[n_i, r_i, c_i] * diz1[gn]))
            frag_pix.append((by0[gn] + r_i) * W + bx0[gn] + c_i)
            frag_face.append(ids[gn])

    if not frag_pix:
        return _empty_buffers(H, W)
    pix = np.concatenate(frag_pix)
    z = np.concatenate(frag_z)
    depth = np.full(H * W, np.inf)
    np.minimum.at(depth, pix, z)
    win = np.flatnonzero(z <= depth[pix])
    face_index = np.full(H * W, -1, dtype=np.int32)
    face_index[pix[win]] = np.concatenate(frag_face)[win]  # a tie (shared edge, equal depth) goes to one face
    return depth.astype(np.float32).reshape(H, W), face_index.reshape(H, W)


def _empty_buffers(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    return (
        np.full((H, W), np.inf, dtype=np.float32),
        np.full((H, W), -1, dtype=np.int32),
    )


def barycentrics(vertices: np.ndarray, faces: np.ndarray, camera: Camera, face_index: np.ndarray) -> np.ndarray:
    """Perspective-correct barycentric weights (H,W,3) float32 of the winning face at each covered pixel centre.

    Kept out of the rasterizers because shading needs only ``face_index``; computing weights for the covered
    pixels afterwards costs less than carrying them through every candidate fragment. 0 where empty.
    """
    H, W = face_index.shape
    bary = np.zeros((H, W, 3), dtype=np.float32)
    rows, cols = np.nonzero(face_index >= 0)
    if len(rows) == 0:
        return bary
    tri = np.asarray(faces, dtype=np.int64)[face_index[rows, cols]]
    v = np.asarray(vertices, dtype=np.float64)
    uv = camera.project(v)[tri]  # (n,3,2)
    e1, e2 = uv[:, 1] - uv[:, 0], uv[:, 2] - uv[:, 0]
    d = np.stack([cols, rows], 1) - uv[:, 0]
    area = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    l1 = (d[:, 0] * e2[:, 1] - d[:, 1] * e2[:, 0]) / area
    l2 = (e1[:, 0] * d[:, 1] - e1[:, 1] * d[:, 0]) / area
    w = np.stack([1.0 - l1 - l2, l1, l2], 1) / v[tri, 2]
    bary[rows, cols] = w / w.sum(1, keepdims=True)
    return bary


# ----------------------------------------------------------------------------------------------------------------
# moderngl / EGL backend

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
    """The GL twin of :func:`rasterize`: same conventions and outputs, drawn by moderngl on EGL.

    Faces crossing the near plane are clipped by GL instead of skipped. Depth is tested in a 24-bit buffer with
    an infinite far plane (about 1 mm resolution at 10 m); the returned depth is the interpolated camera z.
    """
    H, W = int(height), int(width)
    f = np.ascontiguousarray(np.asarray(faces, dtype=np.uint32).reshape(-1, 3))
    if len(f) == 0 or H <= 0 or W <= 0:
        return _empty_buffers(H, W)
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


# ----------------------------------------------------------------------------------------------------------------
# shading and compositing


def _rgb01(colour: Any) -> np.ndarray:
    """RGB as floats in [0, 1]; integer input is read as 0..255."""
    c = np.asarray(colour)
    c = c / 255.0 if c.dtype.kind in "iu" else c.astype(np.float64)
    if c.shape[-1] != 3:
        raise ValueError(f"a colour must be RGB (3 values), got shape {c.shape}")
    return c


def face_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Unit face normals (F,3), zero for degenerate faces."""
    v = np.asarray(vertices, dtype=np.float64)
    tri = v[np.asarray(faces, dtype=np.int64)]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    norm = np.linalg.norm(n, axis=1, keepdims=True)
    return np.divide(n, norm, out=np.zeros_like(n), where=norm > 0)


def shade(
    vertices: np.ndarray,
    faces: np.ndarray,
    face_index: np.ndarray,
    colours: Any,
    ambient: float = 0.3,
    diffuse: float = 0.7,
) -> tuple[np.ndarray, np.ndarray]:
    """Flat Lambertian shading under a headlight (light along the optical axis) plus ambient.

    ``colours`` is one RGB colour or one per face (F,3). Lighting is two-sided (|n.z|), so open meshes and
    inverted face windings still look lit. Returns ``rgb`` (H,W,3) float32 in [0, 1] (0 where empty) and
    ``alpha`` (H,W) bool coverage.
    """
    alpha = face_index >= 0
    rgb = np.zeros(face_index.shape + (3,), dtype=np.float32)
    hit = face_index[alpha]
    if len(hit) == 0:
        return rgb, alpha
    lambert = np.abs(face_normals(vertices, faces)[hit, 2])
    col = _rgb01(colours)
    col = col[hit] if col.ndim == 2 else col[None]
    rgb[alpha] = np.clip(col * (ambient + diffuse * lambert)[:, None], 0.0, 1.0)
    return rgb, alpha


def _resolve_backend(backend: str) -> str:
    if backend == "auto":
        return "egl" if gl_available() else "raster"
    if backend not in ("raster", "egl"):
        raise ValueError(f"backend must be 'auto', 'raster' or 'egl', got {backend!r}")
    return backend


def _merge(
    meshes: Sequence[Mesh], cameras: Sequence[Camera], target: Camera
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Concatenate meshes into one, re-expressed for ``target`` so all people share one z-buffer.

    A mesh seen by camera i is mapped by ``x' = (fx_i x + (cx_i - cx) z) / fx`` (same for y), ``z' = z``: every
    vertex lands on the same pixel at the same depth, so cross-person occlusion is decided by true depth.
    Returns (vertices for rasterizing, original vertices for normals, faces, per-face colours).
    """
    raster_v, orig_v, all_f, cols = [], [], [], []
    offset = 0
    for (verts, faces, colour), cam in zip(meshes, cameras):
        v = np.asarray(verts, dtype=np.float64).reshape(-1, 3)
        f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
        moved = v.copy()
        moved[:, 0] = (cam.fx * v[:, 0] + (cam.cx - target.cx) * v[:, 2]) / target.fx
        moved[:, 1] = (cam.fy * v[:, 1] + (cam.cy - target.cy) * v[:, 2]) / target.fy
        raster_v.append(moved)
        orig_v.append(v)
        all_f.append(f + offset)
        cols.append(np.broadcast_to(_rgb01(colour), (len(f), 3)))
        offset += len(v)
    return np.concatenate(raster_v), np.concatenate(orig_v), np.concatenate(all_f), np.concatenate(cols)


def _cameras_for(meshes: Sequence[Mesh], camera: Camera | Sequence[Camera]) -> list[Camera]:
    if isinstance(camera, Camera):
        return [camera] * len(meshes)
    cams = list(camera)
    if len(cams) != len(meshes):
        raise ValueError(f"got {len(cams)} cameras for {len(meshes)} meshes")
    return cams


def _render_rgba(
    meshes: Sequence[Mesh],
    cameras: Sequence[Camera],
    target: Camera,
    height: int,
    width: int,
    backend: str,
    ambient: float,
    diffuse: float,
) -> tuple[np.ndarray, np.ndarray]:
    raster_v, orig_v, faces, cols = _merge(meshes, cameras, target)
    draw = rasterize_gl if _resolve_backend(backend) == "egl" else rasterize
    _, face_index = draw(raster_v, faces, target, height, width)
    return shade(orig_v, faces, face_index, cols, ambient, diffuse)


def render_overlay(
    image_rgb: np.ndarray,
    meshes: Sequence[Mesh],
    camera: Camera | Sequence[Camera],
    backend: str = "auto",
    ambient: float = 0.3,
    diffuse: float = 0.7,
) -> np.ndarray:
    """Draw shaded meshes over an RGB photo; pixels no mesh covers are returned byte-identical.

    ``camera`` is one camera for all meshes or one per mesh (the demo's per-person f=5000 cameras with principal
    point at each crop-box centre). Unlike the reference, which pasted people one after another, all people share
    one z-buffer, so nearer people correctly hide farther ones.
    """
    image = np.asarray(image_rgb)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image_rgb must be uint8 (H,W,3), got {image.dtype} {image.shape}")
    out = image.copy()
    if not meshes:
        return out
    cams = _cameras_for(meshes, camera)
    rgb, alpha = _render_rgba(meshes, cams, cams[0], image.shape[0], image.shape[1], backend, ambient, diffuse)
    out[alpha] = np.rint(rgb[alpha] * 255.0).astype(np.uint8)
    return out


def render_side_view(
    meshes: Sequence[Mesh],
    size: int = 512,
    camera: Camera | Sequence[Camera] | None = None,
    angle_deg: float = 90.0,
    background: tuple[int, int, int] = (255, 255, 255),
    backend: str = "auto",
    ambient: float = 0.3,
    diffuse: float = 0.7,
) -> np.ndarray:
    """The scene turned ``angle_deg`` about the vertical (camera y) axis through its centroid, framed to fit.

    With the default +90 deg the scene is seen from the camera's right-hand side (+x): depth runs left to right,
    which shows how far apart people were placed. ``camera`` (one or per mesh) first brings all meshes into one
    frame as :func:`render_overlay` does; without it they are assumed to share a frame already.
    Returns a (size, size, 3) uint8 RGB image on a plain ``background``.
    """
    size = int(size)
    canvas = np.empty((size, size, 3), dtype=np.uint8)
    canvas[:] = np.asarray(background, dtype=np.uint8)
    if not meshes:
        return canvas
    cams = _cameras_for(meshes, camera if camera is not None else Camera(1.0, 1.0, 0.0, 0.0))
    shared, orig_v, faces, cols = _merge(meshes, cams, cams[0])  # all people in the first camera's frame

    a = np.deg2rad(angle_deg)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    turned = (shared - shared.mean(0)) @ rot.T
    turned[:, :2] -= (turned[:, :2].max(0) + turned[:, :2].min(0)) / 2  # centre the bounding box on the axis

    # Smallest distance at which every vertex falls within 90 % of the half-width (focal = size, ~53 deg fov).
    focal, half = float(size), 0.45 * size
    dist = np.max(focal * np.abs(turned[:, :2]).max(1) / half - turned[:, 2])
    dist = max(dist, float(np.max(-turned[:, 2])) + 0.05)
    turned[:, 2] += dist
    view = Camera(focal, focal, (size - 1) / 2, (size - 1) / 2)

    draw = rasterize_gl if _resolve_backend(backend) == "egl" else rasterize
    _, face_index = draw(turned, faces, view, size, size)
    rgb, alpha = shade(orig_v @ rot.T, faces, face_index, cols, ambient, diffuse)  # normals from rigid frames
    canvas[alpha] = np.rint(rgb[alpha] * 255.0).astype(np.uint8)
    return canvas
