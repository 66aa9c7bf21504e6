"""Headless mesh rendering: overlays on a photo, a side view, and the depth buffers synthetic data is annotated from.

Conventions (shared by every module here):

* Cameras are OpenCV pinholes: x right, y down, z forward; vertices are in metres in the camera frame.
* Pixel ``(row r, column c)`` has its centre at image coordinates ``(u, v) = (c, r)``, so a vertex projects to
  ``u = fx * x / z + cx``, ``v = fy * y / z + cy`` exactly as ``cv2.projectPoints`` would.
* Colours are RGB everywhere (the reference mixed a RGB render into a BGR canvas; we never touch BGR).
* There is no far plane: a person far from the camera is never clipped (the reference clipped at 100 m).
  Faces with a vertex at ``z <= near`` are skipped by the rasterizer (clipped by GL), not drawn mirrored.

Two backends produce the same ``(depth, face_index)`` buffers, and shading is always done in numpy, so both
backends give the same pictures up to edge pixels:

* ``'raster'`` (:mod:`hap3d.render.raster`): a vectorised numpy z-buffer, always available;
* ``'egl'`` (:mod:`hap3d.render.gl`): moderngl on a headless EGL context (``pip install hap3d[render]``), faster
  on large images.

``'auto'`` picks ``'egl'`` when a context can be created, else ``'raster'``. Modules: ``camera`` (intrinsics),
``raster`` and ``gl`` (the two rasterizers), ``shading`` (lighting and colours), ``compose`` (several people in
one z-buffer, over a photo or seen from the side). This package depends on nothing in hap3d but ``hap3d.utils``.
"""

from __future__ import annotations

from hap3d.render.camera import Camera
from hap3d.render.compose import Mesh, render_overlay, render_side_view
from hap3d.render.gl import gl_available, rasterize_gl
from hap3d.render.raster import barycentrics, rasterize
from hap3d.render.shading import face_normals, person_colour, shade

__all__ = [
    "Camera",
    "Mesh",
    "barycentrics",
    "face_normals",
    "gl_available",
    "person_colour",
    "rasterize",
    "rasterize_gl",
    "render_overlay",
    "render_side_view",
    "shade",
]
