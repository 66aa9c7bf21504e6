"""Animation export of one tracked person: a skinned, animated glTF binary (GLB) and a BVH of the SMPL skeleton.

A :class:`SkeletonAnimation` holds the track's body in its rest pose (SMPL template deformed by the track's mean
shape: vertices, the 24 joints, the skinning weights), and per keyframe each joint's rotation relative to its
parent and the root joint's position. Positions are metres in one fixed camera: the demo's camera with its
principal point moved to pixel (0, 0) (each frame's crop camera differs; see :mod:`hap3d.infer.smoothing`), so
the trajectory is continuous. Both files are converted from that OpenCV frame (y down, z forward) to the y-up
frame of glTF and BVH by a 180 deg turn about x, as :func:`hap3d.infer.export.save_glb` does.

The GLB plays in Blender and three.js viewers: one mesh with ``JOINTS_0``/``WEIGHTS_0`` (each vertex's four
strongest SMPL weights, renormalised), a skin over 24 joint nodes named as :data:`hap3d.body.joints.SMPL24`, and
one animation (rotation of every joint, translation of the root, linear interpolation). Skinning is linear blend
skinning only: SMPL's pose-dependent corrective shapes cannot be expressed in glTF, so elbows and knees fold
slightly differently from the per-frame meshes. The BVH has the same skeleton (offsets in metres, ``ZXY`` Euler
angles in degrees, the root's position channels).
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from hap3d.body.joints import SMPL24
from hap3d.body.smpl import SMPL
from hap3d.infer.predictor import PersonPrediction
from hap3d.utils import atomic_write

ANIMATION_FORMATS = ("glb", "bvh")
_FLIP = np.diag([1.0, -1.0, -1.0])  # OpenCV camera -> y-up (glTF, BVH): 180 deg about x
_INFLUENCES = 4


@dataclass
class SkeletonAnimation:
    """One person's rest body and keyframes (OpenCV camera frame, metres; see the module docstring)."""

    rest_vertices: np.ndarray  # (V, 3)
    faces: np.ndarray  # (F, 3)
    weights: np.ndarray  # (V, 24)
    parents: np.ndarray  # (24,), -1 for the root
    rest_joints: np.ndarray  # (24, 3)
    rotations: np.ndarray  # (N, 24, 3, 3) each joint relative to its parent (the root: to the camera)
    root_positions: np.ndarray  # (N, 3) the root joint
    times: np.ndarray  # (N,) seconds

    @classmethod
    def from_track(cls, smpl: SMPL, people: list[PersonPrediction], frames: np.ndarray,
                   fps: float) -> SkeletonAnimation:
        """From a track's per-frame predictions (frames: their indices, for the key times)."""
        device = smpl.th_v_template.device
        betas = torch.as_tensor(np.mean([p.smpl_shape for p in people], 0), dtype=torch.float32, device=device)
        with torch.no_grad():
            rest = smpl(torch.zeros(1, 72, device=device), betas[None])
        rest_vertices = rest.vertices[0].double().cpu().numpy()
        rest_joints = rest.joints[0].double().cpu().numpy()
        pose = np.stack([p.smpl_pose for p in people]).reshape(len(people), 24, 3).astype(np.float64)
        trans = np.stack([p.cam_trans + np.r_[p.princpt * p.cam_trans[2] / p.focal, 0.0] for p in people])
        parents = smpl.parents.cpu().numpy().astype(np.int64).copy()
        parents[0] = -1
        return cls(rest_vertices, smpl.faces.cpu().numpy(), smpl.th_weights.double().cpu().numpy(), parents,
                   rest_joints,
                   Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(len(people), 24, 3, 3),
                   rest_joints[0] + trans, np.asarray(frames, np.float64) / fps)

    def offsets(self) -> np.ndarray:
        """(24, 3) each joint's rest position relative to its parent (the root's: its own position)."""
        off = self.rest_joints.copy()
        off[1:] -= self.rest_joints[self.parents[1:]]
        return off

    def joint_positions(self) -> np.ndarray:
        """(N, 24, 3) posed joint positions by forward kinematics (equal to SMPL's joints)."""
        n = len(self.times)
        world_rot = np.zeros((n, 24, 3, 3))
        pos = np.zeros((n, 24, 3))
        offsets = self.offsets()
        for j in range(24):
            p = self.parents[j]
            if p < 0:
                world_rot[:, j], pos[:, j] = self.rotations[:, j], self.root_positions
            else:
                world_rot[:, j] = world_rot[:, p] @ self.rotations[:, j]
                pos[:, j] = pos[:, p] + world_rot[:, p] @ offsets[j]
        return pos


