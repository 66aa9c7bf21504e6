"""SMPL-fit targets for training samples: the fit's 30 joints in the crop (64-space + depth) and in 3D.

The reference ran a full 6890-vertex SMPL forward per sample in its data workers (the dominant cost after
PoseFix). The targets only need joints regressed from the mesh, and every regressor reads a few hundred
vertices, so :class:`FitModel` skins only those vertices: the same numbers at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch

from hap3d.body.joints import FIT_PARAM_INVALID_JOINTS, get_joint_set
from hap3d.body.smpl import SMPL
from hap3d.data.transforms import (
    BBOX_3D_SIZE,
    Augmentation,
    apply_affine,
    depth_to_heatmap,
    inside_mask,
    rotation_about_z,
    to_heatmap_space,
)

SHAPE_CLAMP = 3.0


class FitModel:
    """Neutral SMPL restricted to the vertices read by a set of joint regressors (name -> (J, V) array)."""

    def __init__(self, smpl_arrays: dict[str, np.ndarray], regressors: dict[str, np.ndarray]) -> None:
        support = np.flatnonzero(smpl_arrays["J_regressor"].any(0))
        for reg in regressors.values():
            support = np.union1d(support, np.flatnonzero(np.asarray(reg).any(0)))
        sub = {
            "v_template": smpl_arrays["v_template"][support],
            "shapedirs": smpl_arrays["shapedirs"][support],
            "posedirs": smpl_arrays["posedirs"][support],
            "weights": smpl_arrays["weights"][support],
            "J_regressor": smpl_arrays["J_regressor"][:, support],
            "faces": np.zeros((0, 3), np.int64),
            "parents": smpl_arrays["parents"],
        }
        self.num_support = len(support)
        self.smpl = SMPL(sub)
        self.regressors = {k: np.asarray(v, np.float32)[:, support] for k, v in regressors.items()}

    @torch.no_grad()
    def joints(self, pose: np.ndarray, shape: np.ndarray, trans: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Regressed joints (metres) for one fit; ``trans`` None means no translation."""
        t = None if trans is None else torch.from_numpy(np.asarray(trans, np.float32).reshape(1, 3))
        verts = self.smpl(
            torch.from_numpy(np.asarray(pose, np.float32).reshape(1, 72)),
            torch.from_numpy(np.asarray(shape, np.float32).reshape(1, -1)),
            t,
        ).vertices[0].numpy()
        return {k: r @ verts for k, r in self.regressors.items()}


def rodrigues_compose(rot: np.ndarray, aa: np.ndarray) -> np.ndarray:
    """Axis-angle of rot . R(aa) (OpenCV Rodrigues, float64 as in the reference)."""
    r, _ = cv2.Rodrigues(np.asarray(aa, np.float64).reshape(3))
    out, _ = cv2.Rodrigues(np.asarray(rot, np.float64) @ r)
    return out.reshape(3).astype(np.float32)


def flip_smpl_pose(pose: np.ndarray) -> np.ndarray:
    """Mirror an SMPL pose: swap left/right joint rotations and negate their y, z components."""
    p = np.asarray(pose, np.float32).reshape(24, 3).copy()
    for a, b in get_joint_set("smpl24").flip_pairs:
        p[[a, b]] = p[[b, a]]
    p[:, 1:3] *= -1
    return p.reshape(72)


def fit_param_valid() -> np.ndarray:
    """(72,) 1 for supervised SMPL joint rotations (ankles, toes, wrists and hands are not)."""
    v = np.ones((24, 3), np.float32)
    v[list(FIT_PARAM_INVALID_JOINTS)] = 0
    return v.reshape(72)


@dataclass
class FitTargets:
    joint_img: np.ndarray  # (30, 3) 64-space x, y, discretised depth
    joint_cam: np.ndarray  # (30, 3) metres, root-relative (MPII under reference_compat: absolute)
    joint_trunc: np.ndarray  # (30, 1)
    pose: np.ndarray  # (72,) after flip / rotation augmentation
    shape: np.ndarray  # (10,) zeroed when any |beta| > 3
    h36m_cam: np.ndarray | None  # (17, 3) metres, camera frame, for the fit-validity check
    valid: float = 1.0

    @staticmethod
    def missing(num_joints: int = 30) -> "FitTargets":
        """Zero-filled targets for a sample without a fit (is_valid_fit = 0)."""
        z = np.zeros((num_joints, 3), np.float32)
        return FitTargets(z, z.copy(), np.zeros((num_joints, 1), np.float32), np.zeros(72, np.float32),
                          np.zeros(10, np.float32), None, 0.0)


