"""SMPL body model: reading the official files without chumpy, and a batched LBS layer.

Official SMPL pickles (``basicModel_*_lbs_10_207_0_v1.0.0.pkl``, ``SMPL_{NEUTRAL,MALE,FEMALE}.pkl``) are
Python 2 latin1 pickles that hold chumpy arrays and a ``scipy.sparse`` regressor. They are read here by an
unpickler that only knows numpy arrays and inert stand-ins for those two classes, so loading a body-model
file can never run code, and chumpy is not needed.
"""

from __future__ import annotations

import gzip
import io
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from hap3d.body.rotations import axis_angle_to_rotmat
from hap3d.utils import Hap3dError

NUM_JOINTS = 24
NUM_BETAS = 10
GENDERS = ("neutral", "male", "female")

# File names users have on disk, by gender, in the order they are looked for.
SMPL_FILE_NAMES = {
    "neutral": (
        "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "SMPL_NEUTRAL.pkl", "smpl_neutral.npz", "SMPL_NEUTRAL.npz",
    ),
    "male": ("basicModel_m_lbs_10_207_0_v1.0.0.pkl", "SMPL_MALE.pkl", "smpl_male.npz", "SMPL_MALE.npz"),
    "female": ("basicModel_f_lbs_10_207_0_v1.0.0.pkl", "SMPL_FEMALE.pkl", "smpl_female.npz", "SMPL_FEMALE.npz"),
}
OBTAIN_HINT = (
    "SMPL model files are licensed and are not shipped: register at https://smpl.is.tue.mpg.de (or "
    "https://smplify.is.tue.mpg.de for the neutral basicModel) and place them under <body_model_dir>/smpl/, "
    "or run `hap3d body synth --out DIR` for a procedural stand-in in the same format."
)
REQUIRED_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "f", "kintree_table")


class _Inert:
    """Stand-in for chumpy / scipy.sparse objects in a pickle: it only records the pickled state."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.state: Any = None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _ChumpyArray(_Inert):
    pass


class _SparseMatrix(_Inert):
    """A pickled scipy.sparse matrix or array; ``fmt`` ('csc', 'csr' or 'coo') comes from its class name, which
    current scipy does not repeat in the pickled state."""

    fmt = "csc"


_SPARSE_CLASSES = {
    f"{fmt}_{kind}": type(f"_Sparse_{fmt}_{kind}", (_SparseMatrix,), {"fmt": fmt})
    for fmt in ("csc", "csr", "coo")
    for kind in ("matrix", "array")
}


try:  # numpy >= 2 moved the pickling helpers; old pickles still name numpy.core
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray

_NUMPY_ALLOWED = {
    "_reconstruct": _multiarray._reconstruct,
    "scalar": _multiarray.scalar,
    "ndarray": np.ndarray,
    "dtype": np.dtype,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for body-model files: numpy arrays, plain containers, chumpy and scipy.sparse as inert data."""

    def find_class(self, module: str, name: str) -> Any:
        if module.split(".")[0] == "numpy" and name in _NUMPY_ALLOWED:
            return _NUMPY_ALLOWED[name]
        if (module, name) == ("_codecs", "encode"):  # how protocol-2 pickles store bytes
            import codecs

            return codecs.encode
        if module.startswith("chumpy"):
            return _ChumpyArray
        if module.startswith("scipy.sparse") and name in _SPARSE_CLASSES:
            return _SPARSE_CLASSES[name]
        if (module, name) in (("copy_reg", "_reconstructor"), ("copyreg", "_reconstructor")):
            return _reconstructor
        if (module, name) in (("__builtin__", "object"), ("builtins", "object")):
            return object
        if (module, name) in (("collections", "OrderedDict"),):
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': not an array or body-model type")


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, (_ChumpyArray, _SparseMatrix))):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls()


def _to_array(value: Any) -> Any:
    """Turn chumpy / sparse stand-ins into numpy arrays; leave other values alone."""
    if isinstance(value, _ChumpyArray):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise Hap3dError("chumpy object without a stored array ('x') — not a plain SMPL model file")
        return np.asarray(state["x"])
    if isinstance(value, _SparseMatrix):
        return _sparse_to_dense(value)
    return value


