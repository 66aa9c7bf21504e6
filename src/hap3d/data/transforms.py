"""The coordinate pipeline shared by every dataset: boxes, crops, augmentation, 64-space, depth, flips.

Numerics follow the reference (float32 boxes and affines from ``cv2.getAffineTransform`` over three point
pairs) so that crops, and therefore metrics, match it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

INPUT_SIZE = 256  # crop side in pixels
HEATMAP_SIZE = 64  # "64-space"
BBOX_3D_SIZE = 2.0  # metres: depth range [-1, 1] m around the root maps to [0, 64) (model.bbox_3d_size)
BBOX_SCALE = 1.25
JOINT_BBOX_EXTEND = 1.2


def process_bbox(
    bbox_xywh: np.ndarray, img_width: float, img_height: float, keep_degenerate: bool = False, aspect: float = 1.0
) -> np.ndarray | None:
    """Clip a tight box to the image, make it ``aspect`` (W/H) and enlarge it x1.25 about its centre.

    Returns float32 [x, y, w, h], or None for an empty box (unless ``keep_degenerate``, the reference's
    3DPW-test mode, where the box is always kept).
    """
    # float32 arithmetic throughout, as the reference does on its float32 boxes
    x, y, w, h = np.asarray(bbox_xywh[:4], dtype=np.float32)
    zero = np.float32(0)
    x1, y1 = max(zero, x), max(zero, y)
    x2 = min(np.float32(img_width - 1), x1 + max(zero, w - 1))
    y2 = min(np.float32(img_height - 1), y1 + max(zero, h - 1))
    if not keep_degenerate and not (w * h > 0 and x2 >= x1 and y2 >= y1):
        return None
    box = np.array([x1, y1, x2 - x1, y2 - y1], dtype=np.float32)
    w, h = box[2], box[3]
    cx, cy = box[0] + w / 2.0, box[1] + h / 2.0
    if w > aspect * h:
        h = w / aspect
    elif w < aspect * h:
        w = h * aspect
    box[2], box[3] = w * BBOX_SCALE, h * BBOX_SCALE
    box[0], box[1] = cx - box[2] / 2.0, cy - box[3] / 2.0
    return box


def joints_bbox(joints_xy: np.ndarray, valid: np.ndarray, extend: float = JOINT_BBOX_EXTEND) -> np.ndarray | None:
    """Extent of the valid joints, each side scaled by ``extend`` about the centre (float32 xywh); None if none is
    valid."""
    sel = np.asarray(valid).reshape(-1) == 1
    if not sel.any():
        return None
    x, y = joints_xy[sel, 0], joints_xy[sel, 1]
    xmin, xmax, ymin, ymax = min(x), max(x), min(y), max(y)
    xc, w = (xmin + xmax) / 2.0, xmax - xmin
    yc, h = (ymin + ymax) / 2.0, ymax - ymin
    xmin, xmax = xc - 0.5 * w * extend, xc + 0.5 * w * extend
    ymin, ymax = yc - 0.5 * h * extend, yc + 0.5 * h * extend
    return np.array([xmin, ymin, xmax - xmin, ymax - ymin]).astype(np.float32)


def box_iou(a_xywh: np.ndarray, b_xywh: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N,4) with every box in ``b`` (M,4) -> (N, M); the reference's +1e-5."""
    a, b = np.asarray(a_xywh, np.float64)[:, None], np.asarray(b_xywh, np.float64)[None]
    x1, y1 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x2 = np.minimum(a[..., 0] + a[..., 2], b[..., 0] + b[..., 2])
    y2 = np.minimum(a[..., 1] + a[..., 3], b[..., 1] + b[..., 3])
    inter = np.maximum(0, x2 - x1) * np.maximum(0, y2 - y1)
    return inter / (a[..., 2] * a[..., 3] + b[..., 2] * b[..., 3] - inter + 1e-5)


