"""2D keypoint inputs for inference, from the formats people have:

* the reference demo's ``{image_name: [[[x, y, score, ...] x 17] per person]}``;
* COCO keypoint *results* JSON: ``[{image_id | file_name, keypoints: [x, y, s] x 17 flat, score}, ...]``;
* OpenPose output: a folder of ``<image>_keypoints.json`` files (``people[].pose_keypoints_2d``, BODY_25 or COCO-18).

Everything is returned as COCO17 arrays (17, 3) per person, keyed by image file name.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hap3d.body.joints import get_joint_set
from hap3d.data.io import DataError, load_json
from hap3d.data.transforms import add_midpoint

# OpenPose BODY_25 joint order (the first 18 are not the COCO-18 order, hence the name table).
BODY25 = (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "Pelvis", "R_Hip",
    "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear", "L_BigToe",
    "L_SmallToe", "L_Heel", "R_BigToe", "R_SmallToe", "R_Heel",
)


def _by_names(arr: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    coco = get_joint_set("coco17").joints
    out = np.zeros((17, 3), np.float32)
    for i, n in enumerate(coco):
        if n in names:
            out[i] = arr[names.index(n)]
    return out


def _person(value, where: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float32)
    if arr.ndim == 1 and arr.size % 3 == 0:
        arr = arr.reshape(-1, 3)
    if arr.ndim != 2 or arr.shape[0] < 17 or arr.shape[1] < 3:
        raise DataError(f"{where}: expected 17 keypoints of (x, y, score), got shape {arr.shape}")
    return arr[:17, :3]


def read_keypoints(path: str | Path, image_names: dict[int, str] | None = None) -> dict[str, list[np.ndarray]]:
    """Read any supported keypoint source; ``image_names`` maps COCO image ids to file names when needed."""
    path = Path(path)
    if path.is_dir():
        return _read_openpose_dir(path)
    data = load_json(path, "keypoint file")
    if isinstance(data, dict) and "people" in data:
        return {_openpose_image_name(path): _openpose_people(data, path)}
    if isinstance(data, dict):
        return {str(k): [_person(p, f"{path}: image {k} person {i}") for i, p in enumerate(v)] for k, v in data.items()}
    if isinstance(data, list):
        out: dict[str, list[np.ndarray]] = {}
        for i, det in enumerate(data):
            where = f"{path}: detection {i}"
            if not isinstance(det, dict) or "keypoints" not in det:
                raise DataError(f"{where} has no 'keypoints' (expected COCO keypoint results)")
            if "file_name" in det:
                name = str(det["file_name"])
            elif "image_id" in det:
                if image_names is None or det["image_id"] not in image_names:
                    name = str(det["image_id"])
                else:
                    name = image_names[det["image_id"]]
            else:
                raise DataError(f"{where} has neither 'image_id' nor 'file_name'")
            out.setdefault(name, []).append(_person(det["keypoints"], where))
        return out
    raise DataError(f"{path}: unrecognised keypoint format (expected a dict by image, a COCO results list or OpenPose)")


def _openpose_image_name(path: Path) -> str:
    stem = path.name[: -len("_keypoints.json")] if path.name.endswith("_keypoints.json") else path.stem
    return stem


def _openpose_people(data: dict, path: Path) -> list[np.ndarray]:
    people = []
    for i, p in enumerate(data.get("people", [])):
        flat = np.asarray(p.get("pose_keypoints_2d", []), np.float32)
        if flat.size == 75:
            people.append(_by_names(flat.reshape(25, 3), BODY25))
        elif flat.size == 54:
            people.append(_by_names(flat.reshape(18, 3), get_joint_set("openpose18").joints))
        else:
            raise DataError(f"{path}: person {i} has {flat.size} values; expected BODY_25 (75) or COCO-18 (54)")
    return people


def _read_openpose_dir(folder: Path) -> dict[str, list[np.ndarray]]:
    files = sorted(folder.glob("*_keypoints.json"))
    if not files:
        raise DataError(f"{folder}: no OpenPose '*_keypoints.json' files")
    return {_openpose_image_name(f): _openpose_people(json.loads(f.read_text()), f) for f in files}


def coco19_from_coco17(coco: np.ndarray) -> np.ndarray:
    """COCO17 plus pelvis and neck midpoints (confidence = product of the pair's), the demo's input set."""
    names = get_joint_set("coco17").joints
    j = add_midpoint(np.asarray(coco, np.float32)[:17, :3], names, "L_Hip", "R_Hip")
    return add_midpoint(j, names + ("Pelvis",), "L_Shoulder", "R_Shoulder")
