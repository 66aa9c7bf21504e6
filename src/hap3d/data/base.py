"""Training-sample assembly shared by every training dataset (spec §5.1-5.4).

A reader (one module per dataset) parses its files into :class:`PersonRecord` s; :class:`TrainDataset` turns a
record into the per-sample contract::

    inputs  {img (3,256,256) [0,1], joints (30,2) 64-space, joints_mask (30,1)}
    targets {orig_joint_img, fit_joint_img, orig_joint_cam, fit_joint_cam (30,3), pose_param (72), shape_param (10)}
    meta    {orig_joint_valid, orig_joint_trunc, fit_joint_trunc (30,1), fit_param_valid (72), is_valid_fit, is_3D}

Randomness (augmentation, PoseFix) comes from a generator seeded by (seed, epoch, index), so a sample is
reproducible and independent of worker count and rank. An unreadable image is logged, counted and replaced by
another sample (or raises with ``strict``), so one bad file never ends a long run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from hap3d.body.joints import convert_joints, get_joint_set
from hap3d.data.fit import FitModel, FitTargets, compute_fit_targets, fit_error_mm, fit_param_valid
from hap3d.data.io import DataError, load_image
from hap3d.data.posefix import replace_joints, synthesize_pose
from hap3d.data.transforms import (
    Augmentation,
    apply_affine,
    box_iou,
    crop_image,
    depth_to_heatmap,
    flip_joints_2d,
    inside_mask,
    rotation_about_z,
    sample_augmentation,
    swap_pairs,
    to_heatmap_space,
)

log = logging.getLogger(__name__)
FIT_ERROR_THRESHOLD_MM = 25.0


@dataclass
class PersonRecord:
    """One training person, as parsed from a dataset's files (image-space joints in original pixels)."""

    img_path: Path
    img_size: tuple[int, int]  # (height, width)
    bbox: np.ndarray  # processed crop box (xywh, square x1.25)
    tight_bbox: np.ndarray  # annotated box (xywh)
    joints: np.ndarray  # (J, 3): x, y in pixels and, for 3D sets, camera depth in mm
    valid: np.ndarray  # (J, 1)
    joint_cam: np.ndarray | None = None  # (J, 3) mm, camera frame (3D sets)
    fit: dict[str, np.ndarray] | None = None  # SMPL fit: pose (72), shape (10), trans (3)
    focal: np.ndarray | None = None  # intrinsics for the fit (and for 3D sets, of the image)
    princpt: np.ndarray | None = None
    world_to_cam: tuple[np.ndarray, np.ndarray] | None = None  # (R, t metres) when the fit is in world frame
    near_joints: list[np.ndarray] = field(default_factory=list)  # other people's COCO17 joints (pixels)
    fit_extra: dict[str, float] = field(default_factory=dict)


def overlapping_people(tight_boxes: np.ndarray, threshold: float = 0.1) -> list[np.ndarray]:
    """For each person, the indices of the others whose tight boxes overlap it with IoU >= threshold."""
    if len(tight_boxes) == 0:
        return []
    iou = box_iou(tight_boxes, tight_boxes)
    np.fill_diagonal(iou, 0)
    return [np.flatnonzero(row >= threshold) for row in iou]


