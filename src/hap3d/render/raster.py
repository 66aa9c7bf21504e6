"""The numpy rasterizer: a vectorised z-buffer that needs nothing but numpy (the ``'raster'`` backend).

It returns per-pixel depth and the index of the winning face; colours are applied afterwards by
:mod:`hap3d.render.shading`, so this backend and :mod:`hap3d.render.gl` produce the same pictures.
"""

from __future__ import annotations

import numpy as np

from hap3d.render.camera import Camera

_FRAGMENT_BUDGET = 1 << 20  # candidate pixels evaluated per vectorised chunk (a few tens of MB of temporaries)


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
        return empty_buffers(H, W)

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
        return empty_buffers(H, W)

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
        return empty_buffers(H, W)
    pix = np.concatenate(frag_pix)
    z = np.concatenate(frag_z)
    depth = np.full(H * W, np.inf)
    np.minimum.at(depth, pix, z)
    win = np.flatnonzero(z <= depth[pix])
    face_index = np.full(H * W, -1, dtype=np.int32)
    face_index[pix[win]] = np.concatenate(frag_face)[win]  # a tie (shared edge, equal depth) goes to one face
    return depth.astype(np.float32).reshape(H, W), face_index.reshape(H, W)


def empty_buffers(H: int, W: int) -> tuple[np.ndarray, np.ndarray]:
    """Buffers of an image no face covers (depth ``inf``, face index -1); shared by both backends."""
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