def _flip_rotations(rot: np.ndarray) -> np.ndarray:
    return _FLIP @ rot @ _FLIP


class _GlbBuilder:
    """Accumulates binary buffer views and accessors of one glTF document."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, array: np.ndarray, kind: str, component: int, minmax: bool = False) -> int:
        data = np.ascontiguousarray(array).tobytes()
        self.views.append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)})
        self.blob += data + b"\0" * (-len(data) % 4)
        acc: dict[str, Any] = {"bufferView": len(self.views) - 1, "componentType": component,
                               "count": int(array.shape[0]), "type": kind}
        if minmax:
            acc["min"] = np.asarray(array).min(0).reshape(-1).tolist()
            acc["max"] = np.asarray(array).max(0).reshape(-1).tolist()
        self.accessors.append(acc)
        return len(self.accessors) - 1


def _skin_influences(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each vertex's four strongest joints (uint16) and their weights, renormalised to sum to 1 (float32)."""
    joints = np.argsort(-weights, axis=1)[:, :_INFLUENCES]
    w = np.take_along_axis(weights, joints, 1)
    return joints.astype(np.uint16), (w / w.sum(1, keepdims=True)).astype(np.float32)


def glb_document(anim: SkeletonAnimation, colour: Any = (0.7, 0.7, 0.7)) -> tuple[dict, bytes]:
    """The glTF JSON and binary buffer of the animated, skinned person."""
    f32, u16, u32 = 5126, 5123, 5125
    b = _GlbBuilder()
    joints, weights = _skin_influences(anim.weights)
    positions = b.add((anim.rest_vertices @ _FLIP).astype(np.float32), "VEC3", f32, minmax=True)
    indices = b.add(anim.faces.astype(np.uint32).reshape(-1), "SCALAR", u32)
    joint_acc = b.add(joints, "VEC4", u16)
    weight_acc = b.add(weights, "VEC4", f32)
    rest = anim.rest_joints @ _FLIP
    inverse_bind = np.tile(np.eye(4), (24, 1, 1))
    inverse_bind[:, :3, 3] = -rest
    ibm = b.add(inverse_bind.transpose(0, 2, 1).astype(np.float32).reshape(24, 16), "MAT4", f32)  # column-major
    times = b.add(anim.times.astype(np.float32), "SCALAR", f32, minmax=True)
    quats = Rotation.from_matrix(_flip_rotations(anim.rotations).reshape(-1, 3, 3)).as_quat()  # x, y, z, w
    quats = quats.reshape(len(anim.times), 24, 4)
    for k in range(1, len(quats)):  # q and -q are one rotation: interpolate the short way
        quats[k] *= np.where((quats[k] * quats[k - 1]).sum(-1, keepdims=True) < 0, -1.0, 1.0)
    channels, samplers = [], []
    offsets = anim.offsets() @ _FLIP
    nodes: list[dict] = []
    for j, name in enumerate(SMPL24):
        node: dict[str, Any] = {"name": name, "translation": offsets[j].tolist(),
                                "rotation": quats[0, j].tolist()}
        children = [int(c) for c in np.flatnonzero(anim.parents == j)]
        if children:
            node["children"] = children
        nodes.append(node)
        samplers.append({"input": times, "output": b.add(quats[:, j].astype(np.float32), "VEC4", f32),
                         "interpolation": "LINEAR"})
        channels.append({"sampler": j, "target": {"node": j, "path": "rotation"}})
    root = (anim.root_positions @ _FLIP).astype(np.float32)
    nodes[0]["translation"] = root[0].tolist()
    samplers.append({"input": times, "output": b.add(root, "VEC3", f32), "interpolation": "LINEAR"})
    channels.append({"sampler": 24, "target": {"node": 0, "path": "translation"}})
    nodes.append({"name": "body", "mesh": 0, "skin": 0})
    rgb = np.clip(np.asarray(colour, np.float64), 0, 1).tolist()
    doc = {
        "asset": {"version": "2.0", "generator": "hap3d"},
        "scene": 0, "scenes": [{"nodes": [0, 24]}], "nodes": nodes,
        "meshes": [{"name": "body", "primitives": [{"attributes": {
            "POSITION": positions, "JOINTS_0": joint_acc, "WEIGHTS_0": weight_acc}, "indices": indices,
            "material": 0}]}],
        "materials": [{"pbrMetallicRoughness": {"baseColorFactor": [*rgb, 1.0], "metallicFactor": 0.0,
                                                "roughnessFactor": 0.8}, "doubleSided": True}],
        "skins": [{"joints": list(range(24)), "inverseBindMatrices": ibm, "skeleton": 0}],
        "animations": [{"name": "motion", "channels": channels, "samplers": samplers}],
        "buffers": [{"byteLength": len(b.blob)}], "bufferViews": b.views, "accessors": b.accessors,
    }
    return doc, bytes(b.blob)


