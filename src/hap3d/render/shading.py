"""Shading: flat Lambertian lighting of the rasterizers' face buffers, and the colours people are drawn in.

Kept apart from the rasterizers so that both backends share one lighting model and give the same pictures.
"""

from __future__ import annotations

import colorsys
from typing import Any

import numpy as np


def person_colour(index: int) -> tuple[float, float, float]:
    """A deterministic, well-separated RGB colour for person ``index``: golden-ratio hues, s=0.5, v=1 (reference)."""
    return colorsys.hsv_to_rgb((0.13 + 0.618033988749895 * index) % 1.0, 0.5, 1.0)


def rgb01(colour: Any) -> np.ndarray:
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
    col = rgb01(colours)
    col = col[hit] if col.ndim == 2 else col[None]
    rgb[alpha] = np.clip(col * (ambient + diffuse * lambert)[:, None], 0.0, 1.0)
    return rgb, alpha

