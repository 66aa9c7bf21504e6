"""``hap3d data synth``: small synthetic datasets in the exact on-disk formats of the real ones.

Human3.6M, MuCo-3DHP, MSCOCO, MPII, 3DPW and CrowdPose are licensed and large, yet every reader, the data check,
training and evaluation have to run and be tested without them. This module writes stand-ins with the real file
names, folder layout (the seed README's) and JSON schemas (spec §5.6), so the readers take their real code paths.

People are bodies of the project's SMPL-format model (the procedural one from ``hap3d body synth``, or the real SMPL
if given) in natural standing/walking poses, placed on a ground plane 3-8 m in front of a pinhole camera and
rendered by the project's rasterizer over procedural backgrounds. Every annotation is derived from those bodies:

* 3D joints come from the mesh through the joint regressors (H36M regressor for Human3.6M and the joints MuCo shares
  with it, so the reader's 25 mm fit check passes; the SMPL30 regressor, renamed, elsewhere);
* 2D keypoints are their projections, with visibility from the image bounds and the depth buffer;
* SMPL fits are the generating parameters (a few are deliberately perturbed or left out to exercise the filters);
* 3DPW's OpenPose and HigherHRNet inputs are the projected ground truth with detector-like noise and occlusion.

Output is deterministic: one random stream per (seed, dataset), JSON with sorted keys and fixed rounding, images
encoded by OpenCV from deterministic pixels.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from hap3d.body.joints import get_joint_set
from hap3d.body.regressors import find_regressor, load_regressor, smpl30_regressor
from hap3d.body.smpl import GENDERS, SMPL, find_smpl_file, load_smpl_arrays
from hap3d.data import written_dataset_root
from hap3d.infer.render import Camera, rasterize, shade
from hap3d.utils import Hap3dError, atomic_write

# Images (or frames) per dataset. 'tiny' is for tests, 'small' for the default quickstart, 'medium' for its longer
# budget, 'large' for a few thousand training samples (about 4000 across Human3.6M, MuCo, MSCOCO and MPII, plus
# ~600 3DPW test people; a few minutes to write). Human3.6M: frames per training subject and cameras per frame;
# 3DPW: frames per sequence.
SIZES: dict[str, dict[str, int]] = {
    "tiny": dict(h36m_frames=1, h36m_cameras=1, muco=3, coco=4, mpii=3, pw3d_sequences=2, pw3d_frames=2, crowdpose=3),
    "small": dict(h36m_frames=5, h36m_cameras=2, muco=40, coco=40, mpii=30, pw3d_sequences=4, pw3d_frames=8, crowdpose=20),
    "medium": dict(h36m_frames=16, h36m_cameras=4, muco=250, coco=250, mpii=200, pw3d_sequences=6, pw3d_frames=25,
                   crowdpose=100),
    "large": dict(h36m_frames=40, h36m_cameras=4, muco=800, coco=700, mpii=600, pw3d_sequences=6, pw3d_frames=60,
                  crowdpose=200),
}
README_HEADER = "SYNTHETIC DATA written by hap3d (`hap3d data synth`)"

DEPTH_RANGE = (3.0, 8.0)  # metres from the camera for the annotated people
OCCLUSION_MARGIN = 0.2  # a joint is hidden when the visible surface is this much (m) nearer than the joint
MIN_VISIBLE_PIXELS = 150  # people showing fewer pixels are not annotated (annotators would not see them)
JPEG_QUALITY = 90
# Betas of the 3D sets' subjects. Their readers test each fit against the ground truth (25 mm) also on flipped
# samples, and a flipped fit only matches the mirrored joints if the shape space is left/right symmetric. SMPL's
# nearly is; the procedural body's is not (9 mm at beta = 0, ~40 mm median at |beta| ~ 1), so small betas keep
# "most fits pass" true for both.
BETA_SCALE_3D = 0.1
CAMERA_UP = np.array([0.0, -1.0, 0.0])  # OpenCV camera frames: y points down

H36M_SUBJECTS = {"train": (1, 5, 6, 7, 8), "test": (9, 11)}
H36M_EVERY = {"train": 5, "test": 64}  # the readers' frame subsampling
H36M_ACTIONS = {
    2: "Directions", 3: "Discussion", 4: "Eating", 5: "Greeting", 6: "Phoning", 7: "Posing", 8: "Purchases",
    9: "Sitting", 10: "SittingDown", 11: "Smoking", 12: "Photo", 13: "Waiting", 14: "Walking", 15: "WalkDog",
    16: "WalkTogether",
}  # fmt: skip
# MuCo joints taken from the H36M regressor (the 14 joints the reader's fit check compares) and the MuCo Thorax,
# which is the H36M joint called Neck (the thorax). The remaining MuCo joints come from SMPL30 by name.
MUCO_FROM_H36M = {n: n for n in ("Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Head_top",
                                 "L_Shoulder", "L_Elbow", "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist")} | {"Thorax": "Neck"}  # fmt: skip
MPII_THORAX_EXTRA_ROW = 5  # "thorax MPII" in SPIN's J_regressor_extra
JOINT_SETS = ("smpl30", "h36m17", "muco21", "coco17", "mpii16", "crowdpose14", "openpose18")  # what the files hold
PW3D_TEST_SEQUENCES = ("downtown_walking_00", "office_phoneCall_00", "flat_guitar_01", "outdoors_fencing_01",
                       "downtown_bus_00", "downtown_cafe_00")  # fmt: skip
# The two 3DPW-Crowd sequences the reader keeps, and one it must drop.
PW3D_VALIDATION_SEQUENCES = ("courtyard_hug_00", "courtyard_dancing_00", "courtyard_drinking_00")
COCO_KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                       "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                       "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
                 [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]  # fmt: skip
CROWDPOSE_KEYPOINT_NAMES = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head",
                            "neck"]  # fmt: skip
CROWDPOSE_SKELETON = [[13, 14], [14, 1], [14, 2], [1, 3], [3, 5], [2, 4], [4, 6], [1, 7], [2, 8], [7, 8], [7, 9],
                      [9, 11], [8, 10], [10, 12]]  # fmt: skip

# Clothing regions by the SMPL joint that dominates a face's skinning: trousers, shirt, skin, shoes.
_SKIN_JOINTS = (12, 15, 20, 21, 22, 23)
_SHOE_JOINTS = (7, 8, 10, 11)
_TROUSER_JOINTS = (0, 1, 2, 4, 5)
_SKIN_TONES = np.array([[0.95, 0.80, 0.69], [0.87, 0.67, 0.52], [0.72, 0.52, 0.38], [0.50, 0.35, 0.25], [0.30, 0.20, 0.15]])


# ---------------------------------------------------------------------------------------------------------------
# output helpers


def _num(a: Any, decimals: int) -> Any:
    """Round and convert to plain Python floats (nested lists), so the JSON text is fixed for given values."""
    return np.round(np.asarray(a, dtype=np.float64), decimals).tolist()


def _write_json(path: Path, obj: Any) -> None:
    """Compact JSON like the real files, keys sorted so equal content gives equal bytes."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"))
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _write_image(path: Path, rgb: np.ndarray) -> None:
    """Encode an RGB image in memory (format from the suffix, BGR on disk as OpenCV writes) and write it atomically."""
    ok, data = cv2.imencode(path.suffix, np.ascontiguousarray(rgb[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise Hap3dError(f"OpenCV cannot encode {path.suffix} images (needed for {path})")
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data.tobytes()))


def _rot(axis: str, angle: float) -> np.ndarray:
    """3x3 rotation about a coordinate axis."""
    c, s = np.cos(angle), np.sin(angle)
    return {
        "x": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]),
        "y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
        "z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]),
    }[axis]


