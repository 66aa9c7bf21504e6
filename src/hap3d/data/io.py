"""File reading with errors that name the file and the problem."""

from __future__ import annotations

import json
from collections.abc import ItemsView
from pathlib import Path
from typing import Any

import numpy as np

from hap3d import files
from hap3d.utils import Hap3dError


class DataError(Hap3dError):
    """A dataset file is missing or malformed."""


def read_image_bgr(path: str | Path) -> np.ndarray:
    """The decoded file as OpenCV's imread gives it: BGR uint8 (H, W, 3); EXIF orientation ignored, as the reference
    does. Read through :mod:`hap3d.files`: bounded in size whatever the header claims, and safe for any file name
    (an oversized or unreadable training image is then a bad sample like any other).

    Training crops read this and convert only the pixels a crop needs (see ``crop_image``): converting a whole
    1000x1000 frame to float costs more than the crop itself."""
    try:
        return files.read_image_bgr(path)
    except files.FileProblem as err:
        raise DataError(str(err)) from None


def load_image_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 (H, W, 3)."""
    return np.ascontiguousarray(read_image_bgr(path)[:, :, ::-1])


def load_image(path: str | Path) -> np.ndarray:
    """RGB float32 (H, W, 3) in [0, 255], the reference's working format."""
    return read_image_bgr(path)[:, :, ::-1].astype(np.float32)


def load_json(path: str | Path, what: str = "annotation file") -> Any:
    """A JSON file, read through :mod:`hap3d.files` (bounded size, any file name, no FIFO hang, no crash on deep
    nesting), with errors that say where the text breaks and whether it looks truncated."""
    path = Path(path)
    try:
        text = files.read_bytes(path, files.MAX_JSON_BYTES, what).decode("utf-8")
        return files.parse_json(text, str(path))
    except files.FileProblem as err:
        raise DataError(str(err)) from None
    except json.JSONDecodeError as err:
        hint = _ends_early(err)
        raise DataError(
            f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: {err.msg}" + (f"; {hint}" if hint else "")
        ) from err
    except UnicodeDecodeError as err:
        hint = f"; {TRUNCATED}" if err.reason == "unexpected end of data" else ""  # cut inside a multi-byte character
        raise DataError(f"{path}: not UTF-8 text ({err}){hint}") from err


TRUNCATED = "the file ends early: it may be truncated (an interrupted download or copy?)"


def _ends_early(err: json.JSONDecodeError) -> str:
    """Why the text may be incomplete, or "": a bare "Expecting value at column 946" does not tell a user that
    the download stopped. The parser ran out of text when the error is at the end, inside a string that never
    closes (a string cut off has no closing quote, nor the newline that would give "Invalid control character"),
    or at a partial number or literal (``tru``, ``1.``) with nothing after it."""
    if not err.doc.strip():
        return "the file is empty (an interrupted download or copy?)"
    if err.msg.startswith("Unterminated string"):
        return TRUNCATED
    if err.msg == "Extra data":  # a complete value followed by more text
        return ""
    tail = err.doc[err.pos :].rstrip()
    return TRUNCATED if len(tail) <= 10 and all(c.isalnum() or c in ".+-" for c in tail) else ""


def _kind(value: Any) -> str:
    """A JSON value's type as the file spells it, for messages."""
    if value is None:
        return "null"
    names = {bool: "a boolean", str: "a string", list: "a list", dict: "an object"}
    return names.get(type(value), type(value).__name__)


def require(record: Any, key: str, path: Path | str, where: str) -> Any:
    """record[key], or a DataError naming the file, the record and the field."""
    if not isinstance(record, dict):
        raise DataError(f"{path}: {where} is {_kind(record)}, expected an object with field '{key}'")
    if key not in record:
        raise DataError(f"{path}: {where} has no field '{key}'")
    return record[key]


def require_list(record: Any, key: str, path: Path | str, where: str) -> list:
    """record[key], which must be a JSON list (e.g. a file's 'images' or 'annotations')."""
    value = require(record, key, path, where)
    if not isinstance(value, list):
        raise DataError(f"{path}: {where} field '{key}' is {_kind(value)}, expected a list")
    return value


def require_int(record: Any, key: str, path: Path | str, where: str) -> int:
    """record[key] as an int; integral floats (5.0) are accepted, strings, booleans and null are not."""
    value = require(record, key, path, where)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise DataError(f"{path}: {where} field '{key}' is {value!r} ({_kind(value)}), expected an integer")


def optional_number(record: Any, key: str, path: Path | str, where: str) -> float | None:
    """record[key] as a finite float; None when the field is missing, null, NaN or infinite (the caller decides
    what "no value" means). Any other type (a string, a list) is an error."""
    if not isinstance(record, dict):
        raise DataError(f"{path}: {where} is {_kind(record)}, expected an object with field '{key}'")
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DataError(f"{path}: {where} field '{key}' is {value!r} ({_kind(value)}), expected a number")
    return float(value) if np.isfinite(value) else None


def require_str(record: Any, key: str, path: Path | str, where: str) -> str:
    value = require(record, key, path, where)
    if not isinstance(value, str):
        raise DataError(f"{path}: {where} field '{key}' is {value!r} ({_kind(value)}), expected a string")
    return value


class ImageIndex:
    """A COCO-style file's 'images' list by id, each image with its place for messages ("image 7 (images[2])")."""

    def __init__(self, db: Any, path: Path | str) -> None:
        self.path = path
        self._images: dict[int, tuple[dict, str]] = {}
        for k, im in enumerate(require_list(db, "images", path, "the file")):
            image_id = require_int(im, "id", path, f"images[{k}]")
            self._images[image_id] = (im, f"image {image_id} (images[{k}])")

    def find(self, image_id: int, where: str) -> tuple[dict, str]:
        """The image that the annotation at ``where`` refers to, or a DataError when 'images' has no such id."""
        found = self._images.get(image_id)
        if found is None:
            raise DataError(f"{self.path}: {where} refers to image_id {image_id}, which is not in 'images'")
        return found

    def items(self) -> ItemsView[int, tuple[dict, str]]:
        return self._images.items()


def as_array(
    value: Any, shape: tuple[int, ...], path: Path | str, where: str, dtype=np.float32, finite: bool = True
) -> np.ndarray:
    """Convert a JSON list to an array of an exact size (reshaped to ``shape``), with a precise error.

    JSON null becomes NaN in numpy without complaint, so ``finite`` (the default) rejects null, NaN and inf and
    says where the first one is; callers that decide themselves what a non-finite value means pass False."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise DataError(f"{path}: {where} is not numeric ({err})") from err
    if arr.size != int(np.prod(shape)):
        raise DataError(f"{path}: {where} has {arr.size} values, expected {int(np.prod(shape))} (shape {shape})")
    arr = arr.reshape(shape)
    if finite and not np.isfinite(arr).all():
        raise DataError(f"{path}: {where} has a null, NaN or infinite value at index {first_non_finite(arr)}")
    return arr


def first_non_finite(arr: np.ndarray) -> tuple[int, ...] | int:
    """Index of the first null/NaN/inf entry (an int for 1-D arrays), for messages."""
    index = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
    return index[0] if len(index) == 1 else index
