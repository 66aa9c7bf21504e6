"""2D keypoint inputs for inference, from the formats people have:

* the reference demo's ``{image_name: [[[x, y, score, ...] x 17] per person]}``;
* COCO keypoint *results* JSON: ``[{image_id | file_name, keypoints: [x, y, s] x 17 flat, score}, ...]``
  (an ``image_id`` becomes a file name through ``image_names``, e.g. from :func:`read_coco_image_names`; without
  it the key is the id as text, which ``hap3d demo`` matches to an image whose stem is that number);
* OpenPose output: a folder of ``<image>_keypoints.json`` files (``people[].pose_keypoints_2d``, BODY_25 or COCO-18).

Everything is returned as COCO17 arrays (17, 3) per person, keyed by image name. A malformed entry costs only its
own image (see :class:`Keypoints`); a file that is not JSON, or not one of these formats, is a :class:`DataError`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from hap3d.body.joints import get_joint_set
from hap3d.data.io import DataError, load_json, require
from hap3d.data.transforms import add_midpoint

# OpenPose BODY_25 joint order (the first 18 are not the COCO-18 order, hence the name table).
BODY25 = (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "Pelvis", "R_Hip",
    "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear", "L_BigToe",
    "L_SmallToe", "L_Heel", "R_BigToe", "R_SmallToe", "R_Heel",
)


class Keypoints(dict[str, list[np.ndarray]]):
    """Image name -> people, each a (17, 3) COCO17 array of ``x, y, score``.

    ``errors`` maps the name of each image whose entry could not be read to the reason; such an image has no
    people entry, so one bad entry does not stop a run over the others. A dict, so indexing by image works as is.
    """

    def __init__(self, people: dict[str, list[np.ndarray]] | None = None, errors: dict[str, str] | None = None):
        super().__init__(people or {})
        self.errors: dict[str, str] = dict(errors or {})

    def collect(self, name: str, read: Callable[[], list[np.ndarray]]) -> None:
        """Store ``read()`` under ``name``, or its DataError as that image's error."""
        try:
            self[name] = read()
        except DataError as err:
            self.errors[name] = str(err)


