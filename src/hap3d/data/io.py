"""File reading with errors that name the file and the problem."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from hap3d.utils import Hap3dError


class DataError(Hap3dError):
    """A dataset file is missing or malformed."""


def read_image_bgr(path: str | Path) -> np.ndarray:
    """The decoded file as OpenCV gives it: BGR uint8 (H, W, 3); EXIF orientation ignored, as the reference does.

    Training crops read this and convert only the pixels a crop needs (see ``crop_image``): converting a whole
    1000x1000 frame to float costs more than the crop itself."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if not isinstance(img, np.ndarray):
        if not Path(path).exists():
            raise DataError(f"image not found: {path}")
        raise DataError(f"image cannot be decoded (corrupt or unsupported format): {path}")
    return img


def load_image_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3)."""
    return np.ascontiguousarray(read_image_bgr(path)[:, :, ::-1])


def load_image(path: str | Path) -> np.ndarray:
    """RGB float32 (H, W, 3) in [0, 255], the reference's working format."""
    return read_image_bgr(path)[:, :, ::-1].astype(np.float32)


def load_json(path: str | Path, what: str = "annotation file") -> Any:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{what} not found: {path}")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}") from err
    except UnicodeDecodeError as err:
        raise DataError(f"{path}: not UTF-8 text ({err})") from err


def require(record: dict, key: str, path: Path | str, where: str) -> Any:
    """record[key], or a DataError naming the file, the record and the field."""
    if not isinstance(record, dict) or key not in record:
        raise DataError(f"{path}: {where} has no field '{key}'")
    return record[key]


def as_array(value: Any, shape: tuple[int, ...], path: Path | str, where: str, dtype=np.float32) -> np.ndarray:
    """Convert a JSON list to an array of an exact size (reshaped to ``shape``), with a precise error."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: {where} is not numeric ({err})") from err
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path}: {where} has {arr.size} values, expected {int(np.prod(shape))} (shape {shape})")
    return arr.reshape(shape)
