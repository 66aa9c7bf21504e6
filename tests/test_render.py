"""The headless renderer: rasterizer geometry against closed-form answers, compositing, backends."""

from __future__ import annotations

import numpy as np
import pytest
import trimesh

from hap3d.render import (
    Camera,
    barycentrics,
    gl_available,
    person_colour,
    rasterize,
    rasterize_gl,
    render_overlay,
    render_side_view,
    shade,
)

H, W = 240, 320
CAM = Camera(fx=500.0, fy=520.0, cx=161.3, cy=118.6)  # off-centre, fx != fy: catches axis mix-ups


def sphere(radius: float = 0.5, centre=(0.0, 0.0, 5.0)) -> tuple[np.ndarray, np.ndarray]:
    m = trimesh.creation.icosphere(subdivisions=4, radius=radius)
    return np.asarray(m.vertices) + centre, np.asarray(m.faces)


def quad(x0: float, x1: float, y0: float, y1: float, z) -> tuple[np.ndarray, np.ndarray]:
    """A rectangle in x/y; ``z`` maps (x, y) to depth so planes can be tilted."""
    xy = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]])
    v = np.column_stack([xy, [z(x, y) for x, y in xy]])
    return v, np.array([[0, 1, 2], [0, 2, 3]])


def pixel_grid() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:H, 0:W]
    return cols.astype(np.float64), rows.astype(np.float64)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_sphere_silhouette_is_the_analytic_disc():
    R, d = 0.5, 5.0
    v, f = sphere(R, (0.0, 0.0, d))
    depth, face_index = rasterize(v, f, CAM, H, W)
    bary = barycentrics(v, f, CAM, face_index)
    # A centred sphere's silhouette is the ellipse of the tangent cone: radius f * R / sqrt(d^2 - R^2) per axis.
    u, w = pixel_grid()
    k = R / np.sqrt(d * d - R * R)
    disc = ((u - CAM.cx) / (CAM.fx * k)) ** 2 + ((w - CAM.cy) / (CAM.fy * k)) ** 2 <= 1
    assert iou(face_index >= 0, disc) >= 0.97
    hit = face_index >= 0
    assert np.all(np.isinf(depth[~hit])) and np.all(bary[~hit] == 0)
    assert depth[hit].min() >= d - R - 1e-6 and depth[hit].max() <= d
    assert np.allclose(bary[hit].sum(-1), 1, atol=1e-5) and bary[hit].min() >= -1e-5


def test_depth_and_barycentrics_on_a_tilted_plane_are_exact():
    slope, z0 = 0.5, 2.0
    v, f = quad(-0.6, 0.6, -0.4, 0.4, lambda x, y: z0 + slope * x)
    depth, face_index = rasterize(v, f, CAM, H, W)
    bary = barycentrics(v, f, CAM, face_index)
    hit = face_index >= 0
    assert hit.sum() > 0.3 * H * W
    # The pixel's ray (a, b, 1) t meets z = z0 + slope x at t = z0 / (1 - slope a).
    u, w = pixel_grid()
    a, b = (u - CAM.cx) / CAM.fx, (w - CAM.cy) / CAM.fy
    t = z0 / (1 - slope * a)
    np.testing.assert_allclose(depth[hit], t[hit], rtol=1e-6)
    # Perspective-correct barycentrics reproduce the 3D point on the ray.
    point = np.einsum("nk,nkc->nc", bary[hit].astype(np.float64), v[f[face_index[hit]]])
    np.testing.assert_allclose(point, np.column_stack([a[hit] * t[hit], b[hit] * t[hit], t[hit]]), atol=1e-5)


def test_nearest_mesh_wins_regardless_of_order():
    near_v, near_f = quad(-0.3, 0.1, -0.3, 0.1, lambda x, y: 2.0)
    far_v, far_f = quad(-0.1, 0.4, -0.1, 0.4, lambda x, y: 3.0)
    for first_near in (True, False):
        parts = [(near_v, near_f), (far_v, far_f)] if first_near else [(far_v, far_f), (near_v, near_f)]
        v = np.concatenate([parts[0][0], parts[1][0]])
        f = np.concatenate([parts[0][1], parts[1][1] + 4])
        near_ids = {0, 1} if first_near else {2, 3}
        depth, face_index = rasterize(v, f, CAM, H, W)
        # The centre of the overlap, x = y = 0, projects to the principal point.
        r, c = round(CAM.cy), round(CAM.cx)
        assert face_index[r, c] in near_ids and depth[r, c] == pytest.approx(2.0)
        both = (depth > 0) & np.isfinite(depth)
        assert set(np.unique(depth[both]).round(5)) == {2.0, 3.0}


