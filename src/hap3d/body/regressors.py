"""Joint regressors: the model's 30-joint SMPL regressor and the auxiliary .npy regressors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from hap3d.body.joints import SMPL30_FACE_VERTICES, SMPL30_HEAD_TOP_EXTRA_ROW, get_joint_set
from hap3d.body.smpl import MAX_FILE_BYTES, read_npy
from hap3d.files import read_bytes
from hap3d.utils import Hap3dError

REGRESSOR_FILES = {
    "J_regressor_extra": "J_regressor_extra.npy",
    "J_regressor_h36m_correct": "J_regressor_h36m_correct.npy",
    "J_regressor_coco_hip_smpl": "J_regressor_coco_hip_smpl.npy",
}
OBTAIN_HINT = (
    "The regressors come with SPIN / 3DCrowdNet (J_regressor_extra.npy, J_regressor_h36m_correct.npy, "
    "J_regressor_coco_hip_smpl.npy); place them in <body_model_dir>/, or run `hap3d body synth --out DIR`."
)


def load_regressor(path: str | Path, num_vertices: int = 6890) -> np.ndarray:
    """Load a (J, V) vertex-to-joint regressor from .npy (no pickles), keeping its dtype; its size is checked
    before it is read, and its values must be finite numbers."""
    path = Path(path)
    if not path.is_file():
        raise Hap3dError(f"joint regressor not found: {path}\n{OBTAIN_HINT}")
    data = read_bytes(path, MAX_FILE_BYTES, "joint regressor")
    try:
        arr = read_npy(io.BytesIO(data), len(data))
    except (ValueError, TypeError, EOFError) as err:
        raise Hap3dError(f"{path}: not a plain .npy array ({err})") from err
    if arr.ndim != 2 or arr.shape[1] != num_vertices:
        raise Hap3dError(f"{path}: regressor must have shape (J, {num_vertices}), got {arr.shape}")
    if arr.dtype.kind not in "fiu":
        raise Hap3dError(f"{path}: regressor must hold numbers, found {arr.dtype}")
    bad = arr.size - int(np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise Hap3dError(f"{path}: regressor holds {bad} non-finite values (NaN or Inf)")
    return arr


def find_regressor(body_model_dir: str | Path, name: str) -> Path:
    """Path of a named auxiliary regressor inside a body-model folder."""
    if name not in REGRESSOR_FILES:
        raise ValueError(f"unknown regressor {name!r}; known: {sorted(REGRESSOR_FILES)}")
    return Path(body_model_dir) / REGRESSOR_FILES[name]


def smpl30_regressor(j_regressor: np.ndarray, j_regressor_extra: np.ndarray) -> np.ndarray:
    """(30, V) float32: SMPL's 24 joints, five face vertices (nose, eyes, ears) and the LSP head top."""
    names = get_joint_set("smpl30").joints
    v = j_regressor.shape[1]
    rows = [np.asarray(j_regressor, dtype=np.float32)]
    for name in names[24:29]:
        one_hot = np.zeros((1, v), dtype=np.float32)
        one_hot[0, SMPL30_FACE_VERTICES[name]] = 1.0
        rows.append(one_hot)
    head_top = j_regressor_extra[SMPL30_HEAD_TOP_EXTRA_ROW : SMPL30_HEAD_TOP_EXTRA_ROW + 1]
    rows.append(np.asarray(head_top, dtype=np.float32))
    return np.concatenate(rows, axis=0)