class TrainDataset(torch.utils.data.Dataset):
    """Base of the training readers. Subclasses set the class attributes and implement :meth:`load`."""

    name = "base"
    joint_set = "smpl30"  # the dataset's own joint set
    is_3d = False
    posefix_joints: tuple[str, ...] = ()  # dataset joints whose input position PoseFix may corrupt
    rotate_fit = True
    fit_root_relative = True

    def __init__(
        self,
        root: str | Path,
        fit_model: FitModel | None,
        reference_compat: bool = True,
        seed: int = 0,
        strict: bool = False,
        augment: bool = True,
    ) -> None:
        self.root = Path(root)
        self.fit_model = fit_model
        self.reference_compat = reference_compat
        self.seed = seed
        self.strict = strict
        self.augment = augment
        self.epoch = 0
        self.skipped: dict[str, int] = {}
        self.records = self.load()
        js = get_joint_set(self.joint_set)
        self.replace_idx = tuple(js.index(n) for n in self.posefix_joints)

    # ----------------------------------------------------------------- hooks
    def load(self) -> list[PersonRecord]:
        raise NotImplementedError

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        return get_joint_set(self.joint_set).flip_pairs

    def fit_is_valid(self, rec: PersonRecord, gt_cam_mm: np.ndarray | None, fit: FitTargets, aug: Augmentation) -> bool:
        """Whether the fit is trustworthy; 3D sets compare it with the ground truth (25 mm)."""
        return True

    # ----------------------------------------------------------------- sampling
    def set_epoch(self, epoch: int) -> None:
        """Change the augmentation stream (call at the start of every epoch)."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.records)

    def rng_for(self, idx: int, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, idx, attempt])

    def __getitem__(self, idx: int) -> dict:
        for attempt in range(10):
            try:
                sample = self.build(self.records[idx], self.rng_for(idx, attempt))
                # How many unreadable samples this one replaces: workers' own counters never reach the trainer.
                sample["meta"]["replaced"] = torch.tensor(attempt, dtype=torch.int64)
                return sample
            except DataError as err:
                if self.strict:
                    raise
                self.skipped[str(self.records[idx].img_path)] = self.skipped.get(str(self.records[idx].img_path), 0) + 1
                log.warning("%s sample %d skipped (%s); using another sample", self.name, idx, err)
                idx = int(self.rng_for(idx, attempt).integers(len(self.records)))
        raise DataError(f"{self.name}: 10 consecutive unreadable samples; check the image folder under {self.root}")

    # ----------------------------------------------------------------- assembly
    def build(self, rec: PersonRecord, rng: np.random.Generator) -> dict:
        img = load_image(rec.img_path)
        aug = sample_augmentation(rng) if self.augment else Augmentation()
        crop = crop_image(img, rec.bbox, aug)
        height, width = rec.img_size

        joints, valid = rec.joints.astype(np.float32).copy(), rec.valid.astype(np.float32).copy()
        cam = None if rec.joint_cam is None else rec.joint_cam.astype(np.float32).copy()
        root = get_joint_set(self.joint_set).root
        if cam is not None:
            cam = cam - cam[root : root + 1]
        if aug.flip:
            joints = flip_joints_2d(joints, width, self.flip_pairs)
            valid = swap_pairs(valid, self.flip_pairs)
            if cam is not None:
                cam = swap_pairs(cam, self.flip_pairs)
                cam[:, 0] = -cam[:, 0]
        xy_crop = apply_affine(joints[:, :2], crop.img2bb).astype(np.float32)

        img64 = joints.copy()
        img64[:, :2] = to_heatmap_space(xy_crop)
        if self.is_3d:
            img64[:, 2] = depth_to_heatmap(joints[:, 2] - joints[root, 2], unit=1000.0)
        else:
            img64[:, 2] = valid[:, 0]
        trunc = valid * inside_mask(img64, use_depth=self.is_3d)

        # Input pose: ground truth in crop pixels, PoseFix-corrupted on the COCO-visible joints.
        inp = np.concatenate([xy_crop, np.ones_like(valid) if self.is_3d else valid], 1)
        coco = convert_joints(inp, self.joint_set, "coco17")
        near = self._near_joints(rec, crop.img2bb)
        synth = synthesize_pose(coco, rec.tight_bbox, near, len(rec.near_joints), crop.img2bb, rng, self.reference_compat)
        inp = replace_joints(inp, synth, get_joint_set(self.joint_set).joints, self.replace_idx)
        inp64 = to_heatmap_space(inp[:, :2]).astype(np.float32)

        if rec.fit is not None and self.fit_model is not None:
            focal = rec.focal
            ft = compute_fit_targets(
                self.fit_model, rec.fit["pose"], rec.fit["shape"], rec.fit["trans"], focal, rec.princpt, width, aug,
                crop.img2bb, rec.world_to_cam,
                rotate=self.rotate_fit or not self.reference_compat,
                root_relative=self.fit_root_relative or not self.reference_compat,
            )
            ft.valid = float(self.fit_is_valid(rec, cam, ft, aug))
        else:
            ft = FitTargets.missing()

        orig_cam = np.zeros((30, 3), np.float32)
        if cam is not None:
            cam_m = (cam / 1000.0) @ rotation_about_z(aug.rot).T
            orig_cam = convert_joints(cam_m.astype(np.float32), self.joint_set, "smpl30")
        to30 = lambda a: convert_joints(a.astype(np.float32), self.joint_set, "smpl30")  # noqa: E731
        orig_trunc30 = to30(trunc)
        return {
            "inputs": {
                "img": torch.from_numpy(np.ascontiguousarray(crop.img.transpose(2, 0, 1)) / np.float32(255)),
                "joints": torch.from_numpy(to30(inp64)),
                "joints_mask": torch.from_numpy(orig_trunc30),
            },
            "targets": {
                "orig_joint_img": torch.from_numpy(to30(img64)),
                "fit_joint_img": torch.from_numpy(ft.joint_img),
                "orig_joint_cam": torch.from_numpy(orig_cam),
                "fit_joint_cam": torch.from_numpy(ft.joint_cam),
                "pose_param": torch.from_numpy(ft.pose),
                "shape_param": torch.from_numpy(ft.shape),
            },
            "meta": {
                "orig_joint_valid": torch.from_numpy(to30(valid)),
                "orig_joint_trunc": torch.from_numpy(orig_trunc30),
                "fit_param_valid": torch.from_numpy(fit_param_valid()),
                "fit_joint_trunc": torch.from_numpy(ft.joint_trunc),
                "is_valid_fit": torch.tensor(ft.valid, dtype=torch.float32),
                "is_3D": torch.tensor(float(self.is_3d), dtype=torch.float32),
            },
        }

    def _near_joints(self, rec: PersonRecord, img2bb: np.ndarray) -> np.ndarray:
        """Other people's COCO17 joints in crop pixels, all marked valid and not flipped (reference behaviour)."""
        if not rec.near_joints:
            return np.zeros((1, 17, 3), np.float32)
        out = np.ones((len(rec.near_joints), 17, 3), np.float32)
        for k, nj in enumerate(rec.near_joints):
            out[k, :, :2] = apply_affine(nj[:17, :2], img2bb)
        return out

    def fit_error_check(self, gt_cam_mm: np.ndarray | None, fit: FitTargets, joint_names: tuple[str, ...]) -> bool:
        """The 25 mm rule of Human3.6M / MuCo on the named H36M joints."""
        if gt_cam_mm is None or fit.h36m_cam is None:
            return False
        gt_h36m = convert_joints(gt_cam_mm, self.joint_set, "h36m17")
        h36m = get_joint_set("h36m17")
        idx = [h36m.index(n) for n in joint_names]
        return fit_error_mm(gt_h36m[idx], fit.h36m_cam[idx] * 1000.0) <= FIT_ERROR_THRESHOLD_MM
