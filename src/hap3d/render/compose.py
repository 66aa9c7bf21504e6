"""Composition: several people in one z-buffer, drawn over a photo or seen from the side.

Each person may come with their own camera (the demo's per-person crop cameras); the meshes are re-expressed for
one shared camera first, so that who hides whom is decided by true depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hap3d.render.camera import Camera
from hap3d.render.gl import gl_available, rasterize_gl
from hap3d.render.raster import rasterize
from hap3d.render.shading import rgb01, shade

Mesh = tuple[np.ndarray, np.ndarray, Any]
"""``(vertices (V,3) metres, faces (F,3) int, colour)``; colour is RGB floats in [0, 1] or integers in 0..255."""


def _resolve_backend(backend: str) -> str:
    """'auto' -> 'egl' when a GL context can be created, else 'raster'; anything unknown is a ValueError."""
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
        cols.append(np.broadcast_to(rgb01(colour), (len(f), 3)))
        offset += len(v)
    return np.concatenate(raster_v), np.concatenate(orig_v), np.concatenate(all_f), np.concatenate(cols)


def _cameras_for(meshes: Sequence[Mesh], camera: Camera | Sequence[Camera]) -> list[Camera]:
    """One camera per mesh: a single camera is shared, a sequence must match the meshes one to one."""
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
    """Shaded ``rgb`` (H,W,3) and coverage ``alpha`` (H,W) of all meshes seen through ``target``."""
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
