"""Training-sample assembly shared by every training dataset (the sample is described in docs/data.md).

A reader (one module per dataset) declares its files in its ``layout`` (:mod:`hap3d.data.layout`) and parses
them into :class:`PersonRecord` s; :class:`TrainDataset` turns a record into the per-sample contract::

    inputs  {img (3,256,256) [0,1], joints (30,2) 64-space, joints_mask (30,1)}
    targets {orig_joint_img, fit_joint_img, orig_joint_cam, fit_joint_cam (30,3), pose_param (72), shape_param (10)}
    meta    {orig_joint_valid, orig_joint_trunc, fit_joint_trunc (30,1), fit_param_valid (72), is_valid_fit, is_3D}

Randomness (augmentation, PoseFix) comes from a generator seeded by (seed, dataset, epoch, index, visit), so a
sample is reproducible and independent of worker count and rank. The dataset salt keeps Human36M[k] and MSCOCO[k]
apart; ``visit`` counts how often a mix has already handed out the sample this epoch (:class:`~hap3d.data.mix.
BalancedMix` cycles the smaller group), so a repeat gets fresh augmentation, as in the reference. An unreadable
image is logged, counted and replaced by another sample (or raises with ``strict``), so one bad file never ends a
long run.
"""

from __future__ import annotations

