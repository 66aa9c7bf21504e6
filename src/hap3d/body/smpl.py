"""SMPL body model: reading the official files without chumpy, and a batched LBS layer.

Official SMPL pickles (``basicModel_*_lbs_10_207_0_v1.0.0.pkl``, ``SMPL_{NEUTRAL,MALE,FEMALE}.pkl``) are
Python 2 latin1 pickles that hold chumpy arrays and a ``scipy.sparse`` regressor. They are read here by an
unpickler that only knows numpy arrays and inert stand-ins for those two classes, so loading a body-model
file can never run code, and chumpy is not needed.
"""

from __future__ import annotations

import io
import pickle
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import torch
import torch.nn as nn

from hap3d.body.rotations import axis_angle_to_rotmat
from hap3d.files import read_bytes
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
ROOT_PARENTS = (-1, 4294967295)  # a kintree_table's root parent: -1, or -1 stored as uint32
# Bounds whatever a file claims: official SMPL files are 40-250 MB, and SMPL-X's largest array (posedirs) holds 15 M
# values, so these are far above any real model and far below what exhausts memory.
MAX_FILE_BYTES = 1 << 30
MAX_ARRAY_VALUES = 1 << 25


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
        if (module, name) in (("__builtin__", "bytes"), ("builtins", "bytes")):  # protocol 2's empty bytes
            return _bytes
        if (module, name) in (("collections", "OrderedDict"),):
            import collections

            return collections.OrderedDict
        raise pickle.UnpicklingError(f"refusing to load '{module}.{name}': not an array or body-model type")


def _bytes(*args: Any) -> bytes:
    """``bytes`` for a pickle, but never ``bytes(n)``: a count would allocate whatever the file claims."""
    if args and not isinstance(args[0], (bytes, str, list)):
        raise pickle.UnpicklingError(f"refusing bytes({type(args[0]).__name__})")
    return bytes(*args)


def _reconstructor(cls: type, base: type, state: Any) -> Any:
    if not (isinstance(cls, type) and issubclass(cls, (_ChumpyArray, _SparseMatrix))):
        raise pickle.UnpicklingError(f"refusing to reconstruct {cls!r}")
    return cls()


def _to_array(value: Any) -> Any:
    """Turn chumpy / sparse stand-ins into numpy arrays; leave other values alone."""
    if isinstance(value, _ChumpyArray):
        state = value.state if isinstance(value.state, dict) else {}
        if "x" not in state:
            raise ValueError("chumpy object without a stored array ('x') — not a plain SMPL model file")
        return state["x"]
    if isinstance(value, _SparseMatrix):
        return _sparse_to_dense(value)
    return value


def _sparse_to_dense(matrix: _SparseMatrix) -> np.ndarray:
    """Densify a pickled CSC / CSR / COO matrix (old scipy: ``row``/``col``; current: ``coords``; either: ``_shape``
    or ``shape``). Duplicate entries add up, as in scipy. The declared shape is checked against MAX_ARRAY_VALUES
    before anything is allocated; malformed content raises :class:`ValueError`."""
    state = matrix.state if isinstance(matrix.state, dict) else {}
    fmt = str(state.get("format", matrix.fmt))
    shape = state.get("_shape", state.get("shape"))
    if not isinstance(shape, tuple) or len(shape) != 2 or not all(_is_count(n) for n in shape):
        raise ValueError(f"sparse {fmt} matrix without a valid 2-D shape ({shape!r})")
    rows, cols = int(shape[0]), int(shape[1])
    if rows * cols > MAX_ARRAY_VALUES:
        raise ValueError(f"sparse {fmt} matrix declares {rows} x {cols} values, above the {MAX_ARRAY_VALUES} limit")
    data = np.asarray(state.get("data", ()))
    if data.dtype.kind not in "fiu":
        raise ValueError(f"sparse {fmt} matrix with non-numeric values ({data.dtype})")
    if fmt == "coo" or "coords" in state or "row" in state:
        coords = state["coords"] if "coords" in state else (state.get("row", ()), state.get("col", ()))
        r, c = (_index_array(x) for x in coords)
    elif fmt in ("csc", "csr"):
        indices, indptr = _index_array(state.get("indices", ())), _index_array(state.get("indptr", ()))
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
    dense = np.zeros((rows, cols), dtype=data.dtype)
    np.add.at(dense, (r, c), data.reshape(-1))
    return dense