@dataclass(frozen=True)
class Augmentation:
    scale: float = 1.0
    rot: float = 0.0  # degrees
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    flip: bool = False


NO_AUGMENTATION = Augmentation()


def sample_augmentation(rng: np.random.Generator, allow_flip: bool = True) -> Augmentation:
    """scale 1 + 0.25 clip(N,-1,1); rot 30 clip(N,-2,2) deg with p 0.6; colour U(0.8,1.2) per channel; flip p 0.5.

    Every draw comes from ``rng``, so a sample is reproducible from its seed (the reference drew from the global
    numpy / python generators)."""
    scale = float(np.clip(rng.standard_normal(), -1.0, 1.0) * 0.25 + 1.0)
    rot_draw = float(np.clip(rng.standard_normal(), -2.0, 2.0) * 30)
    rot = rot_draw if rng.random() <= 0.6 else 0.0
    color = tuple(float(c) for c in rng.uniform(0.8, 1.2, 3))
    flip = allow_flip and bool(rng.random() <= 0.5)
    return Augmentation(scale, rot, color, flip)  # type: ignore[arg-type]


def crop_affine(center: tuple[float, float], size: tuple[float, float], scale: float, rot: float,
                out_size: int = INPUT_SIZE, inverse: bool = False) -> np.ndarray:
    """2x3 float32 affine from an image box (centre, w, h, scale, rotation in degrees) to the out_size crop."""
    rad = np.pi * rot / 180
    sn, cs = np.sin(rad), np.cos(rad)

    def rotate(v: np.ndarray) -> np.ndarray:
        return np.array([v[0] * cs - v[1] * sn, v[0] * sn + v[1] * cs], dtype=np.float32)

    c = np.array(center, dtype=np.float32)
    down = rotate(np.array([0, size[1] * scale * 0.5], dtype=np.float32))
    right = rotate(np.array([size[0] * scale * 0.5, 0], dtype=np.float32))
    src = np.stack([c, c + down, c + right]).astype(np.float32)
    half = np.float32(out_size * 0.5)
    dst = np.array([[half, half], [half, 2 * half], [2 * half, half]], dtype=np.float32)
    m = cv2.getAffineTransform(dst, src) if inverse else cv2.getAffineTransform(src, dst)
    return m.astype(np.float32)


@dataclass
class Crop:
    img: np.ndarray  # (S, S, 3) float32 RGB in [0, 255]
    img2bb: np.ndarray  # (2, 3) float32
    bb2img: np.ndarray  # (2, 3) float32


def crop_image(img: np.ndarray, bbox: np.ndarray, aug: Augmentation = NO_AUGMENTATION, out_size: int = INPUT_SIZE,
               bgr: bool = False) -> Crop:
    """Crop (and flip/scale/rotate/colour-scale) an image to an out_size square around ``bbox``.

    ``img`` is RGB (or BGR with ``bgr``), uint8 or float; the crop is float32 RGB in [0, 255]. Only the pixels
    the crop can sample (its footprint plus a 2-pixel margin) are flipped and converted to float, into a zeroed
    full-size frame whose other pages are never touched; the warp then runs on the full frame's coordinates,
    so the crop is bit-identical to warping the whole converted image, at a fraction of the cost.
    """
    h, w = img.shape[:2]
    cx, cy = float(bbox[0] + 0.5 * bbox[2]), float(bbox[1] + 0.5 * bbox[3])
    if aug.flip:
        cx = w - cx - 1
    size = (float(bbox[2]), float(bbox[3]))
    fwd = crop_affine((cx, cy), size, aug.scale, aug.rot, out_size)
    inv = crop_affine((cx, cy), size, aug.scale, aug.rot, out_size, inverse=True)
    last = out_size - 1
    corners = np.array([[0, 0, 1], [last, 0, 1], [0, last, 1], [last, last, 1]], np.float64)
    foot = corners @ inv.astype(np.float64).T  # crop corners in (flipped) source pixels
    x0, y0 = (max(int(np.floor(v)) - 2, 0) for v in foot.min(0))
    x1, y1 = min(int(np.ceil(foot[:, 0].max())) + 3, w), min(int(np.ceil(foot[:, 1].max())) + 3, h)
    frame = np.zeros((h, w, 3), np.float32)  # calloc: untouched pages cost nothing
    if x0 < x1 and y0 < y1:
        region = img[y0:y1, w - x1 : w - x0] if aug.flip else img[y0:y1, x0:x1]
        frame[y0:y1, x0:x1] = cv2.flip(np.ascontiguousarray(region), 1) if aug.flip else region
    patch = cv2.warpAffine(frame, fwd, (out_size, out_size), flags=cv2.INTER_LINEAR)
    if bgr:  # channels are independent: swapping them after the warp touches 256² pixels, not the frame
        patch = np.ascontiguousarray(patch[:, :, ::-1])
    if aug.color != (1.0, 1.0, 1.0):
        patch = np.clip(patch * np.asarray(aug.color, dtype=np.float64)[None, None], 0, 255).astype(np.float32)
    return Crop(patch, fwd, inv)


