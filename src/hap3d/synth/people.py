"""Bodies for the synthetic datasets: the body model with each dataset's joint regressors, poses and placement.

Every annotation is derived from these bodies: 3D joints through the regressors (the H36M regressor for Human3.6M
and the joints MuCo shares with it, so the readers' 25 mm fit check passes; the SMPL30 regressor, renamed,
elsewhere), and SMPL fits are the generating parameters themselves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from hap3d.body.joints import get_joint_set
from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
from hap3d.body.smpl import GENDERS, SMPL, find_smpl_file, load_smpl_arrays
from hap3d.render import Camera

DEPTH_RANGE = (3.0, 8.0)  # metres from the camera for the annotated people
# Betas of the 3D sets' subjects. Their readers test each fit against the ground truth (25 mm) also on flipped
# samples, and a flipped fit only matches the mirrored joints if the shape space is left/right symmetric. SMPL's
# nearly is; the procedural body's is not (9 mm at beta = 0, ~40 mm median at |beta| ~ 1), so small betas keep
# "most fits pass" true for both.
BETA_SCALE_3D = 0.1
CAMERA_UP = np.array([0.0, -1.0, 0.0])  # OpenCV camera frames: y points down
# MuCo joints taken from the H36M regressor (the 14 joints the reader's fit check compares) and the MuCo Thorax,
# which is the H36M joint called Neck (the thorax). The remaining MuCo joints come from SMPL30 by name.
MUCO_FROM_H36M = {
    **{n: n for n in ("Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Head_top", "L_Shoulder",
                      "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist")},
    "Thorax": "Neck",
}  # fmt: skip
MPII_THORAX_EXTRA_ROW = 5  # "thorax MPII" in SPIN's J_regressor_extra
JOINT_SETS = ("smpl30", "h36m17", "muco21", "coco17", "mpii16", "crowdpose14", "openpose18")  # what the files hold

# Clothing regions by the SMPL joint that dominates a face's skinning: trousers, shirt, skin, shoes.
SKIN_JOINTS = (12, 15, 20, 21, 22, 23)
SHOE_JOINTS = (7, 8, 10, 11)
TROUSER_JOINTS = (0, 1, 2, 4, 5)


def axis_rotation(axis: str, angle: float) -> np.ndarray:
    """3x3 rotation about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a rotation matrix (OpenCV Rodrigues, as the readers use)."""
    return cv2.Rodrigues(np.asarray(matrix, np.float64))[0].reshape(3)


class BodyKit:
    """The body model (all genders) and the dataset joint regressors, restricted to the vertices that faces or
    regressors use (exact, and ~2x faster with the procedural model, whose surface uses a third of its vertices).
    Float64, so rounding the outputs does not depend on the machine's float32 kernels."""

    def __init__(self, body_model_dir: Path) -> None:
        arrays = {g: load_smpl_arrays(find_smpl_file(body_model_dir, g)) for g in GENDERS}
        extra = np.asarray(load_regressor(find_regressor(body_model_dir, "J_regressor_extra")), np.float64)
        h36m = np.asarray(load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct")), np.float64)
        smpl30 = smpl30_regressor(arrays["neutral"]["J_regressor"], extra).astype(np.float64)
        faces = arrays["neutral"]["faces"]
        keep = np.zeros(len(arrays["neutral"]["v_template"]), bool)
        keep[faces.reshape(-1)] = True
        for reg in [smpl30, h36m, extra] + [a["J_regressor"] for a in arrays.values()]:
            keep |= np.asarray(reg).any(0)
        support = np.flatnonzero(keep)
        index = np.cumsum(keep) - 1
        self.layers = {g: SMPL(_vertex_subset(a, support)).double() for g, a in arrays.items()}
        self.faces = index[faces]
        self.regressors = {name: dataset_regressor(name, smpl30, h36m, extra)[:, support] for name in JOINT_SETS}
        owner = arrays["neutral"]["weights"][faces[:, 0]].argmax(1)
        self.face_region = np.select(
            [np.isin(owner, TROUSER_JOINTS), np.isin(owner, SKIN_JOINTS), np.isin(owner, SHOE_JOINTS)], [0, 2, 3], 1
        )

    @torch.no_grad()
    def posed(self, pose: np.ndarray, shape: np.ndarray, genders: Sequence[str]) -> np.ndarray:
        """(N, V, 3) float64 vertices without translation, each body through its gender's model."""
        out = np.zeros((len(genders), self.layers["neutral"].th_v_template.shape[1], 3))
        for g, layer in self.layers.items():
            sel = [i for i, x in enumerate(genders) if x == g]
            if sel:
                res = layer(torch.from_numpy(np.asarray(pose)[sel]), torch.from_numpy(np.asarray(shape)[sel]))
                out[sel] = res.vertices.numpy()
        return out

    def joints(self, vertices: np.ndarray, joint_set: str) -> np.ndarray:
        """(..., J, 3) joints of a dataset's set, in the frame and unit of ``vertices``."""
        return np.einsum("jv,...vc->...jc", self.regressors[joint_set], vertices)


def dataset_regressor(joint_set: str, smpl30: np.ndarray, h36m: np.ndarray, extra: np.ndarray) -> np.ndarray:
    """(J, V) regressor of a dataset's joint set, row by joint name (see MUCO_FROM_H36M for the exceptions)."""
    if joint_set == "h36m17":
        return h36m
    rows = dict(zip(get_joint_set("smpl30").joints, smpl30))
    if joint_set == "muco21":
        by_name = dict(zip(get_joint_set("h36m17").joints, h36m))
        rows.update({name: by_name[src] for name, src in MUCO_FROM_H36M.items()})
    if joint_set == "mpii16":
        rows["Thorax"] = extra[MPII_THORAX_EXTRA_ROW]
    return np.stack([rows[n] for n in get_joint_set(joint_set).joints])


def _vertex_subset(arrays: dict[str, np.ndarray], support: np.ndarray) -> dict[str, np.ndarray]:
    """SMPL arrays of the vertices ``support`` (which must hold the J_regressor's); faces are left out."""
    per_vertex = ("v_template", "shapedirs", "posedirs", "weights")
    out = {k: arrays[k][support] for k in per_vertex}
    out.update(J_regressor=arrays["J_regressor"][:, support], faces=np.zeros((0, 3), np.int64),
               parents=arrays["parents"])
    return out


@dataclass
class Person:
    """One body: SMPL parameters (rounded as stored in the JSON) and the mesh they give, translation included."""

    pose: np.ndarray  # (72,)
    shape: np.ndarray  # (10,)
    trans: np.ndarray  # (3,) metres
    gender: str
    vertices: np.ndarray  # (V, 3) metres, in the frame of the parameters


def body_pose(phase: float, stride: float, jitter: np.ndarray) -> np.ndarray:
    """(69,) axis-angle of joints 1..23: arms down, a walking step of size ``stride`` at gait ``phase``, plus jitter.

    Thighs swing about x (negative = forward), knees only flex (positive x), arms swing against the legs.
    """
    p = np.zeros((24, 3))
    s = np.sin(phase)
    p[16, 2], p[17, 2] = -1.25, 1.25  # shoulders: arms down from the T-pose
    p[18, 1], p[19, 1] = -0.25, 0.25  # slightly bent elbows
    p[1, 0], p[2, 0] = -stride * s, stride * s
    p[4, 0], p[5, 0] = 0.05 + 0.8 * stride * max(s, 0.0), 0.05 + 0.8 * stride * max(-s, 0.0)
    p[16, 0], p[17, 0] = 0.6 * stride * s, -0.6 * stride * s
    return (p[1:] + jitter.reshape(23, 3)).reshape(69)


def pose_jitter(rng: np.random.Generator, sigma: float = 0.1) -> np.ndarray:
    """(69,) random joint rotations; the spine, neck and head get 40 % (they add up along the chain)."""
    scale = np.full((23, 1), sigma)
    scale[[2, 5, 8, 11, 14]] *= 0.4  # joints 3, 6, 9, 12, 15
    return (rng.standard_normal((23, 3)) * scale).reshape(69)


def random_body(rng: np.random.Generator, beta_scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(69,) body pose and (10,) betas ~ N(0, beta_scale^2) of one independent person."""
    pose = body_pose(rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.5), pose_jitter(rng))
    return pose, beta_scale * rng.standard_normal(10)


def facing_camera(yaw: float, tilt: np.ndarray) -> np.ndarray:
    """Root axis-angle of a body upright in an OpenCV camera frame (y down), turned by ``yaw`` from facing it."""
    upright = axis_rotation("x", np.pi) @ axis_rotation("x", tilt[0]) @ axis_rotation("z", tilt[1])
    return axis_angle(axis_rotation("y", yaw) @ upright)


def stand(
    kit: BodyKit,
    pose: np.ndarray,
    shape: np.ndarray,
    genders: Sequence[str],
    targets: np.ndarray,
    up: np.ndarray,
    ground: float,
) -> list[Person]:
    """Pose bodies, then translate each so its pelvis is above ``targets[i]`` and its lowest point on the ground.

    ``up`` is the frame's unit up vector and ``ground`` the floor's height along it. Parameters are rounded first
    (6 decimals, as stored), so the stored fit reproduces the mesh exactly.
    """
    pose, shape = np.round(pose, 6), np.round(shape, 6)
    verts = kit.posed(pose, shape, genders)
    pelvis = kit.joints(verts, "smpl30")[:, 0]
    d = np.asarray(targets, np.float64) - pelvis
    d -= (d @ up)[:, None] * up
    trans = np.round(d + up * (ground - (verts @ up).min(1))[:, None], 6)
    return [Person(pose[i], shape[i], trans[i], genders[i], verts[i] + trans[i]) for i in range(len(genders))]


def placements(
    rng: np.random.Generator,
    camera: Camera,
    size: tuple[int, int],
    n: int,
    group: bool,
    depth: tuple[float, float] = DEPTH_RANGE,
    full_body_above: float | None = None,
) -> np.ndarray:
    """(n, 3) pelvis targets (x, 0, z) in view; ``group`` puts people side by side and overlapping, as in crowds.

    ``full_body_above``: the camera's height above the floor; people are then kept far enough for feet and head
    (up to 1.95 m) to be in the (width, height) image.
    """
    width, height = size
    if full_body_above is not None:
        feet = camera.fy * full_body_above / (0.95 * (height - camera.cy))
        head = camera.fy * (1.95 - full_body_above) / (0.95 * camera.cy)
        depth = (min(max(depth[0], feet, head), depth[1]), depth[1])
    half = (width / 2 - 0.12 * width) / camera.fx  # pelvis inside the middle 76 % of the width
    if group and n > 1:
        z0 = rng.uniform(depth[0], min(depth[1], depth[0] + 3.0))
        z = np.clip(z0 + np.abs(rng.normal(0, 0.4, n)), *depth)
        spacing = rng.uniform(0.35, 0.6)
        x = rng.uniform(-0.4, 0.4) * half * z0 + (np.arange(n) - (n - 1) / 2) * spacing + rng.normal(0, 0.1, n)
    else:
        z = rng.uniform(*depth, n)
        x = rng.uniform(-half, half, n) * z
    return np.stack([x, np.zeros(n), z], 1)


def camera_people(
    kit: BodyKit,
    rng: np.random.Generator,
    camera: Camera,
    size: tuple[int, int],
    n: int,
    group: bool,
    depth: tuple[float, float] = DEPTH_RANGE,
    full_body: bool = False,
    beta_scale: float = 1.0,
) -> list[Person]:
    """``n`` independent neutral-model people standing on a floor 1.0-1.7 m below the camera (see placements)."""
    above = rng.uniform(1.0, 1.7)
    targets = placements(rng, camera, size, n, group, depth, above if full_body else None)
    pose, shape = np.zeros((n, 72)), np.zeros((n, 10))
    for i in range(n):
        pose[i, 3:], shape[i] = random_body(rng, beta_scale)
        pose[i, :3] = facing_camera(rng.normal(0, 0.9), rng.normal(0, 0.05, 2))
    return stand(kit, pose, shape, ["neutral"] * n, targets, CAMERA_UP, -above)
