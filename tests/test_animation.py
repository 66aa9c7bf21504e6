"""Per-track animation export: the skinned, animated GLB (loaded with trimesh, its glTF JSON checked, its skeleton
re-posed from the file) and the BVH (parsed, and re-posed by the forward kinematics below)."""

from __future__ import annotations

import json
import re
import struct

import numpy as np
import pytest
import torch
import trimesh
from scipy.spatial.transform import Rotation

from hap3d.body.joints import SMPL24
from hap3d.body.smpl import SMPL
from hap3d.infer.animation import SkeletonAnimation, save_animation_glb, save_bvh
from hap3d.infer.predictor import PersonPrediction

FPS = 25.0
FRAMES = np.r_[0:6, 9:15]  # the person is hidden for frames 6-8
FLIP = np.diag([1.0, -1.0, -1.0])


@pytest.fixture(scope="module")
def track(body_dir):
    """A track of 12 keyframes: random poses, one shape, a moving camera translation and crop camera."""
    smpl = SMPL.from_dir(body_dir)
    rng = np.random.default_rng(0)
    shape = rng.normal(0, 0.5, 10).astype(np.float32)
    people = []
    for k, _ in enumerate(FRAMES):
        pose = rng.normal(0, 0.3, 72).astype(np.float32)
        trans = np.r_[0.1 * k, 0.2, 8 + 0.05 * k].astype(np.float32)
        people.append(PersonPrediction(0, np.zeros(4, np.float32), np.zeros((1, 3), np.float32),
                                       np.zeros((30, 3), np.float32), np.zeros((30, 2), np.float32), pose, shape,
                                       trans, 5000.0, np.r_[300.0 + 7 * k, 250].astype(np.float32),
                                       np.zeros((17, 3), np.float32), np.zeros(15, np.float32)))
    # what the animation must reproduce: SMPL's joints, in the fixed camera (principal point at (0, 0))
    fixed = np.stack([p.cam_trans + np.r_[p.princpt * p.cam_trans[2] / p.focal, 0] for p in people])
    with torch.no_grad():
        out = smpl(torch.as_tensor(np.stack([p.smpl_pose for p in people])),
                   torch.as_tensor(shape).expand(len(people), -1), torch.as_tensor(fixed, dtype=torch.float32))
    anim = SkeletonAnimation.from_track(smpl, people, FRAMES, FPS)
    return anim, out.joints.double().numpy()


def test_forward_kinematics_gives_smpl_joints(track):
    anim, joints = track
    np.testing.assert_allclose(anim.joint_positions(), joints, atol=1e-5)
    np.testing.assert_allclose(anim.times, FRAMES / FPS)


def _glb_json(path) -> tuple[dict, bytes]:
    data = path.read_bytes()
    magic, version, total = struct.unpack("<III", data[:12])
    assert magic == 0x46546C67 and version == 2 and total == len(data)
    n = struct.unpack("<I", data[12:16])[0]
    doc = json.loads(data[20:20 + n])
    blob = data[20 + n + 8:]
    return doc, blob


def _accessor(doc: dict, blob: bytes, index: int) -> np.ndarray:
    acc = doc["accessors"][index]
    view = doc["bufferViews"][acc["bufferView"]]
    dtype = {5126: np.float32, 5123: np.uint16, 5125: np.uint32}[acc["componentType"]]
    width = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}[acc["type"]]
    raw = np.frombuffer(blob, dtype, acc["count"] * width, view["byteOffset"])
    return raw.reshape(acc["count"], width) if width > 1 else raw