def save_animation_glb(path: str | os.PathLike, anim: SkeletonAnimation, colour: Any = (0.7, 0.7, 0.7)) -> None:
    """The skinned, animated person as one GLB file."""
    doc, blob = glb_document(anim, colour)
    text = json.dumps(doc, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
    data = struct.pack("<III", 0x46546C67, 2, 12 + len(body)) + body
    atomic_write(path, lambda tmp: _write_bytes(tmp, data))


def _write_bytes(tmp: str, data: bytes) -> None:
    with open(tmp, "wb") as fh:
        fh.write(data)


def bvh_text(anim: SkeletonAnimation) -> str:
    """The BVH file: hierarchy (offsets in metres, y up) and one motion line per keyframe."""
    offsets = anim.offsets() @ _FLIP
    lines = ["HIERARCHY"]

    def joint(j: int, depth: int) -> None:
        pad = "  " * depth
        head = "ROOT" if anim.parents[j] < 0 else "JOINT"
        off = np.zeros(3) if anim.parents[j] < 0 else offsets[j]
        channels = ("6 Xposition Yposition Zposition Zrotation Xrotation Yrotation" if anim.parents[j] < 0
                    else "3 Zrotation Xrotation Yrotation")
        lines.extend([f"{pad}{head} {SMPL24[j]}", f"{pad}{{", f"{pad}  OFFSET {_nums(off)}",
                      f"{pad}  CHANNELS {channels}"])
        children = np.flatnonzero(anim.parents == j)
        for c in children:
            joint(int(c), depth + 1)
        if not len(children):
            lines.extend([f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET {_nums(0.25 * off)}", f"{pad}  }}"])
        lines.append(f"{pad}}}")

    joint(0, 0)
    order = _depth_first(anim.parents)
    euler = Rotation.from_matrix(_flip_rotations(anim.rotations).reshape(-1, 3, 3)).as_euler("ZXY", degrees=True)
    euler = euler.reshape(len(anim.times), 24, 3)[:, order]
    root = anim.root_positions @ _FLIP
    step = float(np.median(np.diff(anim.times))) if len(anim.times) > 1 else 1 / 30
    lines += ["MOTION", f"Frames: {len(anim.times)}", f"Frame Time: {step:.6f}"]
    lines += [_nums(np.r_[root[k], euler[k].reshape(-1)]) for k in range(len(anim.times))]
    return "\n".join(lines) + "\n"


def _depth_first(parents: np.ndarray) -> list[int]:
    """Joints in the order the hierarchy lists them (the order of the motion channels)."""
    order: list[int] = []

    def visit(j: int) -> None:
        order.append(j)
        for c in np.flatnonzero(parents == j):
            visit(int(c))

    visit(int(np.flatnonzero(parents < 0)[0]))
    return order


def _nums(values: np.ndarray) -> str:
    return " ".join(f"{v:.6f}" for v in np.asarray(values, np.float64).reshape(-1))


def save_bvh(path: str | os.PathLike, anim: SkeletonAnimation) -> None:
    """The SMPL skeleton's motion as BVH (one line per keyframe; times with gaps are written at a fixed step)."""
    text = bvh_text(anim)
    atomic_write(path, lambda tmp: _write_bytes(tmp, text.encode("ascii")))