def _by_names(arr: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    coco = get_joint_set("coco17").joints
    out = np.zeros((17, 3), np.float32)
    for i, n in enumerate(coco):
        if n in names:
            out[i] = arr[names.index(n)]
    return out


def _floats(value: Any, where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise DataError(f"{where}: keypoints are not a numeric array ({err})") from err
    if not np.isfinite(arr).all():  # JSON null becomes NaN silently
        raise DataError(f"{where}: keypoints contain null, NaN or infinite values")
    return arr


def _person(value: Any, where: str) -> np.ndarray:
    arr = _floats(value, where)
    if arr.ndim == 1 and arr.size % 3 == 0:
        arr = arr.reshape(-1, 3)
    if arr.ndim != 2 or arr.shape[0] < 17 or arr.shape[1] < 3:
        raise DataError(f"{where}: expected 17 keypoints of (x, y, score), got shape {arr.shape}")
    return arr[:17, :3]


def _people(value: Any, where: str) -> list[np.ndarray]:
    if not isinstance(value, list):
        raise DataError(f"{where}: expected a list of people, got {type(value).__name__}")
    return [_person(p, f"{where} person {i}") for i, p in enumerate(value)]


def read_keypoints(path: str | Path, image_names: dict[int | str, str] | None = None) -> Keypoints:
    """Read any supported keypoint source; ``image_names`` maps COCO image ids to file names when needed.

    ``image_names`` with a source keyed by image name already is a DataError rather than silently unused: the
    caller meant the file to be COCO results."""
    path = Path(path)
    data = None if path.is_dir() else load_json(path, "keypoint file")
    if image_names is not None and (data is None or isinstance(data, dict)):
        kind = "a dict by image name" if isinstance(data, dict) and "people" not in data else "OpenPose output"
        raise DataError(f"{path}: COCO image names (from the annotation file) apply only to COCO keypoint results "
                        f"(a JSON list keyed by image_id), but this is {kind}; leave the annotation file out")
    if path.is_dir():
        return _read_openpose_dir(path)
    out = Keypoints()
    if isinstance(data, dict) and "people" in data:
        out.collect(_openpose_image_name(path), lambda: _openpose_people(data, path))
    elif isinstance(data, dict):
        for k, v in data.items():
            out.collect(str(k), lambda k=k, v=v: _people(v, f"{path}: image {k}"))
    elif isinstance(data, list):
        _read_coco_results(data, path, image_names, out)
    else:
        raise DataError(f"{path}: unrecognised keypoint format (expected a dict by image, a COCO results list or "
                        f"OpenPose), got a JSON {type(data).__name__}")
    return out


def _read_coco_results(data: list, path: Path, image_names: dict[int | str, str] | None, out: Keypoints) -> None:
    """Group detections by image first, so that a bad detection costs its whole image and nothing else."""
    by_image: dict[str, list[tuple[int, dict]]] = {}
    for i, det in enumerate(data):
        where = f"{path}: detection {i}"
        if not isinstance(det, dict):
            raise DataError(f"{where} is a JSON {type(det).__name__}, not an object (expected COCO keypoint results)")
        if "file_name" in det:
            name = str(det["file_name"])
        elif "image_id" in det:
            image_id = _image_id(det, "image_id", path, f"detection {i}")
            name = image_names[image_id] if image_names and image_id in image_names else str(image_id)
        else:
            raise DataError(f"{where} has neither 'image_id' nor 'file_name' (expected COCO keypoint results)")
        by_image.setdefault(name, []).append((i, det))
    for name, dets in by_image.items():
        out.collect(name, lambda dets=dets: [
            _person(require(d, "keypoints", path, f"detection {i}"), f"{path}: detection {i}") for i, d in dets])


def read_coco_image_names(path: str | Path) -> dict[int | str, str]:
    """COCO image id -> file name from an annotation file's ``images`` list (for results keyed by ``image_id``)."""
    path = Path(path)
    data = load_json(path, "COCO annotation file")
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list):
        raise DataError(f"{path}: not a COCO annotation file (expected an object with an 'images' list of "
                        "{id, file_name})")
    return {_image_id(im, "id", path, f"images[{i}]"): str(require(im, "file_name", path, f"images[{i}]"))
            for i, im in enumerate(images)}


def _image_id(record: Any, key: str, path: Path, where: str) -> int | str:
    """A COCO image id: an integer (5.0 counts as 5, so it matches 5 and prints as '5') or, in custom sets, a
    string; a list or an object could not key the id -> file name table."""
    value = require(record, key, path, where)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise DataError(f"{path}: {where} field '{key}' is {value!r}, expected an image id (an integer or a string)")


def _openpose_image_name(path: Path) -> str:
    return path.name[: -len("_keypoints.json")] if path.name.endswith("_keypoints.json") else path.stem


def _openpose_people(data: Any, path: Path) -> list[np.ndarray]:
    people = data.get("people") if isinstance(data, dict) else None
    if not isinstance(people, list):
        raise DataError(f"{path}: not an OpenPose keypoint file (expected an object with a 'people' list)")
    out = []
    for i, p in enumerate(people):
        flat = _floats(p.get("pose_keypoints_2d", []) if isinstance(p, dict) else p, f"{path}: person {i}").ravel()
        if flat.size == 75:
            out.append(_by_names(flat.reshape(25, 3), BODY25))
        elif flat.size == 54:
            out.append(_by_names(flat.reshape(18, 3), get_joint_set("openpose18").joints))
        else:
            raise DataError(f"{path}: person {i} has {flat.size} values; expected BODY_25 (75) or COCO-18 (54)")
    return out


def _read_openpose_dir(folder: Path) -> Keypoints:
    files = sorted(folder.glob("*_keypoints.json"))
    if not files:
        raise DataError(f"{folder}: no OpenPose '*_keypoints.json' files")
    out = Keypoints()
    for f in files:
        out.collect(_openpose_image_name(f), lambda f=f: _openpose_people(load_json(f, "OpenPose file"), f))
    return out


def coco19_from_coco17(coco: np.ndarray) -> np.ndarray:
    """COCO17 plus pelvis and neck midpoints (confidence = product of the pair's), the demo's input set."""
    names = get_joint_set("coco17").joints
    j = add_midpoint(np.asarray(coco, np.float32)[:17, :3], names, "L_Hip", "R_Hip")
    return add_midpoint(j, names + ("Pelvis",), "L_Shoulder", "R_Shoulder")