def _sparse_to_dense(matrix: _SparseMatrix) -> np.ndarray:
    """Densify a pickled CSC / CSR / COO matrix (old scipy: ``row``/``col``; current: ``coords``; either: ``_shape``
    or ``shape``). Duplicate entries add up, as in scipy. Malformed content raises :class:`ValueError`."""
    state = matrix.state if isinstance(matrix.state, dict) else {}
    fmt = str(state.get("format", matrix.fmt))
    shape = state.get("_shape", state.get("shape"))
    if shape is None or len(shape) != 2 or not all(isinstance(n, (int, np.integer)) and 0 <= n <= 10**7 for n in shape):
        raise ValueError(f"sparse {fmt} matrix without a valid 2-D shape ({shape!r})")
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols > 10**9:
        raise ValueError(f"sparse {fmt} matrix of {rows} x {cols} is too large to densify")
    data = np.asarray(state.get("data", ()))
    if fmt == "coo" or "coords" in state or "row" in state:
        coords = state["coords"] if "coords" in state else (state.get("row", ()), state.get("col", ()))
        r, c = (np.asarray(x, dtype=np.int64).reshape(-1) for x in coords)
    elif fmt in ("csc", "csr"):
        indices = np.asarray(state.get("indices", ()), dtype=np.int64).reshape(-1)
        indptr = np.asarray(state.get("indptr", ()), dtype=np.int64).reshape(-1)
        major = cols if fmt == "csc" else rows
        if len(indptr) != major + 1 or indptr[0] != 0 or np.any(np.diff(indptr) < 0) or indptr[-1] != len(indices):
            raise ValueError(f"sparse {fmt} matrix with an inconsistent 'indptr' for shape {rows} x {cols}")
        owner = np.repeat(np.arange(major), np.diff(indptr))
        r, c = (indices, owner) if fmt == "csc" else (owner, indices)
    else:
        raise ValueError(f"unsupported sparse format {fmt!r}")
    if not (len(r) == len(c) == data.size):
        raise ValueError(f"sparse {fmt} matrix: {data.size} values for {len(r)} row and {len(c)} column indices")
    if len(r) and (r.min() < 0 or r.max() >= rows or c.min() < 0 or c.max() >= cols):
        raise ValueError(f"sparse {fmt} matrix: an index lies outside its shape {rows} x {cols}")
    if not np.issubdtype(data.dtype, np.number):
        raise ValueError(f"sparse {fmt} matrix with non-numeric values ({data.dtype})")
    dense = np.zeros((rows, cols), dtype=data.dtype)
    np.add.at(dense, (r, c), data.reshape(-1))
    return dense


def load_pickle_restricted(data: bytes) -> Any:
    """Unpickle body-model bytes (Python 2 latin1 or Python 3) without running any code."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def load_smpl_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read an SMPL model (.pkl, .pkl.gz or .npz) into plain numpy arrays.

    Returns float32 ``v_template`` (6890,3), ``shapedirs`` (6890,3,10+), ``posedirs`` (6890,3,207),
    ``J_regressor`` (24,6890) dense, ``weights`` (6890,24), int64 ``faces`` (13776,3) and ``parents`` (24,).
    """
    path = Path(path)
    if not path.is_file():
        raise Hap3dError(f"SMPL model file not found: {path}\n{OBTAIN_HINT}")
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        if path.suffix == ".npz" or raw[:2] == b"PK":
            with np.load(io.BytesIO(raw), allow_pickle=False) as z:
                src = {k: z[k] for k in z.files}
        else:
            src = load_pickle_restricted(raw)
    except (pickle.UnpicklingError, ValueError, EOFError, OSError, KeyError) as err:
        raise Hap3dError(f"{path}: cannot be read as an SMPL model file ({err}).\n{OBTAIN_HINT}") from err
    if not isinstance(src, dict):
        raise Hap3dError(f"{path}: expected a dict of SMPL arrays, found {type(src).__name__}.\n{OBTAIN_HINT}")
    missing = [k for k in REQUIRED_KEYS if k not in src]
    if missing:
        raise Hap3dError(f"{path}: not an SMPL model file, missing keys {missing}.\n{OBTAIN_HINT}")
    a = {}
    for key in REQUIRED_KEYS:
        try:
            a[key] = _to_array(src[key])
        except (ValueError, TypeError, KeyError) as err:
            raise Hap3dError(f"{path}: field '{key}' cannot be read: {err}") from err
    out = {
        "v_template": np.asarray(a["v_template"], dtype=np.float32),
        "shapedirs": np.asarray(a["shapedirs"], dtype=np.float32),
        "posedirs": np.asarray(a["posedirs"], dtype=np.float32),
        "J_regressor": np.asarray(a["J_regressor"], dtype=np.float32),
        "weights": np.asarray(a["weights"], dtype=np.float32),
        "faces": np.asarray(a["f"]).astype(np.int64),
        "parents": _parents_from_kintree(np.asarray(a["kintree_table"])),
    }
    _check_shapes(path, out)
    return out