def test_glb_is_a_skinned_animation_with_24_joints(track, tmp_path):
    anim, joints = track
    path = tmp_path / "track_0.glb"
    save_animation_glb(path, anim, (0.2, 0.4, 0.9))
    scene = trimesh.load(path, process=False)
    (mesh,) = scene.geometry.values()
    assert mesh.vertices.shape == anim.rest_vertices.shape and len(mesh.faces) == len(anim.faces)

    doc, blob = _glb_json(path)
    (skin,) = doc["skins"]
    assert len(skin["joints"]) == 24 and [doc["nodes"][j]["name"] for j in skin["joints"]] == list(SMPL24)
    prim = doc["meshes"][0]["primitives"][0]
    weights = _accessor(doc, blob, prim["attributes"]["WEIGHTS_0"])
    assert weights.shape == (len(anim.rest_vertices), 4)
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-5)
    assert _accessor(doc, blob, prim["attributes"]["JOINTS_0"]).max() < 24
    (animation,) = doc["animations"]
    assert len(animation["channels"]) == 25  # 24 rotations, the root's translation
    times = _accessor(doc, blob, animation["samplers"][0]["input"])
    assert len(times) == len(FRAMES)
    np.testing.assert_allclose(times, FRAMES / FPS, atol=1e-6)

    # re-pose the skeleton from the file's nodes and keyframes: SMPL's joints, turned to y-up
    outputs = {c["target"]["node"] if c["target"]["path"] == "rotation" else "root":
               _accessor(doc, blob, animation["samplers"][c["sampler"]]["output"]) for c in animation["channels"]}
    parents = {c: j for j, node in enumerate(doc["nodes"][:24]) for c in node.get("children", [])}
    for k in (0, 7):
        world: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        for j in range(24):
            rot = Rotation.from_quat(outputs[j][k]).as_matrix()
            t = outputs["root"][k] if j == 0 else np.asarray(doc["nodes"][j]["translation"])
            if j in parents:
                prot, ppos = world[parents[j]]
                world[j] = (prot @ rot, ppos + prot @ t)
            else:
                world[j] = (rot, t)
        pos = np.stack([world[j][1] for j in range(24)])
        np.testing.assert_allclose(pos, joints[k] @ FLIP, atol=1e-4)


def _parse_bvh(text: str) -> tuple[list[str], list[int], np.ndarray, list[int], np.ndarray]:
    """Names, parents, offsets and channel counts of the joints (end sites dropped), and the motion rows."""
    names, parents, offsets, channels, stack = [], [], [], [], []
    lines = iter(text.splitlines())
    for line in lines:
        words = line.split()
        if not words or words[0] == "HIERARCHY":
            continue
        if words[0] in ("ROOT", "JOINT"):
            parents.append(stack[-1] if stack else -1)
            names.append(words[1])
            stack.append(len(names) - 1)
        elif words[0] == "End":
            stack.append(None)
        elif words[0] == "OFFSET" and stack[-1] is not None:
            offsets.append([float(w) for w in words[1:]])
        elif words[0] == "CHANNELS":
            channels.append(int(words[1]))
        elif words[0] == "}":
            stack.pop()
        elif words[0] == "MOTION":
            frames = int(next(lines).split()[1])
            assert re.match(r"Frame Time: [0-9.]+$", next(lines))
            motion = np.array([[float(w) for w in next(lines).split()] for _ in range(frames)])
            return names, parents, np.array(offsets), channels, motion
    raise AssertionError("no MOTION section")


def test_bvh_re_poses_to_the_exported_joints(track, tmp_path):
    anim, joints = track
    save_bvh(tmp_path / "track_0.bvh", anim)
    names, parents, offsets, channels, motion = _parse_bvh((tmp_path / "track_0.bvh").read_text())
    assert sorted(names) == sorted(SMPL24) and channels == [6] + [3] * 23
    assert motion.shape == (len(FRAMES), 6 + 3 * 23)
    for k in range(len(FRAMES)):
        euler = motion[k, 3:].reshape(24, 3)
        world = []
        for j in range(24):  # BVH: v_parent = T(offset) Rz Rx Ry v_child
            rot = Rotation.from_euler("ZXY", euler[j], degrees=True).as_matrix()
            if parents[j] < 0:
                world.append((rot, motion[k, :3] + offsets[j]))
            else:
                prot, ppos = world[parents[j]]
                world.append((prot @ rot, ppos + prot @ offsets[j]))
        pos = np.stack([world[names.index(n)][1] for n in SMPL24])
        np.testing.assert_allclose(pos, joints[k] @ FLIP, atol=1e-4)