def _is_count(n: Any) -> bool:
    return isinstance(n, (int, np.integer)) and not isinstance(n, bool) and 0 <= n <= MAX_ARRAY_VALUES


def _index_array(value: Any) -> np.ndarray:
    """A 1-D int64 index array from pickled sparse-matrix content, or a ValueError."""
    arr = np.asarray(value)
    if arr.size and arr.dtype.kind not in "iu":
        raise ValueError(f"sparse matrix indices must be integers, found {arr.dtype}")
    return arr.astype(np.int64).reshape(-1)


def load_pickle_restricted(data: bytes) -> Any:
    """Unpickle body-model bytes (Python 2 latin1 or Python 3) without running any code."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _gunzip(data: bytes, limit: int) -> bytes:
    """Decompress gzip data, refusing output above ``limit`` bytes (a small file can expand without bound)."""
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    out = d.decompress(data, limit + 1)
    if len(out) > limit or d.unconsumed_tail:
        raise ValueError(f"it decompresses to more than {limit / 2**20:.0f} MB")
    return out


def read_npy(f: BinaryIO, available: int) -> np.ndarray:
    """One .npy array from ``f`` (no pickles), its header's declared size checked against the ``available`` bytes
    and MAX_ARRAY_VALUES before numpy allocates it (np.load allocates whatever the header claims)."""
    version = np.lib.format.read_magic(f)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(f)
    count = int(np.prod(shape, dtype=object))
    if count > MAX_ARRAY_VALUES or count * dtype.itemsize > available:
        raise ValueError(f"an array declares shape {shape} of {dtype}: more than the file holds or the "
                         f"{MAX_ARRAY_VALUES}-value limit")
    if dtype.hasobject:
        raise ValueError("an array holds Python objects (pickles are not read)")
    data = f.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"an array of shape {shape} is truncated")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C").copy()


def _read_npz(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an .npz, each read with :func:`read_npy` (bounded whatever a header claims)."""
    out = {}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            if info.filename.endswith(".npy"):
                with z.open(info) as f:
                    out[info.filename[: -len(".npy")]] = read_npy(f, info.file_size)
    return out


def _read_smpl_source(path: Path) -> Any:
    """The raw content of an SMPL file: a dict (hopefully) from an .npz, a pickle or a gzipped pickle."""
    raw = read_bytes(path, MAX_FILE_BYTES, "SMPL model file")
    if path.suffix == ".gz":
        raw = _gunzip(raw, MAX_FILE_BYTES)
    if path.suffix == ".npz" or raw[:2] == b"PK":
        return _read_npz(raw)
    return load_pickle_restricted(raw)