import logging
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hap3d.body.joints import convert_joints, get_joint_set
from hap3d.data.fit import FitModel, FitTargets, compute_fit_targets, fit_error_mm, fit_param_valid
from hap3d.data.io import DataError, as_array, first_non_finite, read_image_bgr, require
from hap3d.data.layout import DatasetLayout
from hap3d.data.posefix import replace_joints, synthesize_pose
from hap3d.data.transforms import (
    BBOX_3D_SIZE,
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


NEAR_JOINTS = 17  # near-person joints are COCO17


FIT_SIZES = {"pose": 72, "shape": 10, "trans": 3}


def read_fit(entry: object, path: Path, where: str) -> dict[str, np.ndarray] | None:
    """{pose (72), shape (10), trans (3)} from one SMPL-parameter entry of a fit file.

    None, with a warning naming the entry, when a value is null, NaN or infinite: such a fit would give NaN targets
    with is_valid_fit = 1, so the person becomes a sample without a fit (is_valid_fit = 0, as a missing fit) and the
    reader counts it (``filter_counts['fit_non_finite']``). Missing fields and wrong sizes raise."""
    fit = {key: as_array(require(entry, key, path, where), (n,), path, f"{where}.{key}", finite=False)
           for key, n in FIT_SIZES.items()}
    for key, arr in fit.items():
        if not np.isfinite(arr).all():
            log.warning("%s: %s.%s has a null, NaN or infinite value at index %s; the person is used without a fit",
                        path, where, key, first_non_finite(arr))
            return None
    return fit


class PackedRecords(Sequence[PersonRecord]):
    """Read-only sequence of :class:`PersonRecord` kept as a few large arrays; items are rebuilt as copies.

    A list of records costs ~2.7 kB of Python objects per person and, in forked data-loader workers, every
    access touches reference counts and un-shares memory pages; flat arrays cost ~1 kB and stay shared.
    Optional fields (joint_cam, focal, princpt, world_to_cam) and the fit may be missing per record.
    """

    OPTIONAL = ("joint_cam", "focal", "princpt", "world_to_cam")

    def __init__(self, records: Sequence[PersonRecord]) -> None:
        n = len(records)
        self._paths = np.array([os.fsencode(r.img_path) for r in records], dtype=np.bytes_) if n else np.zeros(0, "S1")
        self._img_size = np.array([r.img_size for r in records], np.int32).reshape(n, 2)
        self._bbox = np.array([r.bbox for r in records], np.float32).reshape(n, 4)
        self._tight = np.array([r.tight_bbox for r in records], np.float32).reshape(n, 4)
        self._joints = np.stack([r.joints for r in records]).astype(np.float32) if n else None
        self._valid = np.stack([r.valid for r in records]).astype(np.float32) if n else None
        self._has_fit = np.array([r.fit is not None for r in records], bool)
        self._fit = np.zeros((n, 85), np.float32)
        for i, r in enumerate(records):
            if r.fit is not None:
                self._fit[i] = np.concatenate(
                    [r.fit["pose"].reshape(72), r.fit["shape"].reshape(10), r.fit["trans"].reshape(3)]
                )
        # name -> (values, present) or None when no record has the field
        self._optional: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
        for name in self.OPTIONAL:
            values = [getattr(r, name) for r in records]
            present = np.array([v is not None for v in values], bool)
            if not present.any():
                self._optional[name] = None
                continue
            if name == "world_to_cam":
                values = [
                    None if v is None else np.concatenate([np.asarray(v[0]).reshape(9), np.asarray(v[1]).reshape(3)])
                    for v in values
                ]
            given = np.stack([v for v in values if v is not None]).astype(np.float32)
            column = np.zeros((n, *given.shape[1:]), np.float32)
            column[present] = given
            self._optional[name] = (column, present)
        counts = [len(r.near_joints) for r in records]
        self._near_start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        near = [nj[:NEAR_JOINTS] for r in records for nj in r.near_joints]
        self._near = np.stack(near).astype(np.float32) if near else np.zeros((0, NEAR_JOINTS, 3), np.float32)

    @classmethod
    def concat(cls, parts: Sequence[PackedRecords]) -> PackedRecords:
        """One store from several (e.g. one per subject, so that only one subject is ever unpacked)."""
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls([])
        out = cls.__new__(cls)
        for name in ("_paths", "_img_size", "_bbox", "_tight", "_joints", "_valid", "_has_fit", "_fit", "_near"):
            setattr(out, name, np.concatenate([getattr(p, name) for p in parts]))
        out._optional = {}
        for name in cls.OPTIONAL:
            columns = [p._optional[name] for p in parts]
            shape = next((c[0].shape[1:] for c in columns if c is not None), None)
            if shape is None:
                out._optional[name] = None
                continue
            filled = [c if c is not None else (np.zeros((len(p), *shape), np.float32), np.zeros(len(p), bool))
                      for p, c in zip(parts, columns)]
            out._optional[name] = (np.concatenate([f[0] for f in filled]), np.concatenate([f[1] for f in filled]))
        offsets = np.cumsum([0] + [len(p._near) for p in parts[:-1]])
        starts = [[0]] + [p._near_start[1:] + o for p, o in zip(parts, offsets)]
        out._near_start = np.concatenate(starts).astype(np.int64)
        return out

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, idx):  # type: ignore[override]
        if isinstance(idx, slice):
            return [self[i] for i in range(*idx.indices(len(self)))]
        n = len(self)
        if not -n <= idx < n:
            raise IndexError(f"record index {idx} out of range for {n} records")
        i = int(idx) % n

        def opt(name: str) -> np.ndarray | None:
            col = self._optional[name]
            return None if col is None or not col[1][i] else col[0][i].copy()

        w2c = opt("world_to_cam")
        fit = self._fit[i]
        return PersonRecord(
            img_path=Path(os.fsdecode(self._paths[i])),
            img_size=(int(self._img_size[i, 0]), int(self._img_size[i, 1])),
            bbox=self._bbox[i].copy(),
            tight_bbox=self._tight[i].copy(),
            joints=self._joints[i].copy(),
            valid=self._valid[i].copy(),
            joint_cam=opt("joint_cam"),
            fit=(
                {"pose": fit[:72].copy(), "shape": fit[72:82].copy(), "trans": fit[82:].copy()}
                if self._has_fit[i] else None
            ),
            focal=opt("focal"),
            princpt=opt("princpt"),
            world_to_cam=None if w2c is None else (w2c[:9].reshape(3, 3), w2c[9:]),
            near_joints=list(self._near[self._near_start[i] : self._near_start[i + 1]].copy()),
        )

    def __iter__(self) -> Iterator[PersonRecord]:
        return (self[i] for i in range(len(self)))


def overlapping_people(tight_boxes: np.ndarray, threshold: float = 0.1) -> list[np.ndarray]:
    """For each person, the indices of the others whose tight boxes overlap it with IoU >= threshold."""
    if len(tight_boxes) == 0:
        return []
    iou = box_iou(tight_boxes, tight_boxes)
    np.fill_diagonal(iou, 0)
    return [np.flatnonzero(row >= threshold) for row in iou]


