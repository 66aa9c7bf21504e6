"""Named joint sets, name-based conversion between them, flip pairs, skeletons and the graph adjacency.

Datasets are mapped onto the model's 30-joint SMPL set by exact joint-name match, as the reference does:
unmatched source joints are dropped and unmatched targets stay zero. Two name matches merge different
anatomy and are kept for parity (H36M 'Torso' lands on SMPL spine1, MuCo 'Spine' on spine2).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch


@dataclass(frozen=True)
class JointSet:
    name: str
    joints: tuple[str, ...]
    flip_pairs: tuple[tuple[int, int], ...]
    skeleton: tuple[tuple[int, int], ...]
    root: int = 0

    @property
    def num_joints(self) -> int:
        return len(self.joints)

    def __len__(self) -> int:
        return len(self.joints)

    def index(self, name: str) -> int:
        return self.joints.index(name)

    def flip_index(self) -> np.ndarray:
        """Permutation that exchanges left and right joints."""
        perm = np.arange(len(self.joints))
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm


def _pairs_by_name(joints: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """Every (L_x, R_x) pair present in a name list."""
    out = []
    for i, n in enumerate(joints):
        if n.startswith("L_") and "R_" + n[2:] in joints:
            out.append((i, joints.index("R_" + n[2:])))
    return tuple(out)


def _edges(joints: tuple[str, ...], named: list[tuple[str, str]]) -> tuple[tuple[int, int], ...]:
    return tuple((joints.index(a), joints.index(b)) for a, b in named if a in joints and b in joints)


SMPL24 = (
    "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle", "Chest", "L_Toe",
    "R_Toe", "Neck", "L_Thorax", "R_Thorax", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist", "L_Hand", "R_Hand",
)
SMPL30 = SMPL24 + ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head_top")
GRAPH15 = (
    "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "Head_top", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)
H36M17 = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Torso", "Neck", "Nose", "Head_top",
    "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)
MUCO21 = (
    "Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee",
    "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head", "R_Hand", "L_Hand", "R_Toe", "L_Toe",
)
COCO17 = (
    "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
)
MPII16 = (
    "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Thorax", "Neck", "Head_top", "R_Wrist",
    "R_Elbow", "R_Shoulder", "L_Shoulder", "L_Elbow", "L_Wrist",
)
CROWDPOSE14 = (
    "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee",
    "L_Ankle", "R_Ankle", "Head_top", "Neck",
)
OPENPOSE18 = (
    "Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee",
    "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear",
)

# Anatomical limbs by name; each set keeps the ones it has.
_LIMBS = [
    ("Pelvis", "L_Hip"), ("Pelvis", "R_Hip"), ("L_Hip", "L_Knee"), ("R_Hip", "R_Knee"), ("L_Knee", "L_Ankle"),
    ("R_Knee", "R_Ankle"), ("L_Ankle", "L_Toe"), ("R_Ankle", "R_Toe"), ("Pelvis", "Torso"), ("Torso", "Neck"),
    ("Pelvis", "Spine"), ("Spine", "Thorax"), ("Thorax", "Neck"), ("Neck", "Head"), ("Head", "Head_top"),
    ("Neck", "Nose"), ("Nose", "Head_top"), ("Neck", "Head_top"), ("Thorax", "L_Shoulder"), ("Thorax", "R_Shoulder"),
    ("Neck", "L_Shoulder"), ("Neck", "R_Shoulder"), ("L_Shoulder", "L_Elbow"), ("R_Shoulder", "R_Elbow"),
    ("L_Elbow", "L_Wrist"), ("R_Elbow", "R_Wrist"), ("L_Wrist", "L_Hand"), ("R_Wrist", "R_Hand"),
    ("Nose", "L_Eye"), ("Nose", "R_Eye"), ("L_Eye", "L_Ear"), ("R_Eye", "R_Ear"), ("L_Shoulder", "L_Hip"),
    ("R_Shoulder", "R_Hip"), ("L_Shoulder", "R_Shoulder"), ("L_Hip", "R_Hip"),
]


def _set(name: str, joints: tuple[str, ...], root: str | None = None, skeleton=None, flip=None) -> JointSet:
    return JointSet(
        name,
        joints,
        _pairs_by_name(joints) if flip is None else tuple(flip),
        _edges(joints, _LIMBS) if skeleton is None else tuple(skeleton),
        joints.index(root) if root else 0,
    )


JOINT_SETS: dict[str, JointSet] = {
    s.name: s
    for s in (
        _set("smpl24", SMPL24, "Pelvis"),
        _set(
            "smpl30", SMPL30, "Pelvis",
            skeleton=((0, 1), (1, 4), (4, 7), (7, 10), (0, 2), (2, 5), (5, 8), (8, 11), (0, 3), (3, 6), (6, 9),
                      (9, 14), (14, 17), (17, 19), (19, 21), (21, 23), (9, 13), (13, 16), (16, 18), (18, 20),
                      (20, 22), (9, 12), (12, 24), (24, 15), (24, 25), (24, 26), (25, 27), (26, 28), (24, 29)),
        ),
        _set(
            "graph15", GRAPH15, "Pelvis",
            skeleton=((0, 1), (1, 3), (3, 5), (0, 2), (2, 4), (4, 6), (0, 7), (7, 8), (7, 9), (9, 11), (11, 13),
                      (7, 10), (10, 12), (12, 14)),
        ),
        _set("h36m17", H36M17, "Pelvis"),
        _set("muco21", MUCO21, "Pelvis"),
        _set("coco17", COCO17),
        _set("coco18", COCO17 + ("Pelvis",), "Pelvis"),
        _set("coco19", COCO17 + ("Pelvis", "Neck"), "Pelvis"),
        _set("mpii16", MPII16, "Pelvis"),
        _set("crowdpose14", CROWDPOSE14),
        _set("crowdpose15", CROWDPOSE14 + ("Pelvis",), "Pelvis"),
        _set("openpose18", OPENPOSE18),
        _set("openpose19", OPENPOSE18 + ("Pelvis",), "Pelvis"),
    )
}

# The reference's CrowdPose flip pairs, which pair wrong joints (e.g. R_Shoulder with L_Elbow); used only under
# reference_compat to reproduce its training distribution.
CROWDPOSE_REFERENCE_FLIP_PAIRS = ((0, 1), (1, 2), (3, 4), (5, 6), (6, 7), (8, 9), (10, 11))
H36M_EVAL14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
SMPL30_FACE_VERTICES = {"Nose": 331, "L_Eye": 2802, "R_Eye": 6262, "L_Ear": 3489, "R_Ear": 3990}
SMPL30_HEAD_TOP_EXTRA_ROW = 3  # row of SPIN's J_regressor_extra used as Head_top
FIT_PARAM_INVALID_JOINTS = tuple(SMPL24.index(n) for n in ("L_Ankle", "R_Ankle", "L_Toe", "R_Toe", "L_Wrist", "R_Wrist", "L_Hand", "R_Hand"))


def get_joint_set(name: str) -> JointSet:
    try:
        return JOINT_SETS[name.lower()]
    except KeyError:
        raise ValueError(f"unknown joint set {name!r}; known: {', '.join(JOINT_SETS)}") from None


@lru_cache(maxsize=None)
def joint_mapping(src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    """(src indices, dst indices) of the joints both sets name identically."""
    s, d = get_joint_set(src).joints, get_joint_set(dst).joints
    pairs = [(s.index(n), i) for i, n in enumerate(d) if n in s]
    return np.array([p[0] for p in pairs], dtype=np.int64), np.array([p[1] for p in pairs], dtype=np.int64)


def convert_joints(arr, src: str, dst: str, fill: float = 0.0):
    """(..., J_src, C) numpy array or tensor -> (..., J_dst, C) by name; unmatched targets are ``fill``."""
    si, di = joint_mapping(src, dst)
    n = get_joint_set(dst).num_joints
    if isinstance(arr, torch.Tensor):
        out = arr.new_full(arr.shape[:-2] + (n, arr.shape[-1]), fill)
        out[..., torch.from_numpy(di).to(arr.device), :] = arr[..., torch.from_numpy(si).to(arr.device), :]
        return out
    out = np.full(arr.shape[:-2] + (n, arr.shape[-1]), fill, dtype=arr.dtype)
    out[..., di, :] = arr[..., si, :]
    return out


def graph_adjacency(name: str = "graph15") -> np.ndarray:
    """Symmetrically normalised D^-1/2 (A + I) D^-1/2 over skeleton edges and flip pairs (float32)."""
    js = get_joint_set(name)
    a = np.zeros((js.num_joints,) * 2)
    for i, j in js.skeleton + js.flip_pairs:
        a[i, j] = a[j, i] = 1
    a += np.eye(js.num_joints)
    d = 1.0 / np.sqrt(a.sum(0))
    return (d[:, None] * a * d[None, :]).astype(np.float32)


SMPL30_TO_GRAPH15 = joint_mapping("smpl30", "graph15")[0]