def load_smpl_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Read an SMPL model (.pkl, .pkl.gz or .npz) into plain numpy arrays, every field checked (type, shape,
    finiteness, index ranges, a valid kinematic tree) so that a malformed file is named here, not met as NaN
    meshes or an index error later.

    Returns float32 ``v_template`` (6890,3), ``shapedirs`` (6890,3,10+), ``posedirs`` (6890,3,207),
    ``J_regressor`` (24,6890) dense, ``weights`` (6890,24), int64 ``faces`` (13776,3) and ``parents`` (24,).
    """
    path = Path(path)
    if not path.is_file():
        raise Hap3dError(f"SMPL model file not found: {path}\n{OBTAIN_HINT}")
    try:
        src = _read_smpl_source(path)
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError, OSError, KeyError, IndexError, AttributeError,
            zipfile.BadZipFile, zlib.error, MemoryError, RecursionError) as err:
        raise Hap3dError(f"{path}: cannot be read as an SMPL model file ({err}).\n{OBTAIN_HINT}") from err
    if not isinstance(src, dict):
        raise Hap3dError(f"{path}: expected a dict of SMPL arrays, found {type(src).__name__}.\n{OBTAIN_HINT}")
    missing = [k for k in REQUIRED_KEYS if k not in src]
    if missing:
        raise Hap3dError(f"{path}: not an SMPL model file, missing keys {missing}.\n{OBTAIN_HINT}")
    a = {}
    for key in REQUIRED_KEYS:
        try:
            a[key] = _checked_array(key, _to_array(src[key]))
        except (ValueError, TypeError, KeyError, MemoryError) as err:
            raise Hap3dError(f"{path}: field '{key}' cannot be used: {err}") from err
    out = {k: a[k].astype(np.float32) for k in ("v_template", "shapedirs", "posedirs", "J_regressor", "weights")}
    out["faces"] = a["f"].astype(np.int64)
    try:
        out["parents"] = _parents_from_kintree(a["kintree_table"])
    except ValueError as err:
        raise Hap3dError(f"{path}: field 'kintree_table' cannot be used: {err}") from err
    _check_shapes(path, out)
    return out


def _checked_array(key: str, value: Any) -> np.ndarray:
    """``value`` as a numeric array: integers for the index fields, finite numbers for the rest."""
    if not isinstance(value, np.ndarray):
        raise TypeError(f"expected a numeric array, found {type(value).__name__}")
    if value.size > MAX_ARRAY_VALUES:
        raise ValueError(f"{value.size} values, above the {MAX_ARRAY_VALUES} limit")
    if key in ("f", "kintree_table"):
        if value.dtype.kind not in "iu":
            raise TypeError(f"expected integer indices, found {value.dtype} values")
        return value
    if value.dtype.kind not in "fiu":
        raise TypeError(f"expected numbers, found {value.dtype} values")
    bad = value.size - int(np.count_nonzero(np.isfinite(value)))
    if bad:
        raise ValueError(f"{bad} of its {value.size} values are not finite (NaN or Inf)")
    return value


def _parents_from_kintree(kintree: np.ndarray) -> np.ndarray:
    """Parent of each joint from a (2, J) ``kintree_table`` (row 0: parents, row 1: joint ids; the root's parent
    is -1 or its uint32 spelling 4294967295). Every joint's parent must come before it, as the skinning's forward
    kinematics walk the joints in order; a table that breaks this (cycles included) raises ValueError."""
    if kintree.ndim != 2 or kintree.shape[0] != 2 or kintree.shape[1] < 1:
        raise ValueError(f"expected shape (2, J), found {kintree.shape}")
    j = kintree.shape[1]
    order = kintree[1].astype(np.int64)
    if not np.array_equal(np.sort(order), np.arange(j)):
        raise ValueError(f"row 1 must list the joint ids 0..{j - 1} once each")
    if int(kintree[0, 0]) not in ROOT_PARENTS:
        raise ValueError(f"the first column must be the root (parent -1 or 4294967295), found {kintree[0, 0]}")
    if order[0] != 0:
        raise ValueError(f"the root must be joint 0, found joint {order[0]}")
    parents = np.empty(j, dtype=np.int64)
    parents[order] = kintree[0].astype(np.int64)
    parents[0] = -1
    bad = [i for i in range(1, j) if not 0 <= parents[i] < i]
    if bad:
        raise ValueError(f"joint {bad[0]} has parent {parents[bad[0]]}; a joint's parent must be an earlier joint")
    return parents


def _check_shapes(path: Path, a: dict[str, np.ndarray]) -> None:
    """Sizes consistent across the arrays: vertex count from v_template, joint count from J_regressor."""
    if a["v_template"].ndim != 2 or a["v_template"].shape[0] < 1 or a["J_regressor"].ndim != 2:
        raise Hap3dError(f"{path}: 'v_template' must be (V, 3) and 'J_regressor' (J, V); found "
                         f"{a['v_template'].shape} and {a['J_regressor'].shape}")
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
    if a["shapedirs"].ndim != 3 or a["shapedirs"].shape[:2] != (n, 3):
        raise Hap3dError(f"{path}: 'shapedirs' has shape {a['shapedirs'].shape}, expected ({n}, 3, K)")
    faces = a["faces"]
    if faces.ndim != 2 or faces.shape[1] != 3 or (faces.size and (faces.min() < 0 or faces.max() >= n)):
        raise Hap3dError(f"{path}: 'f' must be (F, 3) vertex indices in [0, {n}), found shape {faces.shape}"
                         + (f", values {faces.min()}..{faces.max()}" if faces.size else ""))
    if a["parents"].shape != (j,):
        raise Hap3dError(f"{path}: 'kintree_table' describes {a['parents'].shape[0]} joints, 'J_regressor' {j}")


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
        if betas.ndim != 2 or betas.shape[0] != b:
            raise ValueError(f"betas must be (B, <={self.num_betas}) for a batch of {b}, got {tuple(betas.shape)}")
        # Every product below is one plain 2D matmul over the whole batch (vertex- or joint-major layouts): the
        # broadcast batched forms run one small, badly shaped GEMM per sample and were 1.8x slower at batch 64.
        k = min(betas.shape[1], self.num_betas)  # fewer betas: the missing ones are zero
        shape_offsets = betas.to(dtype)[:, :k] @ self.th_shapedirs[..., :k].reshape(nv * 3, k).T
        v_shaped = self.th_v_template + shape_offsets.reshape(b, nv, 3)
        joints = (self.th_J_regressor @ v_shaped.transpose(0, 1).reshape(nv, b * 3)).reshape(nj, b, 3).transpose(0, 1)

        rot = axis_angle_to_rotmat(pose.reshape(b, nj, 3))  # (B, J, 3, 3)
        eye = torch.eye(3, dtype=rot.dtype, device=rot.device)
        pose_feature = (rot[:, 1:] - eye).reshape(b, -1)
        v_posed = torch.addmm(v_shaped.reshape(b, nv * 3), pose_feature, self.th_posedirs.reshape(nv * 3, -1).T)

        world_rot, posed_joints = self._kinematics(rot, joints)
        # Skinning transforms (B, J, 3, 4): each joint's world motion relative to its rest position.
        offset = posed_joints - (world_rot @ joints.unsqueeze(-1)).squeeze(-1)
        skin = torch.cat([world_rot, offset.unsqueeze(-1)], dim=-1).reshape(b, nj, 12)
        t = (skin.transpose(1, 2) @ self.th_weights.T).reshape(b, 3, 4, nv)  # per-vertex blend, coordinate-major
        vt = v_posed.reshape(b, nv, 3).transpose(1, 2).unsqueeze(1)  # (B, 1, 3, V)
        verts = t[:, :, 3] + t[:, :, 0] * vt[:, :, 0] + t[:, :, 1] * vt[:, :, 1] + t[:, :, 2] * vt[:, :, 2]
        verts = verts.transpose(1, 2)
        if trans is not None:
            verts = verts + trans.to(dtype).unsqueeze(1)
            posed_joints = posed_joints + trans.to(dtype).unsqueeze(1)
        return SMPLOutput(verts.contiguous(), posed_joints)

    def _kinematics(self, rot: torch.Tensor, joints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward kinematics: world rotations (B, J, 3, 3) and posed joint positions (B, J, 3).

        All joints of one tree depth are composed in one batched product (SMPL: 8 depths instead of 23 joints)."""
        rel = joints.clone()
        rel[:, 1:] = joints[:, 1:] - joints[:, self.parents[1:]]
        world_rot, world_pos = rot.clone(), rel.clone()
        cached = self.__dict__.get("_levels")  # computed once per device: reading the tree syncs with the device
        if cached is None or cached[0] != self.parents.device:
            cached = self.__dict__["_levels"] = (self.parents.device, _tree_levels(self.parents))
        for idx, par in cached[1]:
            parent_rot = world_rot[:, par]
            world_pos[:, idx] = (parent_rot @ rel[:, idx].unsqueeze(-1)).squeeze(-1) + world_pos[:, par]
            world_rot[:, idx] = parent_rot @ rot[:, idx]
        return world_rot, world_pos


def _tree_levels(parents: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(joint indices, their parents) per depth of the kinematic tree below the root (parents precede children)."""
    order = [int(p) for p in parents.tolist()]
    depth = [0] * len(order)
    for i, p in enumerate(order[1:], start=1):
        depth[i] = depth[p] + 1
    levels = []
    with torch.inference_mode(False):  # plain tensors: the cache also serves later calls that record gradients
        for d in range(1, max(depth, default=0) + 1):
            idx = [i for i, di in enumerate(depth) if di == d]
            parent = [order[i] for i in idx]
            levels.append((torch.tensor(idx, device=parents.device), torch.tensor(parent, device=parents.device)))
    return levels


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