class TrainDataset(torch.utils.data.Dataset):
    """Base of the training readers. Subclasses set the class attributes and implement :meth:`load`."""

    layout: ClassVar[DatasetLayout[Any]]  # the files the reader reads; required by the registry (hap3d.data)
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
        bbox_3d_size: float = BBOX_3D_SIZE,
    ) -> None:
        """``bbox_3d_size``: the depth range (metres) of the 64-space targets (``model.bbox_3d_size``)."""
        self.root = Path(root)
        self.fit_model = fit_model
        self.reference_compat = reference_compat
        self.seed = seed
        self.strict = strict
        self.augment = augment
        self.bbox_3d_size = bbox_3d_size
        self.epoch = 0
        self.skipped: dict[str, int] = {}
        self.fits_behind_camera = 0  # fits found unprojectable while building samples (in this process)
        self._warned_behind_camera: set[int] = set()  # records already named in that warning (one per record)
        self.filter_counts: dict[str, int] = {}  # the reader's tally of kept and dropped annotations
        self.records = self.load()
        js = get_joint_set(self.joint_set)
        self.replace_idx = tuple(js.index(n) for n in self.posefix_joints)

    # ----------------------------------------------------------------- hooks
    def load(self) -> Sequence[PersonRecord]:
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

    @property
    def salt(self) -> int:
        """A stable per-dataset seed component (Python's str hash changes between processes)."""
        return zlib.crc32(self.name.encode())

    def rng_for(self, idx: int, visit: int = 0, attempt: int = 0) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.salt, self.epoch, idx, visit, attempt])

    def __getitem__(self, idx: int) -> dict:
        return self.sample(idx)

    def sample(self, idx: int, visit: int = 0) -> dict:
        """Sample ``idx`` as handed out for the ``visit``-th time this epoch (0 for plain indexing)."""
        for attempt in range(10):
            try:
                sample = self.build(idx, self.rng_for(idx, visit, attempt))
                # How many unreadable samples this one replaces: workers' own counters never reach the trainer.
                sample["meta"]["replaced"] = torch.tensor(attempt, dtype=torch.int64)
                return sample
            except DataError as err:
                if self.strict:
                    raise
                self.skipped[str(self.records[idx].img_path)] = self.skipped.get(str(self.records[idx].img_path), 0) + 1
                log.warning("%s sample %d skipped (%s); using another sample", self.name, idx, err)
                idx = int(self.rng_for(idx, visit, attempt).integers(len(self.records)))
        raise DataError(f"{self.name}: 10 consecutive unreadable samples; check the image folder under {self.root}")

    # ----------------------------------------------------------------- assembly
    def build(self, idx: int, rng: np.random.Generator) -> dict:
        rec = self.records[idx]
        img = read_image_bgr(rec.img_path)
        aug = sample_augmentation(rng) if self.augment else Augmentation()
        crop = crop_image(img, rec.bbox, aug, bgr=True)
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
            img64[:, 2] = depth_to_heatmap(joints[:, 2] - joints[root, 2], unit=1000.0, bbox_3d_size=self.bbox_3d_size)
        else:
            img64[:, 2] = valid[:, 0]
        trunc = valid * inside_mask(img64, use_depth=self.is_3d)

        # Input pose: ground truth in crop pixels, PoseFix-corrupted on the COCO-visible joints.
        inp = np.concatenate([xy_crop, np.ones_like(valid) if self.is_3d else valid], 1)
        coco = convert_joints(inp, self.joint_set, "coco17")
        near = self._near_joints(rec, crop.img2bb)
        synth = synthesize_pose(
            coco, rec.tight_bbox, near, len(rec.near_joints), crop.img2bb, rng, self.reference_compat
        )
        inp = replace_joints(inp, synth, get_joint_set(self.joint_set).joints, self.replace_idx)
        inp64 = to_heatmap_space(inp[:, :2]).astype(np.float32)

        ft = None
        if rec.fit is not None and self.fit_model is not None:
            ft = compute_fit_targets(
                self.fit_model, rec.fit["pose"], rec.fit["shape"], rec.fit["trans"], rec.focal, rec.princpt, width, aug,
                crop.img2bb, rec.world_to_cam,
                rotate=self.rotate_fit or not self.reference_compat,
                root_relative=self.fit_root_relative or not self.reference_compat, bbox_3d_size=self.bbox_3d_size,
            )
            if ft is None:
                self.fits_behind_camera += 1
                if idx not in self._warned_behind_camera:  # every visit of every epoch would repeat it
                    self._warned_behind_camera.add(idx)
                    log.warning("%s sample %d: the SMPL fit of the person in %s has a joint at or behind the camera "
                                "plane (z <= 0); the sample is used without its fit", self.name, idx, rec.img_path)
            else:
                ft.valid = float(self.fit_is_valid(rec, cam, ft, aug))
        if ft is None:
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
        """Other people's COCO17 joints in crop pixels, all marked valid and not flipped, as the reference's
        (docs/reference-differences.md R34)."""
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