def _parents_from_kintree(kintree: np.ndarray) -> np.ndarray:
    parents = kintree[0].astype(np.int64)
    parents[0] = -1
    order = kintree[1].astype(np.int64)
    out = np.empty_like(parents)
    out[order] = parents
    return out


def _check_shapes(path: Path, a: dict[str, np.ndarray]) -> None:
    n = a["v_template"].shape[0]
    j = a["J_regressor"].shape[0]
    expected = {
        "v_template": (n, 3),
        "posedirs": (n, 3, (j - 1) * 9),
        "J_regressor": (j, n),
        "weights": (n, j),
    }
    for key, shape in expected.items():
        if a[key].shape != shape:
            raise Hap3dError(f"{path}: '{key}' has shape {a[key].shape}, expected {shape} for an SMPL-family model")
    if a["shapedirs"].shape[:2] != (n, 3):
        raise Hap3dError(f"{path}: 'shapedirs' has shape {a['shapedirs'].shape}, expected ({n}, 3, K)")
    if a["faces"].ndim != 2 or a["faces"].shape[1] != 3 or a["faces"].max() >= n:
        raise Hap3dError(f"{path}: 'f' must be (F, 3) vertex indices below {n}")
    if a["parents"].shape != (j,):
        raise Hap3dError(f"{path}: kintree_table does not describe {j} joints")


def find_smpl_file(body_model_dir: str | Path, gender: str = "neutral") -> Path:
    """Locate the SMPL file of a gender in ``body_model_dir`` (or its ``smpl/`` subfolder)."""
    if gender not in GENDERS:
        raise ValueError(f"gender must be one of {GENDERS}, got {gender!r}")
    root = Path(body_model_dir)
    candidates = [d / name for d in (root / "smpl", root) for name in SMPL_FILE_NAMES[gender]]
    candidates += [c.with_name(c.name + ".gz") for c in candidates]
    for c in candidates:
        if c.is_file():
            return c
    raise Hap3dError(
        f"no {gender} SMPL model found in {root}. Looked for: "
        + ", ".join(str(c.relative_to(root)) for c in candidates[: 2 * len(SMPL_FILE_NAMES[gender])])
        + f".\n{OBTAIN_HINT}"
    )


@dataclass(frozen=True)
class SMPLOutput:
    vertices: torch.Tensor  # (B, V, 3)
    joints: torch.Tensor  # (B, 24, 3), the model's own kinematic joints