def _axis_angle(rot: np.ndarray) -> np.ndarray:
    """Axis-angle (3,) of a rotation matrix (OpenCV Rodrigues, as the readers use)."""
    return cv2.Rodrigues(np.asarray(rot, np.float64))[0].reshape(3)


# ---------------------------------------------------------------------------------------------------------------
# bodies


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
            [np.isin(owner, _TROUSER_JOINTS), np.isin(owner, _SKIN_JOINTS), np.isin(owner, _SHOE_JOINTS)], [0, 2, 3], 1
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
    out.update(J_regressor=arrays["J_regressor"][:, support], faces=np.zeros((0, 3), np.int64), parents=arrays["parents"])
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
    return _axis_angle(_rot("y", yaw) @ _rot("x", np.pi) @ _rot("x", tilt[0]) @ _rot("z", tilt[1]))


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


# ---------------------------------------------------------------------------------------------------------------
# images


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB scenery: a colour gradient with low-frequency blotches, and random shapes over it.

    The smooth part is made at 1/24 resolution and upsampled, which keeps a 540x960 image at a few ms.
    """
    h, w = height // 24 + 2, width // 24 + 2
    a = rng.uniform(0, 2 * np.pi)
    t = np.arange(w, dtype=np.float32)[None] * np.cos(a) + np.arange(h, dtype=np.float32)[:, None] * np.sin(a)
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    c0, c1 = rng.uniform(30, 225, (2, 3)).astype(np.float32)
    blotches = 16 * rng.standard_normal((h, w, 1), dtype=np.float32) + 5 * rng.standard_normal((h, w, 3), dtype=np.float32)
    small = c0 + t[..., None] * (c1 - c0) + blotches
    canvas = cv2.resize(np.clip(small, 0, 255).astype(np.uint8), (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(int(rng.integers(5, 14))):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        kind = int(rng.integers(3))
        p = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if kind == 0:
            q = (p[0] + int(rng.integers(20, width // 2)), p[1] + int(rng.integers(20, height // 2)))
            cv2.rectangle(canvas, p, q, colour, -1)
        elif kind == 1:
            cv2.circle(canvas, p, int(rng.integers(10, min(height, width) // 4)), colour, -1, cv2.LINE_AA)
        else:
            q = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.line(canvas, p, q, colour, int(rng.integers(2, 12)), cv2.LINE_AA)
    return canvas


def outfit(rng: np.random.Generator, behind: np.ndarray) -> np.ndarray:
    """(4, 3) RGB in [0, 1]: trousers, shirt, skin, shoes; the clothes contrast with the ``behind`` mean colour."""
    candidates = np.array([cv2.cvtColor(np.float32([[[rng.uniform(0, 360), rng.uniform(0.4, 0.9), rng.uniform(0.35, 1.0)]]]),
                                        cv2.COLOR_HSV2RGB)[0, 0] for _ in range(8)])  # fmt: skip
    far = candidates[np.argsort(-np.abs(candidates - behind / 255.0).sum(1))]
    return np.stack([far[1], far[0], _SKIN_TONES[rng.integers(len(_SKIN_TONES))], np.full(3, rng.uniform(0.05, 0.3))])


def box_of(points_uv: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Integer (x0, y0, x1, y1) extent of points, clipped to the image (empty when outside)."""
    lo = np.clip(np.floor(points_uv.min(0)), 0, [width, height]).astype(int)
    hi = np.clip(np.ceil(points_uv.max(0)) + 1, 0, [width, height]).astype(int)
    return int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])


def dress(rng: np.random.Generator, meshes: Sequence[np.ndarray], camera: Camera, bg: np.ndarray) -> list[np.ndarray]:
    """An outfit per camera-frame mesh that stands out from the background behind it."""
    h, w = bg.shape[:2]
    out = []
    for mesh in meshes:
        x0, y0, x1, y1 = box_of(camera.project(mesh), h, w)
        patch = bg[y0:y1, x0:x1].reshape(-1, 3)
        out.append(outfit(rng, patch.mean(0) if len(patch) else bg.reshape(-1, 3).mean(0)))
    return out