def test_faces_behind_or_at_the_camera_are_skipped():
    v, f = quad(-1, 1, -1, 1, lambda x, y: -1.0 if x < 0 else 2.0)  # straddles the camera plane
    behind_v, behind_f = quad(-1, 1, -1, 1, lambda x, y: -2.0)
    for verts, faces in ((v, f), (behind_v, behind_f)):
        depth, face_index = rasterize(verts, faces, CAM, H, W)
        assert (face_index < 0).all() and np.isinf(depth).all()


def test_no_far_clipping():
    v, f = sphere(50.0, (0.0, 0.0, 1000.0))  # 1 km away, past the reference's 100 m far plane
    _, face_index = rasterize(v, f, CAM, H, W)
    assert (face_index >= 0).sum() > 100


def test_shade_headlight_and_colour():
    v, f = quad(-0.5, 0.5, -0.5, 0.5, lambda x, y: 2.0)  # faces the camera: full headlight
    _, face_index = rasterize(v, f, CAM, H, W)
    rgb, alpha = shade(v, f, face_index, (1.0, 0.5, 0.0), ambient=0.2, diffuse=0.6)
    assert (alpha == (face_index >= 0)).all()
    np.testing.assert_allclose(rgb[alpha], np.broadcast_to([0.8, 0.4, 0.0], rgb[alpha].shape), atol=1e-6)
    assert (rgb[~alpha] == 0).all()
    tilted_v, _ = quad(-0.5, 0.5, -0.5, 0.5, lambda x, y: 2.0 + x)  # normal at 45 deg: dimmer
    rgb2, alpha2 = shade(tilted_v, f, rasterize(tilted_v, f, CAM, H, W)[1], (255, 128, 0), 0.2, 0.6)
    np.testing.assert_allclose(rgb2[alpha2][:, 0], 0.2 + 0.6 / np.sqrt(2), atol=1e-6)


def test_overlay_changes_exactly_the_silhouette():
    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    v, f = sphere()
    out = render_overlay(image, [(v, f, (0.2, 0.9, 0.3))], CAM, backend="raster")
    mask = rasterize(v, f, CAM, H, W)[1] >= 0
    assert out.dtype == np.uint8 and out.shape == image.shape
    assert np.array_equal(out[~mask], image[~mask])
    assert np.any(out[mask] != image[mask], axis=-1).all()
    # Independently of the rasterizer: nothing changes outside the analytic disc (1 px margin).
    u, w = pixel_grid()
    k = 0.5 / np.sqrt(25 - 0.25)
    outside = ((u - CAM.cx) / (CAM.fx * k + 1)) ** 2 + ((w - CAM.cy) / (CAM.fy * k + 1)) ** 2 > 1
    assert np.array_equal(out[outside], image[outside])
    assert np.array_equal(render_overlay(image, [], CAM, backend="raster"), image)


def test_overlay_shares_one_zbuffer_across_people_and_cameras():
    image = np.zeros((H, W, 3), dtype=np.uint8)
    near = (*quad(-0.3, 0.1, -0.3, 0.1, lambda x, y: 2.0), (255, 0, 0))
    far = (*quad(-0.1, 0.4, -0.1, 0.4, lambda x, y: 3.0), (0, 0, 255))
    r, c = round(CAM.cy), round(CAM.cx)
    for meshes in ([near, far], [far, near]):
        out = render_overlay(image, meshes, CAM, backend="raster")
        assert out[r, c, 0] > 0 and out[r, c, 2] == 0  # RGB order: red stays in channel 0
    # Per-person cameras (the demo's crop-box principal points): each person lands where its own camera puts it.
    left = (*sphere(0.3, (-0.4, 0.0, 4.0)), (255, 0, 0))
    right = (*sphere(0.3, (0.4, 0.0, 4.0)), (0, 255, 0))
    cam_b = Camera(CAM.fx, CAM.fy, CAM.cx + 17.0, CAM.cy - 9.0)
    together = render_overlay(image, [left, right], [CAM, cam_b], backend="raster")
    alone_left = render_overlay(image, [left], CAM, backend="raster")
    alone_right = render_overlay(image, [right], cam_b, backend="raster")
    assert np.array_equal(together, np.maximum(alone_left, alone_right))
    with pytest.raises(ValueError):
        render_overlay(image, [left, right], [CAM], backend="raster")