def compute_fit_targets(
    fit: FitModel,
    pose: np.ndarray,
    shape: np.ndarray,
    trans: np.ndarray,
    focal: np.ndarray,
    princpt: np.ndarray,
    img_width: int,
    aug: Augmentation,
    img2bb: np.ndarray,
    world_to_cam: tuple[np.ndarray, np.ndarray] | None = None,
    rotate: bool = True,
    root_relative: bool = True,
    bbox_3d_size: float = BBOX_3D_SIZE,
) -> FitTargets | None:
    """The fit's joints in the (flipped, rotated) crop and camera frame; None when a joint is at or behind the
    camera plane (z <= 0), where the projection is infinite or mirrored and no target can be trusted.

    ``world_to_cam`` = (R, t in metres) when the fit lives in world coordinates (Human3.6M): the camera
    rotation is merged into the root and the translation re-derived about the pelvis, as the reference does.
    ``rotate`` / ``root_relative`` False reproduce the reference's MPII handling. ``bbox_3d_size`` is the depth range
    (metres) of the 64-space.
    """
    pose = np.asarray(pose, np.float32).reshape(72).copy()
    shape = np.asarray(shape, np.float32).reshape(-1)
    if world_to_cam is not None:
        r_cam, t_cam = world_to_cam
        pose[:3] = rodrigues_compose(r_cam, pose[:3])
    if aug.flip:
        pose = flip_smpl_pose(pose)
    if world_to_cam is None:
        j = fit.joints(pose, shape, trans)
    else:
        j = fit.joints(pose, shape, None)
        root = j["smpl30"][0]
        offset = r_cam @ np.asarray(trans, np.float32).reshape(3) + t_cam - root + r_cam @ root
        j = {k: v + offset for k, v in j.items()}
    if aug.flip:  # keep the root's image projection mirrored at unchanged depth
        root = j["smpl30"][0]
        dx = 2 * ((img_width - 1) / 2.0 - princpt[0]) / focal[0] * root[2] - 2 * root[0]
        j = {k: v + np.array([dx, 0, 0], np.float32) for k, v in j.items()}
    joints = j["smpl30"].astype(np.float32)
    target_shape = np.zeros_like(shape) if np.any(np.abs(shape) > SHAPE_CLAMP) else shape.copy()

    img = np.empty_like(joints)
    with np.errstate(divide="ignore", invalid="ignore"):  # z = 0 is rejected just below
        img[:, 0] = joints[:, 0] / joints[:, 2] * focal[0] + princpt[0]
        img[:, 1] = joints[:, 1] / joints[:, 2] * focal[1] + princpt[1]
    if not ((joints[:, 2] > 0).all() and np.isfinite(img).all()):  # z <= 0 (or NaN): no projection
        return None
    img[:, :2] = to_heatmap_space(apply_affine(img[:, :2], img2bb))
    img[:, 2] = depth_to_heatmap(joints[:, 2] - joints[0, 2], bbox_3d_size=bbox_3d_size)
    trunc = inside_mask(img, use_depth=True)

    cam = joints - joints[:1] if root_relative else joints.copy()
    if rotate:
        r_aug = rotation_about_z(aug.rot)
        pose[:3] = rodrigues_compose(r_aug, pose[:3])
        cam = cam @ r_aug.T
    return FitTargets(img.astype(np.float32), cam.astype(np.float32), trunc, pose, target_shape[:10], j.get("h36m"))


def fit_error_mm(gt_cam_mm: np.ndarray, fit_h36m_mm: np.ndarray) -> float:
    """Mean joint distance after aligning the means (the reference's 25 mm fit-validity test)."""
    aligned = fit_h36m_mm - fit_h36m_mm.mean(0, keepdims=True) + gt_cam_mm.mean(0, keepdims=True)
    return float(np.sqrt(((gt_cam_mm - aligned) ** 2).sum(1)).mean())