class SMPL(nn.Module):
    """Batched SMPL linear blend skinning, numerically equal to the reference's smplpytorch layer.

    Holds the model as float32 buffers (``th_*`` names as in the reference's ``human_model_layer``). They are
    not persistent: the licensed body model is read from its own files, never stored in network checkpoints. Call
    with pose (B, 72) axis-angle, betas (B, <=K) and optional translation (B, 3).
    """

    def __init__(self, arrays: dict[str, np.ndarray], num_betas: int = NUM_BETAS) -> None:
        super().__init__()
        k = min(num_betas, arrays["shapedirs"].shape[-1])
        self.num_betas = k
        self.register_buffer("th_v_template", torch.from_numpy(arrays["v_template"]).unsqueeze(0), persistent=False)
        shapedirs = np.ascontiguousarray(arrays["shapedirs"][..., :k])
        self.register_buffer("th_shapedirs", torch.from_numpy(shapedirs), persistent=False)
        self.register_buffer("th_posedirs", torch.from_numpy(arrays["posedirs"]), persistent=False)
        self.register_buffer("th_J_regressor", torch.from_numpy(arrays["J_regressor"]), persistent=False)
        self.register_buffer("th_weights", torch.from_numpy(arrays["weights"]), persistent=False)
        self.register_buffer("th_faces", torch.from_numpy(arrays["faces"]), persistent=False)
        self.register_buffer("parents", torch.from_numpy(arrays["parents"]), persistent=False)

    @classmethod
    def from_file(cls, path: str | Path, num_betas: int = NUM_BETAS) -> "SMPL":
        return cls(load_smpl_arrays(path), num_betas)

    @classmethod
    def from_dir(cls, body_model_dir: str | Path, gender: str = "neutral") -> "SMPL":
        return cls.from_file(find_smpl_file(body_model_dir, gender))

    @property
    def faces(self) -> torch.Tensor:
        return self.th_faces

    def forward(self, pose: torch.Tensor, betas: torch.Tensor, trans: torch.Tensor | None = None) -> SMPLOutput:
        b = pose.shape[0]
        dtype = self.th_v_template.dtype
        pose = pose.to(dtype)
        nj = self.th_J_regressor.shape[0]
        nv = self.th_v_template.shape[1]
        # Plain matmuls over flattened blend shapes: much faster than the equivalent batched einsums on CPU.
        if betas.ndim != 2 or betas.shape[0] != b:
            raise ValueError(f"betas must be (B, <={self.num_betas}) for a batch of {b}, got {tuple(betas.shape)}")
        k = min(betas.shape[1], self.num_betas)  # fewer betas: the missing ones are zero
        shape_offsets = betas.to(dtype)[:, :k] @ self.th_shapedirs[..., :k].reshape(nv * 3, k).T
        v_shaped = self.th_v_template + shape_offsets.reshape(b, nv, 3)
        joints = torch.matmul(self.th_J_regressor, v_shaped)

        rot = axis_angle_to_rotmat(pose.reshape(b, nj, 3))  # (B, J, 3, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(b, -1)
        v_posed = v_shaped + (pose_feature @ self.th_posedirs.reshape(nv * 3, -1).T).reshape(b, nv, 3)

        # Forward kinematics: world transform of each joint, then remove its rest position.
        rel = joints.clone()
        rel[:, 1:] = joints[:, 1:] - joints[:, self.parents[1:]]
        local = _rigid(rot, rel)
        chain = [local[:, 0]]
        for i in range(1, nj):
            chain.append(chain[int(self.parents[i])] @ local[:, i])
        world = torch.stack(chain, dim=1)  # (B, J, 4, 4)
        posed_joints = world[..., :3, 3]
        skin = world[..., :3, :].clone()
        skin[..., 3] = posed_joints - (world[..., :3, :3] @ joints.unsqueeze(-1)).squeeze(-1)

        t = torch.matmul(self.th_weights, skin.reshape(b, nj, 12)).reshape(b, nv, 3, 4)
        verts = (t[..., :3] * v_posed.unsqueeze(2)).sum(-1) + t[..., 3]
        if trans is not None:
            verts = verts + trans.to(dtype).unsqueeze(1)
            posed_joints = posed_joints + trans.to(dtype).unsqueeze(1)
        return SMPLOutput(verts, posed_joints)


def _rigid(rot: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Stack (..., 3, 3) rotations and (..., 3) translations into (..., 4, 4) homogeneous transforms."""
    top = torch.cat([rot, t.unsqueeze(-1)], dim=-1)
    bottom = torch.zeros(top.shape[:-2] + (1, 4), dtype=top.dtype, device=top.device)
    bottom[..., 0, 3] = 1
    return torch.cat([top, bottom], dim=-2)


class GenderedSMPL(nn.Module):
    """Neutral, male and female SMPL side by side, for ground truth given per-sample genders (0/1/2)."""

    def __init__(self, models: dict[str, SMPL]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(models[g] for g in GENDERS)

    @classmethod
    def from_dir(cls, body_model_dir: str | Path) -> "GenderedSMPL":
        return cls({g: SMPL.from_dir(body_model_dir, g) for g in GENDERS})

    def forward(
        self, pose: torch.Tensor, betas: torch.Tensor, trans: torch.Tensor, gender: torch.Tensor
    ) -> torch.Tensor:
        """(B, V, 3) vertices, each sample through the model of its gender (GENDERS order)."""
        out = pose.new_zeros(pose.shape[0], self.layers[0].th_v_template.shape[1], 3)
        for g, layer in enumerate(self.layers):
            sel = gender == g
            if sel.any():
                out[sel] = layer(pose[sel], betas[sel], trans[sel]).vertices.to(out.dtype)
        return out