def test_side_view_turns_depth_into_width():
    # A bar 2 m deep, 0.2 m wide and 1 m tall: seen from the side it is twice as wide as tall.
    box = trimesh.creation.box(extents=(0.2, 1.0, 2.0))
    v = np.asarray(box.vertices) + (0.0, 0.0, 6.0)
    out = render_side_view([(v, box.faces, (0.9, 0.2, 0.2))], size=200, backend="raster")
    assert out.shape == (200, 200, 3) and out.dtype == np.uint8
    fg = np.any(out != 255, axis=-1)
    assert not fg[0].any() and not fg[:, 0].any()  # framed with a margin on a plain background
    rows, cols = np.nonzero(fg)
    aspect = (cols.max() - cols.min()) / (rows.max() - rows.min())
    assert 1.5 < aspect < 2.7  # perspective makes the near end larger; the front view would give 0.2
    assert cols.max() - cols.min() > 0.8 * 200  # fills the frame


def test_person_colours_are_distinct_rgb():
    cols = np.array([person_colour(i) for i in range(8)])
    assert cols.shape == (8, 3) and cols.min() >= 0 and cols.max() <= 1
    assert np.min(np.linalg.norm(cols[:, None] - cols[None], axis=-1) + np.eye(8)) > 0.05


@pytest.mark.skipif(not gl_available(), reason="no GL: moderngl (pip install hap3d[render]) or EGL unavailable")
def test_gl_backend_matches_the_rasterizer():
    v, f = sphere()
    d_r, f_r = rasterize(v, f, CAM, H, W)
    d_g, f_g = rasterize_gl(v, f, CAM, H, W)
    b_g = barycentrics(v, f, CAM, f_g)
    assert iou(f_r >= 0, f_g >= 0) >= 0.97
    both = (f_r >= 0) & (f_g >= 0)
    assert np.median(np.abs(d_r[both] - d_g[both])) < 1e-4
    assert (f_r == f_g)[both].mean() > 0.9  # the rest are ties along shared edges
    assert np.allclose(b_g[f_g >= 0].sum(-1), 1, atol=1e-5)
    image = np.full((H, W, 3), 77, dtype=np.uint8)
    out = render_overlay(image, [(v, f, (0.2, 0.9, 0.3))], CAM, backend="egl")
    assert np.array_equal(out[f_g < 0], image[f_g < 0])
    assert np.any(out[f_g >= 0] != 77, axis=-1).all()
    far_v, far_f = sphere(50.0, (0.0, 0.0, 1000.0))
    assert (rasterize_gl(far_v, far_f, CAM, H, W)[1] >= 0).sum() > 100  # no 100 m far plane


def test_auto_falls_back_to_the_rasterizer_and_egl_says_why(monkeypatch):
    from hap3d.render import gl as render
    from hap3d.utils import Hap3dError

    monkeypatch.setattr(render._GLState, "ctx", None)
    monkeypatch.setattr(render._GLState, "error", "ImportError: No module named 'moderngl'")
    assert not gl_available()
    image = np.full((H, W, 3), 30, dtype=np.uint8)
    meshes = [(*sphere(), (0.9, 0.9, 0.1))]
    assert np.array_equal(render_overlay(image, meshes, CAM), render_overlay(image, meshes, CAM, backend="raster"))
    with pytest.raises(Hap3dError, match="backend='raster'"):
        render_overlay(image, meshes, CAM, backend="egl")
    with pytest.raises(ValueError, match="backend"):
        render_overlay(image, meshes, CAM, backend="opengl")
