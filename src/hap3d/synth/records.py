"""Writing the synthetic files: deterministic JSON and JPEG output, and the annotation records they share.

Output is deterministic: JSON with sorted keys and fixed rounding, images encoded by OpenCV from deterministic
pixels. The COCO-style records (keypoints, boxes, polygon and RLE masks) and the SMPL-fit entries are written the
same way by every dataset that has them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hap3d.render import Camera
from hap3d.synth.people import BodyKit, Person
from hap3d.synth.scene import MIN_VISIBLE_PIXELS, Scene
from hap3d.utils import Hap3dError, atomic_write

README_HEADER = "SYNTHETIC DATA written by hap3d (`hap3d data synth`)"
JPEG_QUALITY = 90


def num(a: Any, decimals: int) -> Any:
    """Round and convert to plain Python floats (nested lists), so the JSON text is fixed for given values."""
    return np.round(np.asarray(a, dtype=np.float64), decimals).tolist()


def write_json(path: Path, obj: Any) -> None:
    """Compact JSON like the real files, keys sorted so equal content gives equal bytes."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_image(path: Path, rgb: np.ndarray) -> None:
    """Encode an RGB image in memory (format from the suffix, BGR on disk as OpenCV writes) and write it atomically."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    ok, data = cv2.imencode(path.suffix, bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise Hap3dError(f"OpenCV cannot encode {path.suffix} images (needed for {path})")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data.tobytes()))


def coco_keypoints(uv: np.ndarray, state: np.ndarray, binary: bool = False) -> list[int]:
    """Flat [x, y, v] * J with integer pixel clicks, v = 0 unlabeled (x = y = 0), 1 labeled hidden, 2 visible;
    ``binary`` writes 1 for every labeled joint (MPII's convention)."""
    v = np.minimum(state, 1) if binary else state
    xy = np.where(state[:, None] > 0, np.rint(uv), 0)
    return np.concatenate([xy, v[:, None]], 1).astype(int).reshape(-1).tolist()


def polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygon segmentation of a binary mask (outer contours, simplified by 1 px)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2) for c in contours]
    return [num(p.reshape(-1), 1) for p in polys if len(p) >= 3]


def rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE (column-major run lengths, starting with a run of zeros), as crowd regions use."""
    flat = mask.reshape(-1, order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], edges]))
    return {"counts": counts.astype(int).tolist(), "size": [int(mask.shape[0]), int(mask.shape[1])]}


def fit_entry(p: Person) -> dict[str, list[float]]:
    """{pose, shape, trans} as every SMPL-fit file stores them."""
    return {"pose": num(p.pose, 6), "shape": num(p.shape, 6), "trans": num(p.trans, 6)}


def cam_param(camera: Camera) -> dict[str, list[float]]:
    """{focal, princpt} as NeuralAnnot and 3DPW store intrinsics."""
    return {"focal": num([camera.fx, camera.fy], 2), "princpt": num([camera.cx, camera.cy], 2)}


def neuralannot(p: Person, camera: Camera) -> dict:
    """One NeuralAnnot entry: the fit in the image's camera frame and that camera."""
    return {"smpl_param": fit_entry(p), "cam_param": cam_param(camera)}


def person_annotation(
    kit: BodyKit, scene: Scene, i: int, p: Person, joint_set: str, binary: bool = False
) -> dict | None:
    """COCO-style record of one visible person (keypoints, num_keypoints, tight box, area, polygons)."""
    box = scene.tight_box(i)
    if box is None:
        return None
    uv, state = scene.keypoints(kit.joints(p.vertices, joint_set))
    mask = scene.mask(i)
    return {
        "bbox": num(box, 2), "area": float(mask.sum()), "iscrowd": 0, "category_id": 1,
        "keypoints": coco_keypoints(uv, state, binary), "num_keypoints": int((state > 0).sum()),
        "segmentation": polygons(mask),
    }  # fmt: skip


def unlabeled(mask: np.ndarray, crowd: bool, num_joints: int) -> dict | None:
    """A person (or crowd region) annotators outlined but gave no keypoints: num_keypoints 0."""
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_VISIBLE_PIXELS // 3:
        return None
    box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    return {
        "bbox": num(box, 2), "area": float(mask.sum()), "iscrowd": int(crowd), "category_id": 1,
        "keypoints": [0] * (3 * num_joints), "num_keypoints": 0, "segmentation": rle(mask) if crowd else polygons(mask),
    }  # fmt: skip
