"""The pinhole camera every renderer and annotator shares (OpenCV conventions, see :mod:`hap3d.render`)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


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