@dataclass
class Scene:
    """A rendered image and what annotating it needs: per-pixel depth and owner (person index, -1 background)."""

    image: np.ndarray  # (H, W, 3) uint8 RGB
    depth: np.ndarray  # (H, W) float32 metres, inf on the background
    owner: np.ndarray  # (H, W) int
    camera: Camera

    def mask(self, i: int) -> np.ndarray:
        """Pixels where person i is the nearest surface."""
        return self.owner == i

    def tight_box(self, i: int) -> list[float] | None:
        """Visible-pixel extent (xywh) of person i; None when too little of them shows."""
        ys, xs = np.nonzero(self.owner == i)
        if len(xs) < MIN_VISIBLE_PIXELS:
            return None
        return [float(xs.min()), float(ys.min()), float(xs.max() - xs.min() + 1), float(ys.max() - ys.min() + 1)]

    def keypoints(self, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Projected (J, 2) pixels of camera-frame joints and their state: 0 outside, 1 hidden, 2 visible.

        A joint is hidden when the visible surface at its pixel is more than OCCLUSION_MARGIN nearer than the
        joint itself (another person, or the body's own limbs in front).
        """
        h, w = self.depth.shape
        uv = self.camera.project(joints)
        col, row = np.rint(uv[:, 0]).astype(int), np.rint(uv[:, 1]).astype(int)
        inside = (joints[:, 2] > 0) & (col >= 0) & (col < w) & (row >= 0) & (row < h)
        hidden = np.zeros(len(joints), bool)
        hidden[inside] = self.depth[row[inside], col[inside]] < joints[inside, 2] - OCCLUSION_MARGIN
        return uv, np.where(inside, np.where(hidden, 1, 2), 0)


def render_scene(
    kit: BodyKit,
    bg: np.ndarray,
    meshes: Sequence[np.ndarray],
    outfits: Sequence[np.ndarray],
    camera: Camera,
) -> Scene:
    """Shade camera-frame meshes (one colour per clothing region) in one z-buffer over ``bg``."""
    h, w = bg.shape[:2]
    nv, nf = meshes[0].shape[0], len(kit.faces)
    faces = np.concatenate([kit.faces + i * nv for i in range(len(meshes))])
    colours = np.concatenate([o[kit.face_region] for o in outfits])
    verts = np.concatenate(meshes)
    depth, face_index = rasterize(verts, faces, camera, h, w)
    rgb, alpha = shade(verts, faces, face_index, colours, ambient=0.35, diffuse=0.65)
    img = bg.copy()
    img[alpha] = np.rint(rgb[alpha] * 255).astype(np.uint8)
    owner = np.where(face_index >= 0, face_index // nf, -1)
    return Scene(img, depth, owner, camera)


def random_camera(rng: np.random.Generator, width: int, height: int, focal: tuple[float, float]) -> Camera:
    """Square-pixel intrinsics with the focal length a random multiple of the image's long side."""
    f = round(float(rng.uniform(*focal) * max(width, height)), 2)
    return Camera(f, f, round(width / 2 + float(rng.normal(0, 2)), 2), round(height / 2 + float(rng.normal(0, 2)), 2))


def _coco_keypoints(uv: np.ndarray, state: np.ndarray, binary: bool = False) -> list[int]:
    """Flat [x, y, v] * J with integer pixel clicks, v = 0 unlabeled (x = y = 0), 1 labeled hidden, 2 visible;
    ``binary`` writes 1 for every labeled joint (MPII's convention)."""
    v = np.minimum(state, 1) if binary else state
    xy = np.where(state[:, None] > 0, np.rint(uv), 0)
    return np.concatenate([xy, v[:, None]], 1).astype(int).reshape(-1).tolist()


def _polygons(mask: np.ndarray) -> list[list[float]]:
    """COCO polygon segmentation of a binary mask (outer contours, simplified by 1 px)."""
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polys = [cv2.approxPolyDP(c, 1.0, True).reshape(-1, 2) for c in contours]
    return [_num(p.reshape(-1), 1) for p in polys if len(p) >= 3]


def _rle(mask: np.ndarray) -> dict[str, Any]:
    """Uncompressed COCO RLE (column-major run lengths, starting with a run of zeros), as crowd regions use."""
    flat = mask.reshape(-1, order="F").astype(np.int8)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
    counts = np.diff(np.concatenate([[0], edges]))
    return {"counts": counts.astype(int).tolist(), "size": [int(mask.shape[0]), int(mask.shape[1])]}


def _fit_entry(p: Person) -> dict[str, list[float]]:
    """{pose, shape, trans} as every SMPL-fit file stores them."""
    return {"pose": _num(p.pose, 6), "shape": _num(p.shape, 6), "trans": _num(p.trans, 6)}


def _cam_param(camera: Camera) -> dict[str, list[float]]:
    """{focal, princpt} as NeuralAnnot and 3DPW store intrinsics."""
    return {"focal": _num([camera.fx, camera.fy], 2), "princpt": _num([camera.cx, camera.cy], 2)}


# ---------------------------------------------------------------------------------------------------------------
# Human3.6M


def _h36m_cameras(rng: np.random.Generator, width: int, height: int) -> dict[str, tuple[np.ndarray, np.ndarray, Camera]]:
    """Four calibrated cameras around the capture area: {cam_idx: (R, t mm, intrinsics)}, world z up, in mm."""
    cams = {}
    for k in range(4):
        a = np.pi / 4 + k * np.pi / 2 + rng.normal(0, 0.1)
        centre = np.array([np.cos(a), np.sin(a), 0.0]) * rng.uniform(4.0, 6.0) + [0, 0, rng.uniform(1.2, 1.8)]
        forward = np.array([0.0, 0.0, 0.9]) + rng.normal(0, 0.05, 3) - centre
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        rot = np.round(np.stack([right, np.cross(forward, right), forward]), 8)
        t = np.round(-rot @ centre * 1000.0, 4)
        cams[str(k + 1)] = (rot, t, random_camera(rng, width, height, (1.1, 1.2)))
    return cams


def _h36m_person(kit: BodyKit, shape: np.ndarray, frame: int, motion: dict) -> Person:
    """The subject at one frame of a sequence: a slow walking cycle and turn in the world frame (z up)."""
    t = frame / 50.0  # seconds at 50 fps
    pose = np.zeros((1, 72))
    pose[0, 3:] = body_pose(motion["phase"] + 2 * np.pi * t, motion["stride"], motion["jitter"])
    pose[0, :3] = _axis_angle(_rot("z", motion["yaw"] + 0.2 * t) @ _rot("x", np.pi / 2))
    target = motion["position"] + np.array([0.1 * np.sin(t), 0.1 * np.cos(t), 0.0])
    return stand(kit, pose, shape[None], ["neutral"], target[None], np.array([0.0, 0.0, 1.0]), 0.0)[0]


def write_human36m(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """Per subject: data (images + boxes), camera, joint_3d (world mm, regressed from the fit's mesh) and
    smpl_param (world frame, trans in m). Every 10th fit is perturbed (fails the 25 mm check), every 10th missing."""
    width = height = 500
    ids = {"image": 0, "ann": 0, "fit": 0}
    for split, subjects in H36M_SUBJECTS.items():
        every = H36M_EVERY[split]
        n_frames = plan["h36m_frames"] if split == "train" else max(1, plan["h36m_frames"] // 4)
        for pos, subject in enumerate(subjects):
            cams = _h36m_cameras(rng, width, height)
            backgrounds = {c: background(rng, height, width) for c in cams}
            action = int(rng.choice(list(H36M_ACTIONS)))
            subaction = int(rng.integers(1, 3))
            shape = BETA_SCALE_3D * rng.standard_normal(10)
            motion = {"phase": rng.uniform(0, 2 * np.pi), "stride": rng.uniform(0.1, 0.4), "jitter": pose_jitter(rng, 0.08),
                      "yaw": rng.uniform(0, 2 * np.pi), "position": np.append(rng.normal(0, 0.3, 2), 0.0)}  # fmt: skip
            if split == "train":
                cam_ids = [str((pos + j) % 4 + 1) for j in range(plan["h36m_cameras"])]
            else:  # camera 4 is the test camera; the first test subject also has another one, which the reader drops
                cam_ids = ["4"] + [str(j + 1) for j in range(max(plan["h36m_cameras"] - 1, int(pos == 0)))]
            # frame 1 of the first training subject is off the reader's every-5th-frame grid
            frames = [every * k for k in range(n_frames)] + ([1] if (split, pos) == ("train", 0) else [])
            outfits = None
            images, annotations, joints_tree, fits_tree = [], [], {}, {}
            for frame in frames:
                person = _h36m_person(kit, shape, frame, motion)
                key = (str(action), str(subaction), str(frame))
                world_mm = kit.joints(person.vertices, "h36m17") * 1000.0
                joints_tree.setdefault(key[0], {}).setdefault(key[1], {})[key[2]] = _num(world_mm, 3)
                kind = ids["fit"] % 10
                ids["fit"] += 1
                if kind != 8:
                    fit = _fit_entry(person)
                    if kind == 5:  # bent knees and elbows: a bad fit that the 25 mm rule must reject
                        bad = person.pose.reshape(24, 3).copy()
                        bad[[4, 5], 0] += 1.2
                        bad[18, 1] -= 1.3
                        bad[19, 1] += 1.3
                        fit["pose"] = _num(bad.reshape(72), 6)
                    fits_tree.setdefault(key[0], {}).setdefault(key[1], {})[key[2]] = fit
                for cam_idx in cam_ids:
                    rot, t, camera = cams[cam_idx]
                    mesh = person.vertices @ rot.T + t / 1000.0
                    if outfits is None:
                        outfits = dress(rng, [mesh], camera, backgrounds[cam_idx])
                    scene = render_scene(kit, backgrounds[cam_idx], [mesh], outfits, camera)
                    box = scene.tight_box(0)
                    if box is None:
                        continue
                    seq = f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{int(cam_idx):02d}"
                    file_name = f"{seq}/{seq}_{frame + 1:06d}.jpg"
                    _write_image(root / "images" / file_name, scene.image)
                    images.append({
                        "id": ids["image"], "file_name": file_name, "width": width, "height": height, "subject": subject,
                        "action_name": H36M_ACTIONS[action], "action_idx": action, "subaction_idx": subaction,
                        "cam_idx": int(cam_idx), "frame_idx": frame,
                    })  # fmt: skip
                    annotations.append({"id": ids["ann"], "image_id": ids["image"], "bbox": _num(box, 2), "keypoints_vis": [True] * 17})
                    ids["image"] += 1
                    ids["ann"] += 1
            ann_dir = root / "annotations"
            _write_json(ann_dir / f"Human36M_subject{subject}_data.json", {"images": images, "annotations": annotations})
            _write_json(ann_dir / f"Human36M_subject{subject}_camera.json", {
                c: {"R": _num(r, 8), "t": _num(t, 4), "f": _num([cam.fx, cam.fy], 2), "c": _num([cam.cx, cam.cy], 2)}
                for c, (r, t, cam) in cams.items()
            })  # fmt: skip
            _write_json(ann_dir / f"Human36M_subject{subject}_joint_3d.json", joints_tree)
            _write_json(ann_dir / f"Human36M_subject{subject}_smpl_param.json", fits_tree)
    return ids["ann"]


# ---------------------------------------------------------------------------------------------------------------
# MuCo-3DHP


def write_muco(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """Composites of 2-4 people: MuCo-3DHP.json (camera-frame joints in mm, their projections, boxes, intrinsics
    per image) and smpl_param.json (camera frame; every 10th person has no fit)."""
    width = height = 512
    images, annotations, fits = [], [], {}
    for k in range(plan["muco"]):
        camera = random_camera(rng, width, height, (0.95, 1.15))
        bg = background(rng, height, width)
        n, group = int(rng.integers(2, 5)), bool(rng.random() < 0.6)
        people = camera_people(kit, rng, camera, (width, height), n, group, full_body=True, beta_scale=BETA_SCALE_3D)
        meshes = [p.vertices for p in people]
        scene = render_scene(kit, bg, meshes, dress(rng, meshes, camera, bg), camera)
        file_name = f"{'augmented_set' if k % 2 else 'unaugmented_set'}/{k:06d}.jpg"
        _write_image(root / "data" / file_name, scene.image)
        images.append({"id": k, "file_name": file_name, "width": width, "height": height,
                       "f": _num([camera.fx, camera.fy], 2), "c": _num([camera.cx, camera.cy], 2)})  # fmt: skip
        for i, p in enumerate(people):
            box = scene.tight_box(i)
            if box is None:
                continue
            aid = len(annotations)
            cam_mm = kit.joints(p.vertices, "muco21") * 1000.0
            annotations.append({"id": aid, "image_id": k, "bbox": _num(box, 2), "keypoints_cam": _num(cam_mm, 3),
                                "keypoints_img": _num(camera.project(cam_mm), 3)})  # fmt: skip
            if aid % 10 != 7:
                fits[str(aid)] = _fit_entry(p)
    _write_json(root / "data" / "MuCo-3DHP.json", {"images": images, "annotations": annotations})
    _write_json(root / "data" / "smpl_param.json", fits)
    return len(annotations)


# ---------------------------------------------------------------------------------------------------------------
# 2D sets: MSCOCO, MPII, CrowdPose


def _person_annotation(kit: BodyKit, scene: Scene, i: int, p: Person, joint_set: str, binary: bool = False) -> dict | None:
    """COCO-style record of one visible person (keypoints, num_keypoints, tight box, area, polygons)."""
    box = scene.tight_box(i)
    if box is None:
        return None
    uv, state = scene.keypoints(kit.joints(p.vertices, joint_set))
    mask = scene.mask(i)
    return {
        "bbox": _num(box, 2), "area": float(mask.sum()), "iscrowd": 0, "category_id": 1,
        "keypoints": _coco_keypoints(uv, state, binary), "num_keypoints": int((state > 0).sum()),
        "segmentation": _polygons(mask),
    }  # fmt: skip


def _unlabeled(mask: np.ndarray, crowd: bool, num_joints: int) -> dict | None:
    """A person (or crowd region) annotators outlined but gave no keypoints: num_keypoints 0."""
    ys, xs = np.nonzero(mask)
    if len(xs) < MIN_VISIBLE_PIXELS // 3:
        return None
    box = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    return {
        "bbox": _num(box, 2), "area": float(mask.sum()), "iscrowd": int(crowd), "category_id": 1,
        "keypoints": [0] * (3 * num_joints), "num_keypoints": 0, "segmentation": _rle(mask) if crowd else _polygons(mask),
    }  # fmt: skip


def _scene_2d(
    kit: BodyKit, rng: np.random.Generator, sizes: Sequence[tuple[int, int]], n: int, group: bool, far: int, far_group: bool
) -> tuple[Scene, list[Person], list[Person]]:
    """A photo with ``n`` annotated people and ``far`` small background people 12-20 m away."""
    width, height = sizes[int(rng.integers(len(sizes)))]
    camera = random_camera(rng, width, height, (0.8, 1.3))
    bg = background(rng, height, width)
    people = camera_people(kit, rng, camera, (width, height), n, group)
    distant = camera_people(kit, rng, camera, (width, height), far, far_group, depth=(12.0, 20.0)) if far else []
    meshes = [p.vertices for p in people + distant]
    return render_scene(kit, bg, meshes, dress(rng, meshes, camera, bg), camera), people, distant


def _neuralannot(p: Person, camera: Camera) -> dict:
    """One NeuralAnnot entry: the fit in the image's camera frame and that camera."""
    return {"smpl_param": _fit_entry(p), "cam_param": _cam_param(camera)}


def write_coco(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """person_keypoints_train2017.json and MSCOCO_train_SMPL_NeuralAnnot.json. Images cycle through one person,
    an overlapping group, people plus a crowd region (iscrowd 1, RLE) and people plus a small unlabeled person
    (num_keypoints 0): the reader's filters all have something to drop."""
    images, annotations, fits = [], [], {}
    for k in range(plan["coco"]):
        kind = k % 4
        n = 1 if kind == 0 else int(rng.integers(2, 4)) if kind == 1 else int(rng.integers(1, 3))
        far = int(rng.integers(4, 7)) if kind == 2 else int(kind == 3)
        scene, people, distant = _scene_2d(kit, rng, ((640, 480), (480, 640), (640, 427), (612, 612)), n, kind == 1, far, True)
        height, width = scene.depth.shape
        image_id = 1000 + 37 * k
        file_name = f"{image_id:012d}.jpg"
        _write_image(root / "images" / "train2017" / file_name, scene.image)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 0,
                       "coco_url": "", "flickr_url": "", "date_captured": "2017-01-01 00:00:00"})  # fmt: skip
        records = [(_person_annotation(kit, scene, i, p, "coco17"), p) for i, p in enumerate(people)]
        if distant:
            mask = np.isin(scene.owner, np.arange(len(people), len(people) + len(distant)))
            records.append((_unlabeled(mask, kind == 2, 17), None))
        for ann, p in records:
            if ann is None:
                continue
            ann.update(id=len(annotations) + 1, image_id=image_id)
            annotations.append(ann)
            if p is not None and ann["num_keypoints"] > 0 and ann["id"] % 9 != 4:
                fits[str(ann["id"])] = _neuralannot(p, scene.camera)
    db = {
        "info": {"description": f"{README_HEADER}: NOT MSCOCO, only its file format", "version": "1.0", "year": 2017},
        "licenses": [{"id": 0, "name": "synthetic, no licence attached", "url": ""}],
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": COCO_KEYPOINT_NAMES,
                        "skeleton": COCO_SKELETON}],
    }  # fmt: skip
    _write_json(root / "annotations" / "person_keypoints_train2017.json", db)
    _write_json(root / "annotations" / "MSCOCO_train_SMPL_NeuralAnnot.json", fits)
    return len(annotations)


def write_mpii(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """annotations/train.json (16 MPII keypoints, flag 1 = annotated, file_name 'images/...') and
    annotations/MPII_train_SMPL_NeuralAnnot.json (every 8th person without a fit), under ``root`` = mpii/data."""
    images, annotations, fits = [], [], {}
    for k in range(plan["mpii"]):
        n = int(rng.integers(1, 4))
        scene, people, _ = _scene_2d(kit, rng, ((640, 360), (640, 480)), n, n > 1, 0, False)
        height, width = scene.depth.shape
        file_name = f"images/{10000000 + 7919 * k:09d}.jpg"
        _write_image(root / file_name, scene.image)
        images.append({"id": k, "file_name": file_name, "width": width, "height": height})
        for i, p in enumerate(people):
            ann = _person_annotation(kit, scene, i, p, "mpii16", binary=True)
            if ann is None:
                continue
            del ann["segmentation"], ann["area"]  # MPII has no masks
            ann.update(id=len(annotations), image_id=k)
            annotations.append(ann)
            if ann["id"] % 8 != 5:
                fits[str(ann["id"])] = _neuralannot(p, scene.camera)
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    _write_json(root / "annotations" / "train.json", {"images": images, "annotations": annotations, "categories": categories})
    _write_json(root / "annotations" / "MPII_train_SMPL_NeuralAnnot.json", fits)
    return len(annotations)


def crowd_index(keypoints: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> float:
    """CrowdPose's crowd index: mean over people of (others' labeled joints inside the person's box) / (own ones)."""
    ratios = []
    for i, (kp, box) in enumerate(zip(keypoints, boxes)):
        own = int((kp[:, 2] > 0).sum())
        if own == 0:
            continue
        x, y, w, h = box
        inside = 0
        for j, other in enumerate(keypoints):
            if j != i:
                sel = other[other[:, 2] > 0]
                inside += int(((sel[:, 0] >= x) & (sel[:, 0] <= x + w) & (sel[:, 1] >= y) & (sel[:, 1] <= y + h)).sum())
        ratios.append(inside / own)
    return float(np.mean(ratios)) if ratios else 0.0


def _noisy_fits(kit: BodyKit, rng: np.random.Generator, camera: Camera, records: list[tuple[dict, Person | None]]) -> dict[int, dict]:
    """NeuralAnnot-style entries for the labeled people of ``records`` (by index): the true parameters with body-pose
    noise of random size, and ``fit_err`` = the fit's mean reprojection error in pixels over the labeled joints."""
    idx = [i for i, (a, p) in enumerate(records) if p is not None and a["num_keypoints"] > 0]
    if not idx:
        return {}
    people = [records[i][1] for i in idx]
    pose = np.stack([p.pose for p in people])
    pose[:, 3:] += rng.standard_normal(pose[:, 3:].shape) * rng.uniform(0, 0.15, (len(idx), 1))
    pose = np.round(pose, 6)
    verts = kit.posed(pose, np.stack([p.shape for p in people]), ["neutral"] * len(idx))
    out = {}
    for i, p, q, v in zip(idx, people, pose, verts):
        kp = np.asarray(records[i][0]["keypoints"], np.float64).reshape(-1, 3)
        uv = camera.project(kit.joints(v + p.trans, "crowdpose14"))
        labeled = kp[:, 2] > 0
        err = float(np.linalg.norm(uv[labeled] - kp[labeled, :2], axis=1).mean())
        fit = {"pose": _num(q, 6), "shape": _num(p.shape, 6), "trans": _num(p.trans, 6)}
        out[i] = {"smpl_param": fit, "cam_param": _cam_param(camera), "fit_err": round(err, 4)}
    return out


def write_crowdpose(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """crowdpose_train.json (14 keypoints, crowdIndex) and CrowdPose_train_SMPL_NeuralAnnot.json with fit_err.

    Like the release 3DCrowdNet used, the images' ``width`` and ``height`` are written swapped (the reference
    reader swaps them back; upstream corrected its file in 2021, jeffffffli/CrowdPose#12). Fits are the true
    parameters with body-pose noise of random size; ``fit_err`` is their mean reprojection error in pixels over
    the labeled joints, so both sides of the reader's 5.0 threshold occur.
    """
    images, annotations, fits = [], [], {}
    for k in range(plan["crowdpose"]):
        far = int(k % 3 == 1)
        scene, people, distant = _scene_2d(kit, rng, ((640, 480), (480, 640), (640, 427)), int(rng.integers(3, 7)), True, far, False)
        height, width = scene.depth.shape
        image_id = 100000 + k
        _write_image(root / "images" / f"{image_id}.jpg", scene.image)
        records = [(_person_annotation(kit, scene, i, p, "crowdpose14"), p) for i, p in enumerate(people)]
        if distant:
            records.append((_unlabeled(scene.mask(len(people)), False, 14), None))
        records = [(a, p) for a, p in records if a is not None]
        kps = [np.asarray(a["keypoints"], np.float64).reshape(14, 3) for a, _ in records]
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": height, "height": width,  # swapped
                       "crowdIndex": round(crowd_index(kps, [a["bbox"] for a, _ in records]), 2)})  # fmt: skip
        noisy = _noisy_fits(kit, rng, scene.camera, records)
        for i, (a, _) in enumerate(records):
            del a["segmentation"], a["area"]  # CrowdPose has no masks
            a.update(id=len(annotations) + 1, image_id=image_id)
            annotations.append(a)
            if i in noisy:
                fits[str(a["id"])] = noisy[i]
    db = {
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": CROWDPOSE_KEYPOINT_NAMES,
                        "skeleton": CROWDPOSE_SKELETON}],
    }  # fmt: skip
    _write_json(root / "annotations" / "crowdpose_train.json", db)
    _write_json(root / "annotations" / "CrowdPose_train_SMPL_NeuralAnnot.json", fits)
    return len(annotations)


# ---------------------------------------------------------------------------------------------------------------
# 3DPW


def detections(rng: np.random.Generator, scene: Scene, joints: np.ndarray, detector: str) -> np.ndarray:
    """(J, 3) x, y, confidence as a 2D detector reports the camera-frame ``joints``.

    Visible joints: ~2 px noise, confidence 0.4-0.95; hidden ones: ~6 px, 0.05-0.4. 'openpose' reports joints out
    of view and 5 % of the rest as (0, 0, 0) and, for 30 % of people, one joint at 0.03 (below the readers' 0.05
    threshold); 'hhrnet' (bottom-up, always 17 joints) clamps out-of-view joints to the border with scores < 0.1.
    """
    h, w = scene.depth.shape
    uv, state = scene.keypoints(joints)
    n = len(joints)
    xy = uv + rng.normal(0, 1, (n, 2)) * np.where(state == 2, 2.0, 6.0)[:, None]
    conf = np.where(state == 2, rng.uniform(0.4, 0.95, n), rng.uniform(0.05, 0.4, n))
    if detector == "hhrnet":
        xy = np.clip(xy, 0, [w - 1, h - 1])
        conf = np.where(state == 0, rng.uniform(0.0, 0.1, n), conf)
        return np.concatenate([xy, conf[:, None]], 1)
    missing = (state == 0) | (rng.random(n) < 0.05)
    low = rng.integers(n)
    if rng.random() < 0.3 and not missing[low]:
        conf[low] = 0.03
    return np.where(missing[:, None], 0.0, np.concatenate([xy, conf[:, None]], 1))


def write_pw3d(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """3DPW_latest_{test,validation}.json (gendered SMPL ground truth, OpenPose input per person, bbox, joint_img),
    3DPW_validation_crowd_hhrnet_result.json (3DPW-Crowd sequences; every 5th person unmatched) and imageFiles.

    1-2 people walk through each sequence in front of a static camera; the validation split holds the two crowd
    sequences (two people close together) and one the crowd reader must skip.
    """
    width, height = 540, 960
    count, crowd_count = 0, 0
    hhrnet: dict[str, dict] = {}
    for split, sequences in (("test", PW3D_TEST_SEQUENCES[: plan["pw3d_sequences"]]), ("validation", PW3D_VALIDATION_SEQUENCES)):
        n_frames = plan["pw3d_frames"] if split == "test" else max(1, plan["pw3d_frames"] // 2)
        images, annotations = [], []
        for seq in sequences:
            crowd = seq in PW3D_VALIDATION_SEQUENCES[:2]
            camera = random_camera(rng, width, height, (0.95, 1.1))
            bg = background(rng, height, width)
            n = 2 if crowd else int(rng.integers(1, 3))
            genders = [str(g) for g in rng.choice(["male", "female"], n)]
            shape = rng.standard_normal((n, 10))
            above = rng.uniform(1.0, 1.7)
            start = placements(rng, camera, (width, height), n, crowd, full_body_above=above)
            velocity = np.stack([rng.normal(0, 0.3, n), np.zeros(n), rng.normal(0, 0.2, n)], 1)
            motion = [(rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.45), pose_jitter(rng, 0.08), rng.normal(0, 0.9),
                       rng.normal(0, 0.05, 2)) for _ in range(n)]  # fmt: skip
            outfits = None
            for f in range(n_frames):
                t = f / 30.0  # 3DPW runs at 30 fps
                pose = np.stack([np.concatenate([facing_camera(yaw + 0.1 * t, tilt), body_pose(ph + 2 * np.pi * t, st, jit)])
                                 for ph, st, jit, yaw, tilt in motion])  # fmt: skip
                targets = start + velocity * t
                targets[:, 2] = np.clip(targets[:, 2], start[:, 2].min(), DEPTH_RANGE[1])
                people = stand(kit, pose, shape, genders, targets, CAMERA_UP, -above)
                meshes = [p.vertices for p in people]
                if outfits is None:
                    outfits = dress(rng, meshes, camera, bg)
                scene = render_scene(kit, bg, meshes, outfits, camera)
                image_id = len(images) + (0 if split == "test" else 10000)
                file_name = f"image_{f:05d}.jpg"
                _write_image(root / "imageFiles" / seq / file_name, scene.image)
                images.append({"id": image_id, "width": width, "height": height, "sequence": seq, "file_name": file_name,
                               "cam_param": _cam_param(camera)})  # fmt: skip
                for i, p in enumerate(people):
                    aid = count
                    count += 1
                    uv = camera.project(kit.joints(p.vertices, "smpl30"))
                    lo, hi = uv.min(0) - 10, uv.max(0) + 10
                    annotations.append({
                        "id": aid, "image_id": image_id, "category_id": 1, "bbox": _num([*lo, *(hi - lo)], 2),
                        "smpl_param": {**_fit_entry(p), "gender": p.gender}, "joint_img": _num(uv[:24], 3),
                        "openpose_result": _num(detections(rng, scene, kit.joints(p.vertices, "openpose18"), "openpose"), 3),
                    })  # fmt: skip
                    if crowd:
                        if crowd_count % 5 != 1:
                            coco = detections(rng, scene, kit.joints(p.vertices, "coco17"), "hhrnet")
                            hhrnet[str(aid)] = {"coco_joints": _num(coco, 3), "img_id": image_id}
                        crowd_count += 1
        db = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
        _write_json(root / f"3DPW_latest_{split}.json", db)
    _write_json(root / "3DPW_validation_crowd_hhrnet_result.json", hhrnet)
    return count


# ---------------------------------------------------------------------------------------------------------------
# entry points

WRITERS = {
    "Human36M": write_human36m,
    "MuCo": write_muco,
    "MSCOCO": write_coco,
    "MPII": write_mpii,
    "PW3D": write_pw3d,
    "CrowdPose": write_crowdpose,
}

README = """\
{header}

These are NOT Human3.6M, MuCo-3DHP, MSCOCO, MPII, 3DPW or CrowdPose. They are small synthetic stand-ins written in
exactly those datasets' file names, folder layout and JSON schemas, so that every hap3d reader, `hap3d data check`,
training and evaluation run without the licensed data. Numbers computed on them say nothing about real accuracy.

size {size!r}, seed {seed}; datasets: {datasets}. The same size, seed and body model always give the same files.

How they are made: bodies of the body model in {body} in natural standing/walking poses, standing on a floor 3-8 m
in front of a pinhole camera, rendered with flat shading over procedural backgrounds. 3D joints are
regressed from the meshes (Human3.6M: the H36M regressor, so the SMPL fits match the joints; elsewhere the SMPL30
regressor renamed to each joint set); 2D keypoints are their projections, with visibility from the image bounds and
the depth buffer. SMPL fits are the generating parameters; some are left out or perturbed on purpose so that the
readers' filters have work to do. 3DPW's OpenPose/HigherHRNet inputs are projected ground truth plus detector-like
noise, low confidences and misses.

Deliberate format details:
* Images are smaller than the real ones (Human3.6M 500x500, MuCo 512x512, 3DPW 540x960, COCO/MPII/CrowdPose
  photo-like sizes up to 640 px), all JPEG.
* CrowdPose: crowdpose_train.json stores each image's width and height swapped, as the release 3DCrowdNet was built
  on did (upstream corrected its file in 2021, jeffffffli/CrowdPose#12); the reference reader swaps them back.
* CrowdPose fit_err is the fit's mean reprojection error in pixels over the labeled joints (fits carry random pose
  noise), so fits fall on both sides of the reader's 5.0 threshold.
* Betas are N(0, 1), except for the Human3.6M and MuCo subjects (0.1 N(0, 1)): their readers check each fit against
  the joints on flipped samples too, which only works for a left/right-symmetric shape space (SMPL's nearly is, the
  procedural body model's is not).
* Keypoint flags: COCO and CrowdPose 0/1/2 (unlabeled / hidden / visible, integer pixel clicks), MPII 0/1
  (unlabeled / labeled). Hidden = the depth buffer shows a surface more than 0.2 m in front of the joint.
* 3DPW bbox = extent of the 30 projected joints +- 10 px (the rule of the golden fixtures' 3DPW example).
"""


class SynthCounts(dict[str, int]):
    """Annotations written per dataset; also path-like (``os.fspath``) for the data root it was written to."""

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def __fspath__(self) -> str:
        return str(self.root)


def _claim(out: Path, folders: Sequence[Path], text: str) -> None:
    """Make ``out`` a synthetic data root: refuse to mix into dataset folders hap3d did not write, clear the ones it
    did (no stale files from a larger earlier run), and write the README that marks the root as synthetic."""
    marker = out / "README.txt"
    ours = marker.is_file() and marker.read_text(encoding="utf-8", errors="replace").startswith(README_HEADER)
    busy = [f for f in folders if f.is_dir() and any(f.iterdir())]
    if busy and not ours:
        raise Hap3dError(
            f"{out} already holds dataset folders not written by `hap3d data synth` ({', '.join(str(b) for b in busy)}); "
            "refusing to mix synthetic files into them. Choose another --out folder."
        )
    for f in busy:
        shutil.rmtree(f)
    atomic_write(marker, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def write_synthetic_datasets(
    out: str | os.PathLike,
    body_model_dir: str | os.PathLike,
    size: str = "small",
    seed: int = 0,
    datasets: Sequence[str] | None = None,
) -> SynthCounts:
    """Write synthetic datasets under ``out`` in the seed README layout and return the annotations per dataset.

    ``datasets`` takes the reader names (Human36M, MuCo, MSCOCO, MPII, PW3D, CrowdPose; default all). Each dataset
    draws from its own stream of ``seed``, so a dataset's files do not depend on which others are written.
    """
    if size not in SIZES:
        raise Hap3dError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    names = list(WRITERS) if datasets is None else list(datasets)
    unknown = [n for n in names if n not in WRITERS]
    if unknown:
        raise Hap3dError(f"unknown dataset(s) {', '.join(unknown)}; known: {', '.join(WRITERS)}")
    out = Path(out)
    kit = BodyKit(Path(body_model_dir))
    text = README.format(header=README_HEADER, size=size, seed=seed, datasets=", ".join(names), body=Path(body_model_dir).resolve())
    _claim(out, [written_dataset_root(out, n) for n in names], text)
    counts = SynthCounts(out)
    for index, name in enumerate(WRITERS):
        if name in names:
            counts[name] = WRITERS[name](kit, written_dataset_root(out, name), SIZES[size], np.random.default_rng([seed, index]))
    return counts


def cmd_data_synth(out: str | os.PathLike, body_model_dir: str | os.PathLike | None = None, size: str = "small", seed: int = 0) -> int:
    """``hap3d data synth``: write the datasets (and, without a body-model folder, the procedural body model into
    ``out/body_model``), print what was written; exit code 0."""
    start = time.perf_counter()
    out = Path(out)
    body = Path(body_model_dir) if body_model_dir else out / "body_model"
    if not body_model_dir and not (body / "smpl").is_dir():
        from hap3d.body.synth import write_body_model_dir

        write_body_model_dir(body)
        print(f"wrote the procedural body model (NOT SMPL) to {body}")
    counts = write_synthetic_datasets(out, body, size, seed)
    for name, n in counts.items():
        print(f"  {name}: {n} annotations in {written_dataset_root(out, name)}")
    print(f"wrote synthetic datasets (NOT the real ones) in the real formats to {out} ({time.perf_counter() - start:.1f} s)")
    return 0
