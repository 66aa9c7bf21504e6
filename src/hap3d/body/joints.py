"""Named joint sets, name-based conversion between them, flip pairs, skeletons and the graph adjacency.

Every dataset is mapped onto the model's 30-joint SMPL set by exact joint-name match, as the reference does:
unmatched source joints are dropped and unmatched targets are filled. Two name matches join different anatomy and
are kept for parity: H36M 'Torso' lands on SMPL spine1 and MuCo 'Spine' on spine2.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TypeVar

import numpy as np
import torch

Pairs = tuple[tuple[int, int], ...]
ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


@dataclass(frozen=True)
class JointSet:
    """An ordered list of joint names plus the index pairs that flipping and drawing need.

    ``root`` is the Pelvis where the set has one; sets without a pelvis (COCO17, CrowdPose14, OpenPose18) use 0,
    since they are 2D-only and never made root-relative.
    """

    name: str
    joints: tuple[str, ...]
    flip_pairs: Pairs
    skeleton: Pairs
    root: int

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def __len__(self) -> int:
        return len(self.joints)

    def index(self, name: str) -> int:
        """Position of a joint, with an error that names the set (tuple.index does not)."""
        try:
            return self.joints.index(name)
        except ValueError:
            raise ValueError(f"joint {name!r} is not in joint set {self.name!r}") from None

    def flip_index(self) -> np.ndarray:
        """Permutation p such that ``arr[..., p, :]`` exchanges left and right joints (an involution)."""
        perm = np.arange(len(self.joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _edges(joints: tuple[str, ...], named: tuple[tuple[str, str], ...]) -> Pairs:
    """Name pairs to index pairs; limbs are written by name so they cannot drift from the joint order."""
    return tuple((joints.index(a), joints.index(b)) for a, b in named)


def _chain(*names: str) -> tuple[tuple[str, str], ...]:
    """Consecutive limbs along a kinematic chain."""
    return tuple(zip(names[:-1], names[1:]))


def _sides(*names: str) -> tuple[tuple[str, str], ...]:
    """The same chain once for each side; names are given without the ``L_``/``R_`` prefix."""
    return tuple((f"{s}_{a}", f"{s}_{b}") for s in ("L", "R") for a, b in _chain(*names))


def _make(name: str, joints: tuple[str, ...], flip_pairs: Pairs, limbs: tuple[tuple[str, str], ...]) -> JointSet:
    root = joints.index("Pelvis") if "Pelvis" in joints else 0
    return JointSet(name, joints, flip_pairs, _edges(joints, limbs), root)


def _with_pelvis(base: JointSet, name: str, extra: tuple[str, ...] = ("Pelvis",)) -> JointSet:
    """A set extended by a mid-hip Pelvis (and optionally more joints), as the datasets append them."""
    joints = base.joints + extra
    limbs = tuple((base.joints[a], base.joints[b]) for a, b in base.skeleton) + (
        ("Pelvis", "L_Hip"),
        ("Pelvis", "R_Hip"),
    )
    if "Neck" in extra:
        limbs += (("Neck", "Nose"), ("Neck", "L_Shoulder"), ("Neck", "R_Shoulder"), ("Neck", "Pelvis"))
    return _make(name, joints, base.flip_pairs, limbs)


SMPL24 = (
    "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle", "Chest", "L_Toe",
    "R_Toe", "Neck", "L_Thorax", "R_Thorax", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist", "L_Hand", "R_Hand",
)  # fmt: skip
SMPL30 = SMPL24 + ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head_top")
GRAPH15 = (
    "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "Head_top", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)  # fmt: skip
H36M17 = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Nose", "Head_top",
    "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)  # fmt: skip
MUCO21 = (
    "Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee",
    "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head", "R_Hand", "L_Hand", "R_Toe", "L_Toe",
)  # fmt: skip
COCO17 = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)  # fmt: skip
MPII16 = (
    "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Thorax", "Neck", "Head_top", "R_Wrist",
    "R_Elbow", "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist",
)  # fmt: skip
CROWDPOSE14 = (
    "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee",
    "L_Ankle", "R_Ankle", "Head_top", "Neck",
)  # fmt: skip
OPENPOSE18 = (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee",
    "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
)  # fmt: skip

_SMPL30_FLIP: Pairs = (
    (1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23), (25, 26), (27, 28),
)  # fmt: skip
# SMPL's own kinematic tree (parent, child) over the 24 body joints.
_SMPL24_LIMBS = (
    _chain("Pelvis", "Torso", "Spine", "Chest", "Neck", "Head")
    + (("Pelvis", "L_Hip"), ("Pelvis", "R_Hip"), ("Chest", "L_Thorax"), ("Chest", "R_Thorax"))
    + _sides("Hip", "Knee", "Ankle", "Toe")
    + _sides("Thorax", "Shoulder", "Elbow", "Wrist", "Hand")
)
_COCO_LIMBS = (
    _sides("Hip", "Knee", "Ankle")
    + _sides("Shoulder", "Elbow", "Wrist")
    + _sides("Eye", "Ear", "Shoulder", "Hip")
    + (("L_Hip", "R_Hip"), ("L_Shoulder", "R_Shoulder"), ("L_Eye", "R_Eye"), ("Nose", "L_Eye"), ("Nose", "R_Eye"))
)

_COCO17 = _make("coco17", COCO17, ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10), (11, 12), (13, 14), (15, 16)), _COCO_LIMBS)
_CROWDPOSE14 = _make(
    "crowdpose14",
    CROWDPOSE14,
    ((0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)),
    _chain("Head_top", "Neck")
    + (("Neck", "L_Shoulder"), ("Neck", "R_Shoulder"), ("L_Hip", "R_Hip"))
    + _sides("Shoulder", "Elbow", "Wrist")
    + _sides("Shoulder", "Hip", "Knee", "Ankle"),
)
_OPENPOSE18 = _make(
    "openpose18",
    OPENPOSE18,
    ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (14, 15), (16, 17)),
    (("Neck", "Nose"), ("Neck", "L_Shoulder"), ("Neck", "R_Shoulder"), ("Neck", "L_Hip"), ("Neck", "R_Hip"))
    + (("Nose", "L_Eye"), ("Nose", "R_Eye"))
    + _sides("Eye", "Ear")
    + _sides("Shoulder", "Elbow", "Wrist")
    + _sides("Hip", "Knee", "Ankle"),
)

JOINT_SETS: dict[str, JointSet] = {
    s.name: s
    for s in (
        _make("smpl24", SMPL24, tuple(p for p in _SMPL30_FLIP if max(p) < 24), _SMPL24_LIMBS),
        JointSet(
            "smpl30",
            SMPL30,
            _SMPL30_FLIP,
            ((0, 1), (1, 4), (4, 7), (7, 10), (0, 2), (2, 5), (5, 8), (8, 11), (0, 3), (3, 6), (6, 9), (9, 14),
             (14, 17), (17, 19), (19, 21), (21, 23), (9, 13), (13, 16), (16, 18), (18, 20), (20, 22), (9, 12),
             (12, 24), (24, 15), (24, 25), (24, 26), (25, 27), (26, 28), (24, 29)),
            0,
        ),  # fmt: skip
        JointSet(
            "graph15",
            GRAPH15,
            ((1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (13, 14)),
            ((0, 1), (1, 3), (3, 5), (0, 2), (2, 4), (4, 6), (0, 7), (7, 8), (7, 9), (9, 11), (11, 13), (7, 10),
             (10, 12), (12, 14)),
            0,
        ),  # fmt: skip
        _make(
            "h36m17",
            H36M17,
            ((1, 4), (2, 5), (3, 6), (14, 11), (15, 12), (16, 13)),
            _chain("Pelvis", "Torso", "Neck", "Nose", "Head_top")
            + (("Pelvis", "L_Hip"), ("Pelvis", "R_Hip"), ("Neck", "L_Shoulder"), ("Neck", "R_Shoulder"))
            + _sides("Hip", "Knee", "Ankle")
            + _sides("Shoulder", "Elbow", "Wrist"),
        ),
        _make(
            "muco21",
            MUCO21,
            ((2, 5), (3, 6), (4, 7), (8, 11), (9, 12), (10, 13), (17, 18), (19, 20)),
            _chain("Pelvis", "Spine", "Thorax", "Head", "Head_top")
            + (("Pelvis", "L_Hip"), ("Pelvis", "R_Hip"), ("Thorax", "L_Shoulder"), ("Thorax", "R_Shoulder"))
            + _sides("Hip", "Knee", "Ankle", "Toe")
            + _sides("Shoulder", "Elbow", "Wrist", "Hand"),
        ),
        _COCO17,
        _with_pelvis(_COCO17, "coco18"),
        _with_pelvis(_COCO17, "coco19", ("Pelvis", "Neck")),
        _make(
            "mpii16",
            MPII16,
            ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13)),
            _chain("Pelvis", "Thorax", "Neck", "Head_top")
            + (("Pelvis", "L_Hip"), ("Pelvis", "R_Hip"), ("Thorax", "L_Shoulder"), ("Thorax", "R_Shoulder"))
            + _sides("Hip", "Knee", "Ankle")
            + _sides("Shoulder", "Elbow", "Wrist"),
        ),
        _CROWDPOSE14,
        _with_pelvis(_CROWDPOSE14, "crowdpose15"),
        _OPENPOSE18,
        _with_pelvis(_OPENPOSE18, "openpose19"),
    )
}

# The reference's CrowdPose flip pairs. They are wrong (they pair e.g. R_Shoulder with L_Elbow and leave the knees
# unpaired); the registry stores the correct ones, and the data code uses these only under reference_compat to
# reproduce the reference's training distribution.
CROWDPOSE_REFERENCE_FLIP_PAIRS: Pairs = ((0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (8, 9), (10, 11))
# H36M17 indices of the 14 joints the H36M protocol evaluates (no Pelvis, Torso, Nose).
H36M_EVAL14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
# SMPL mesh vertices that stand in for the face joints of SMPL30.
SMPL30_FACE_VERTICES = {"Nose": 331, "L_Eye": 2802, "R_Eye": 6262, "L_Ear": 3489, "R_Ear": 3990}
# Row of the extra joint regressor that gives SMPL30's Head_top.
SMPL30_HEAD_TOP_EXTRA_ROW = 3
# SMPL joints whose fitted rotation is not supervised: ankles, toes, wrists and hands.
FIT_PARAM_INVALID_JOINTS = (7, 8, 10, 11, 20, 21, 22, 23)


def get_joint_set(name: str) -> JointSet:
    """Look a set up case-insensitively; an unknown name lists the known ones."""
    try:
        return JOINT_SETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown joint set {name!r}; known: {', '.join(JOINT_SETS)}") from None


@lru_cache(maxsize=None)
def _mapping(src: str, dst: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    s, d = get_joint_set(src).joints, get_joint_set(dst).joints
    pairs = [(s.index(n), i) for i, n in enumerate(d) if n in s]
    return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)


def joint_mapping(src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """(src_idx, dst_idx) int64 of the joints both sets name identically, ordered by destination index.

    The destination order makes ``src_idx`` a gather index whenever every target joint is matched (e.g. SMPL30 to
    G15). Fresh arrays are returned so callers may modify them.
    """
    si, di = _mapping(src.lower(), dst.lower())
    return np.array(si, dtype=np.int64), np.array(di, dtype=np.int64)


def convert_joints(arr: ArrayT, src: str, dst: str, fill: float = 0.0) -> ArrayT:
    """(..., J_src, C) array or tensor -> (..., J_dst, C) by joint name; unmatched targets are ``fill``.

    The result has the input's type, dtype and device.
    """
    n_src = get_joint_set(src).num_joints
    if arr.shape[-2] != n_src:
        raise ValueError(f"expected {n_src} joints of {src!r} on axis -2, got shape {tuple(arr.shape)}")
    si, di = joint_mapping(src, dst)
    shape = (*arr.shape[:-2], get_joint_set(dst).num_joints, arr.shape[-1])
    if isinstance(arr, torch.Tensor):
        out = arr.new_full(shape, fill)
        out[..., torch.from_numpy(di).to(arr.device), :] = arr[..., torch.from_numpy(si).to(arr.device), :]
        return out
    out_np = np.full(shape, fill, dtype=arr.dtype)
    out_np[..., di, :] = arr[..., si, :]
    return out_np


def graph_adjacency(joint_set: str = "graph15") -> np.ndarray:
    """float32 D^-1/2 (A + I) D^-1/2 with A linking skeleton edges and flip pairs, d the column sums.

    Computed in float64 and cast once, like the reference; its extra epsilon on the degrees cancels out exactly.
    """
    js = get_joint_set(joint_set)
    a = np.eye(js.num_joints, dtype=np.float64)
    for i, j in js.skeleton + js.flip_pairs:
        a[i, j] = a[j, i] = 1.0
    d = 1.0 / np.sqrt(a.sum(axis=0))
    return (d[:, None] * a * d[None, :]).astype(np.float32)


# SMPL30 rows the RotationNet graph reads, in G15 order.
SMPL30_TO_GRAPH15 = joint_mapping("smpl30", "graph15")[0]
