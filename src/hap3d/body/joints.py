"""Named joint sets (interim: SMPL30 and the 15-joint graph set; the full registry lands with the joints module)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SMPL30_FACE_VERTICES = {"Nose": 331, "L_Eye": 2802, "R_Eye": 6262, "L_Ear": 3489, "R_Ear": 3990}
SMPL30_HEAD_TOP_EXTRA_ROW = 3


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


_SMPL30 = (
    "Pelvis", "L_Hip", "R_Hip", "Torso", "L_Knee", "R_Knee", "Spine", "L_Ankle", "R_Ankle", "Chest", "L_Toe",
    "R_Toe", "Neck", "L_Thorax", "R_Thorax", "Head", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
    "R_Wrist", "L_Hand", "R_Hand", "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "Head_top",
)
_G15 = (
    "Pelvis", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle", "Neck", "Head_top", "L_Shoulder",
    "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist",
)
JOINT_SETS = {
    "smpl30": JointSet("smpl30", _SMPL30, (), ()),
    "graph15": JointSet(
        "graph15", _G15, ((1, 2), (3, 4), (5, 6), (9, 10), (11, 12), (13, 14)),
        ((0, 1), (1, 3), (3, 5), (0, 2), (2, 4), (4, 6), (0, 7), (7, 8), (7, 9), (9, 11), (11, 13), (7, 10), (10, 12), (12, 14)),
    ),
}


def get_joint_set(name: str) -> JointSet:
    return JOINT_SETS[name.lower()]


def joint_mapping(src: str, dst: str) -> tuple[np.ndarray, np.ndarray]:
    s, d = get_joint_set(src).joints, get_joint_set(dst).joints
    pairs = [(s.index(n), i) for i, n in enumerate(d) if n in s]
    return np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])


def graph_adjacency(name: str = "graph15") -> np.ndarray:
    js = get_joint_set(name)
    a = np.zeros((js.num_joints,) * 2)
    for i, j in js.skeleton + js.flip_pairs:
        a[i, j] = a[j, i] = 1
    a += np.eye(js.num_joints)
    d = 1 / np.sqrt(a.sum(0))
    return (d[:, None] * a * d[None, :]).astype(np.float32)

H36M_EVAL14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)
_COCO17 = ("Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle")
_OP18 = ("Nose", "Neck", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "R_Eye", "L_Eye", "R_Ear", "L_Ear")
JOINT_SETS["coco17"] = JointSet("coco17", _COCO17, (), ())
JOINT_SETS["coco19"] = JointSet("coco19", _COCO17 + ("Pelvis", "Neck"), (), ())
JOINT_SETS["openpose19"] = JointSet("openpose19", _OP18 + ("Pelvis",), (), ())


def convert_joints(arr, src, dst, fill=0.0):
    si, di = joint_mapping(src, dst)
    out = np.full(arr.shape[:-2] + (get_joint_set(dst).num_joints, arr.shape[-1]), fill, dtype=arr.dtype)
    out[..., di, :] = arr[..., si, :]
    return out