def apply_affine(xy: np.ndarray, m: np.ndarray) -> np.ndarray:
    """(N, 2) points through a 2x3 affine."""
    ones = np.ones_like(xy[:, :1])
    return (m @ np.concatenate([xy[:, :2], ones], 1).T).T


def swap_pairs(arr: np.ndarray, pairs) -> np.ndarray:
    """Copy of ``arr`` with the rows of each (left, right) pair exchanged."""
    out = arr.copy()
    for a, b in pairs:
        out[[a, b]] = out[[b, a]]
    return out


def flip_joints_2d(joints: np.ndarray, img_width: float, flip_pairs) -> np.ndarray:
    """Mirror x -> W-1-x and swap left/right rows (coordinates and any extra columns)."""
    out = swap_pairs(joints, flip_pairs)
    out[:, 0] = img_width - 1 - out[:, 0]
    return out


def to_heatmap_space(xy: np.ndarray, input_size: int = INPUT_SIZE, heatmap_size: int = HEATMAP_SIZE) -> np.ndarray:
    return xy * (heatmap_size / input_size)


def depth_to_heatmap(
    z_rel: np.ndarray, unit: float = 1.0, heatmap_size: int = HEATMAP_SIZE, bbox_3d_size: float = BBOX_3D_SIZE
) -> np.ndarray:
    """Root-relative depth (in metres, or mm with unit=1000) -> [0, 64) for +-bbox_3d_size/2 metres."""
    return (z_rel / (bbox_3d_size / 2 * unit) + 1) / 2 * heatmap_size


def inside_mask(coords: np.ndarray, use_depth: bool, heatmap_size: int = HEATMAP_SIZE) -> np.ndarray:
    """(N, 1) float32: 1 where x, y (and z) lie in [0, heatmap_size)."""
    dims = 3 if use_depth else 2
    ok = np.all((coords[:, :dims] >= 0) & (coords[:, :dims] < heatmap_size), axis=1)
    return ok.astype(np.float32)[:, None]


def rotation_about_z(rot_deg: float) -> np.ndarray:
    """The camera-frame rotation matching an in-plane image rotation by ``rot_deg`` (R_z(-rot))."""
    r = -np.deg2rad(rot_deg)
    return np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]], dtype=np.float32)


def add_midpoint(joints: np.ndarray, names: tuple[str, ...], a: str, b: str) -> np.ndarray:
    """Append the midpoint of joints a and b, with the product of their confidences (reference rule)."""
    ia, ib = names.index(a), names.index(b)
    mid = (joints[ia] + joints[ib]) * 0.5
    mid[2] = joints[ia, 2] * joints[ib, 2]
    return np.concatenate([joints, mid[None]], 0)
