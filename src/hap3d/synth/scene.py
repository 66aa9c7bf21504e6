"""Pictures of the synthetic people: procedural backgrounds, clothing, one z-buffer for everyone, visibility.

People are drawn by the project's rasterizer (:mod:`hap3d.render`) with flat shading, one colour per clothing
region. The depth buffer it returns is kept with the image: keypoint visibility and the people's masks are read
from it, so they agree with what the picture shows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from hap3d.render import Camera, rasterize, shade
from hap3d.synth.people import BodyKit, Person, camera_people

OCCLUSION_MARGIN = 0.2  # a joint is hidden when the visible surface is this much (m) nearer than the joint
MIN_VISIBLE_PIXELS = 150  # people showing fewer pixels are not annotated (annotators would not see them)
SKIN_TONES = np.array(
    [[0.95, 0.80, 0.69], [0.87, 0.67, 0.52], [0.72, 0.52, 0.38], [0.50, 0.35, 0.25], [0.30, 0.20, 0.15]]
)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB scenery: a colour gradient with low-frequency blotches, and random shapes over it.

    The smooth part is made at 1/24 resolution and upsampled, which keeps a 540x960 image at a few ms.
    """
    h, w = height // 24 + 2, width // 24 + 2
    a = rng.uniform(0, 2 * np.pi)
    t = np.arange(w, dtype=np.float32)[None] * np.cos(a) + np.arange(h, dtype=np.float32)[:, None] * np.sin(a)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    c0, c1 = rng.uniform(30, 225, (2, 3)).astype(np.float32)
    blotches = (16 * rng.standard_normal((h, w, 1), dtype=np.float32)
                + 5 * rng.standard_normal((h, w, 3), dtype=np.float32))
    small = c0 + t[..., None] * (c1 - c0) + blotches
    canvas = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(5, 14))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(3))
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if kind == 0:
            q = (p[0] + int(rng.integers(20, width // 2)), p[1] + int(rng.integers(20, height // 2)))
            cv2.rectangle(canvas, p, q, colour, -1)
        elif kind == 1:
            cv2.circle(canvas, p, int(rng.integers(10, min(height, width) // 4)), colour, -1, cv2.LINE_AA)
        else:
            q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(canvas, p, q, colour, int(rng.integers(2, 12)), cv2.LINE_AA)
    return canvas


def outfit(rng: np.random.Generator, behind: np.ndarray) -> np.ndarray:
    """(4, 3) RGB in [0, 1]: trousers, shirt, skin, shoes; the clothes contrast with the ``behind`` mean colour."""
    candidates = np.array([
        cv2.cvtColor(np.float32([[[rng.uniform(0, 360), rng.uniform(0.4, 0.9), rng.uniform(0.35, 1.0)]]]),
                     cv2.COLOR_HSV2RGB)[0, 0]
        for _ in range(8)
    ])  # fmt: skip
    far = candidates[np.argsort(-np.abs(candidates - behind / 255.0).sum(1))]
    return np.stack([far[1], far[0], SKIN_TONES[rng.integers(len(SKIN_TONES))], np.full(3, rng.uniform(0.05, 0.3))])


def box_of(points_uv: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) extent of points, clipped to the image (empty when outside)."""
    lo = np.clip(np.floor(points_uv.min(0)), 0, [width, height]).astype(int)
    hi = np.clip(np.ceil(points_uv.max(0)) + 1, 0, [width, height]).astype(int)
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def dress(rng: np.random.Generator, meshes: Sequence[np.ndarray], camera: Camera, bg: np.ndarray) -> list[np.ndarray]:
    """An outfit per camera-frame mesh that stands out from the background behind it."""
    h, w = bg.shape[:2]
    out = []
    for mesh in meshes:
        x0, y0, x1, y1 = box_of(camera.project(mesh), h, w)
        patch = bg[y0:y1, x0:x1].reshape(-1, 3)
        out.append(outfit(rng, patch.mean(0) if len(patch) else bg.reshape(-1, 3).mean(0)))
    return out


@dataclass
class Scene:
    """A rendered image and what annotating it needs: per-pixel depth and owner (person index, -1 background)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres, inf on the background
    owner: np.ndarray  # (H, W) int
    camera: Camera

    def mask(self, i: int) -> np.ndarray:
        """Pixels where person i is the nearest surface."""
        return self.owner == i

    def tight_box(self, i: int) -> list[float] | None:
        """Visible-pixel extent (xywh) of person i; None when too little of them shows."""
        ys, xs = np.nonzero(self.owner == i)
        if len(xs) < MIN_VISIBLE_PIXELS:
            return None
        return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]

    def keypoints(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected (J, 2) pixels of camera-frame joints and their state: 0 outside, 1 hidden, 2 visible.

        A joint is hidden when the visible surface at its pixel is more than OCCLUSION_MARGIN nearer than the
        joint itself (another person, or the body's own limbs in front).
        """
        h, w = self.depth.shape
        uv = self.camera.project(joints)
        col, row = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
        inside = (joints[:, 2] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        hidden = np.zeros(len(joints), bool)
        hidden[inside] = self.depth[row[inside], col[inside]] < joints[inside, 2] - OCCLUSION_MARGIN
        return uv, np.where(inside, np.where(hidden, 1, 2), 0)


def render_scene(
    kit: BodyKit,
    bg: np.ndarray,
    meshes: Sequence[np.ndarray],
    outfits: Sequence[np.ndarray],
    camera: Camera,
) -> Scene:
    """Shade camera-frame meshes (one colour per clothing region) in one z-buffer over ``bg``."""
    h, w = bg.shape[:2]
    nv, nf = meshes[0].shape[0], len(kit.faces)
    faces = np.concatenate([kit.faces + i * nv for i in range(len(meshes))])
    colours = np.concatenate([o[kit.face_region] for o in outfits])
    verts = np.concatenate(meshes)
    depth, face_index = rasterize(verts, faces, camera, h, w)
    rgb, alpha = shade(verts, faces, face_index, colours, ambient=0.35, diffuse=0.65)
    img = bg.copy()
    img[alpha] = np.rint(rgb[alpha] * 255).astype(np.uint8)
    owner = np.where(face_index >= 0, face_index // nf, -1)
    return Scene(img, depth, owner, camera)


def random_camera(rng: np.random.Generator, width: int, height: int, focal: tuple[float, float]) -> Camera:
    """Square-pixel intrinsics with the focal length a random multiple of the image's long side."""
    f = round(float(rng.uniform(*focal) * max(width, height)), 2)
    return Camera(f, f, round(width / 2 + float(rng.normal(0, 2)), 2), round(height / 2 + float(rng.normal(0, 2)), 2))


def photo_scene(
    kit: BodyKit, rng: np.random.Generator, sizes: Sequence[tuple[int, int]], n: int, group: bool, far: int,
    far_group: bool,
) -> tuple[Scene, list[Person], list[Person]]:
    """A photo with ``n`` annotated people and ``far`` small background people 12-20 m away."""
    width, height = sizes[int(rng.integers(len(sizes)))]
    camera = random_camera(rng, width, height, (0.8, 1.3))
    bg = background(rng, height, width)
    people = camera_people(kit, rng, camera, (width, height), n, group)
    distant = camera_people(kit, rng, camera, (width, height), far, far_group, depth=(12.0, 20.0)) if far else []
    meshes = [p.vertices for p in people + distant]
    return render_scene(kit, bg, meshes, dress(rng, meshes, camera, bg), camera), people, distant
