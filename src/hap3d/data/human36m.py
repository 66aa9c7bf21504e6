"""Human3.6M with SMPL fits (3D training set; the eval split is kept for inspection).

Files under ``root`` (the ``Human36M`` folder; declared in :data:`LAYOUT`)::

    annotations/Human36M_subject{S}_data.json       COCO-like: images (subject, action_idx, subaction_idx,
                                                    frame_idx, cam_idx, ...) and annotations (tight bbox)
    annotations/Human36M_subject{S}_camera.json     {cam_idx: {R 3x3, t (mm), f, c}}
    annotations/Human36M_subject{S}_joint_3d.json   {action: {subaction: {frame: 17x3 world joints (mm)}}}
    annotations/Human36M_subject{S}_smpl_param.json {action: {subaction: {frame: {pose, shape, trans (m)}}}}
    images/<file_name>

Splits (:data:`SPLITS`, the reference's protocol): ``train`` = subjects 1, 5, 6, 7, 8, every 5th frame, all
cameras; ``test`` = subjects 9 and 11, every 64th frame, camera 4. The test split uses the ground-truth box (the
reference's RootNet boxes are for its broken evaluation only) and is not augmented unless asked.

The SMPL fits live in the H36M world frame: :func:`~hap3d.data.fit.compute_fit_targets` merges the camera
rotation into the root and re-derives the translation (``PersonRecord.world_to_cam``).

``reference_compat`` changes nothing here: the reference reader has no quirk with a numerical effect beyond
those :class:`~hap3d.data.base.TrainDataset` handles for every set (the input joint mask is the ground-truth
truncation mask; docs/reference-differences.md R33).

Records are stored column-wise (:class:`~hap3d.data.base.PackedRecords`): ~300k people as a few arrays.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hap3d.body.joints import H36M17
from hap3d.data.base import PackedRecords, PersonRecord, TrainDataset, read_fit
from hap3d.data.fit import FitModel, FitTargets
from hap3d.data.io import DataError, ImageIndex, as_array, load_json, require, require_int, require_list, require_str
from hap3d.data.layout import DataFile, DatasetLayout, Variant
from hap3d.data.transforms import BBOX_3D_SIZE, Augmentation, process_bbox

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class H36MSplit:
    """Which frames a split reads."""

    subjects: tuple[int, ...]
    every: int  # frame subsampling: frames whose index is a multiple of it
    cameras: tuple[str, ...] | None  # None = all


SPLITS = {
    "train": H36MSplit((1, 5, 6, 7, 8), every=5, cameras=None),
    "test": H36MSplit((9, 11), every=64, cameras=("4",)),  # also evaluation protocol 2 (frontal camera)
    "test_all_cameras": H36MSplit((9, 11), every=64, cameras=None),  # evaluation protocol 1
}
SUBJECT_FILES = ("data", "camera", "joint_3d", "smpl_param")  # one JSON file of each per subject
SUBJECTS = tuple(sorted({s for split in SPLITS.values() for s in split.subjects}))
ACTIONS = {
    2: "Directions", 3: "Discussion", 4: "Eating", 5: "Greeting", 6: "Phoning", 7: "Posing", 8: "Purchases",
    9: "Sitting", 10: "SittingDown", 11: "Smoking", 12: "Photo", 13: "Waiting", 14: "Walking", 15: "WalkDog",
    16: "WalkTogether",
}  # fmt: skip  # action_idx -> name, as in the dataset's own naming


def subject_file_key(subject: int, kind: str) -> str:
    """The :data:`LAYOUT` key of one subject's file (``kind`` in :data:`SUBJECT_FILES`)."""
    return f"subject{subject}_{kind}"


LAYOUT: DatasetLayout[H36MSplit] = DatasetLayout(
    folders=("Human36M",),
    files=tuple(
        DataFile(subject_file_key(s, kind), f"annotations/Human36M_subject{s}_{kind}.json",
                 f"Human3.6M subject {s} {kind.replace('_', ' ')}",
                 splits=tuple(name for name, table in SPLITS.items() if s in table.subjects))
        for s in SUBJECTS for kind in SUBJECT_FILES
    ) + (DataFile("images", "images", "Human3.6M images", is_dir=True),),
    images="images",
    splits=SPLITS,
    default_split="train",
    variants=(Variant("Human36M-test", "Human3.6M test split (S9, S11)", split="test", option="test",
                      replaces_default=False),),
)


def cam_to_pixel(cam: np.ndarray, focal: np.ndarray, princpt: np.ndarray) -> np.ndarray:
    """(J, 3) camera-frame points -> pixel x, y and the camera depth z (same unit as the input)."""
    x = cam[:, 0] / cam[:, 2] * focal[0] + princpt[0]
    y = cam[:, 1] / cam[:, 2] * focal[1] + princpt[1]
    return np.stack([x, y, cam[:, 2]], 1)


class Human36M(TrainDataset):
    name = "Human36M"
    layout = LAYOUT
    joint_set = "h36m17"
    is_3d = True
    # every H36M joint COCO also names (Pelvis, Torso, Neck and Head_top keep their ground truth)
    posefix_joints = (
        "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Nose", "L_Shoulder", "L_Elbow", "L_Wrist",
        "R_Shoulder", "R_Elbow", "R_Wrist",
    )

    def __init__(
        self,
        root: str | Path,
        fit_model: FitModel | None,
        reference_compat: bool = True,
        seed: int = 0,
        strict: bool = False,
        augment: bool | None = None,
        split: str = "train",
        bbox_3d_size: float = BBOX_3D_SIZE,
        test: bool = False,
    ) -> None:
        """``augment`` None means: augment the train split, not the test split. ``test=True`` is ``split='test'``
        (the layout's variant, a row of ``hap3d data check``)."""
        split = "test" if test else split
        if split not in SPLITS:
            raise ValueError(f"unknown Human36M split {split!r}; known: {', '.join(SPLITS)}")
        self.split = split
        augment = split == "train" if augment is None else augment
        super().__init__(root, fit_model, reference_compat, seed, strict, augment, bbox_3d_size)

    def annotation_file(self, subject: int, kind: str) -> Path:
        return self.layout.path(self.root, subject_file_key(subject, kind))

    def load(self) -> PackedRecords:
        split = self.layout.splits[self.split]
        self.filter_counts = dict.fromkeys(
            ("annotations", "other_frame", "other_camera", "degenerate_bbox", "kept", "kept_without_fit",
             "fit_non_finite"), 0
        )
        records = PackedRecords.concat([self._load_subject(s, split.every, split.cameras) for s in split.subjects])
        c = self.filter_counts
        log.info(
            "Human36M %s: %d of %d annotations kept (%d without SMPL fit, %d of them for a non-finite fit); dropped: "
            "%d by frame subsampling, %d by camera, %d degenerate boxes", self.split, c["kept"], c["annotations"],
            c["kept_without_fit"], c["fit_non_finite"], c["other_frame"], c["other_camera"], c["degenerate_bbox"],
        )
        return records

    def _load_subject(self, subject: int, every: int, cameras: tuple[str, ...] | None) -> PackedRecords:
        """The kept people of one subject; its JSON is released before the next subject is read."""
        data_path = self.annotation_file(subject, "data")
        db = load_json(data_path, f"Human3.6M subject {subject} annotations")
        cam_path = self.annotation_file(subject, "camera")
        cams_raw = load_json(cam_path, f"Human3.6M subject {subject} cameras")
        joint_path = self.annotation_file(subject, "joint_3d")
        joints_raw = load_json(joint_path, f"Human3.6M subject {subject} 3D joints")
        fit_path = self.annotation_file(subject, "smpl_param")
        fits_raw = load_json(fit_path, f"Human3.6M subject {subject} SMPL fits")

        images = ImageIndex(db, data_path)
        camera_cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        out: list[PersonRecord] = []
        counts = self.filter_counts
        for k, ann in enumerate(require_list(db, "annotations", data_path, "the file")):
            aid = require_int(ann, "id", data_path, f"annotations[{k}]")
            where = f"annotation {aid} (annotations[{k}])"
            counts["annotations"] += 1
            img, iwhere = images.find(require_int(ann, "image_id", data_path, where), where)
            frame = require_int(img, "frame_idx", data_path, iwhere)
            if frame % every != 0:
                counts["other_frame"] += 1
                continue
            cam_idx = str(require_int(img, "cam_idx", data_path, iwhere))
            if cameras is not None and cam_idx not in cameras:
                counts["other_camera"] += 1
                continue
            img_subject = require_int(img, "subject", data_path, iwhere)
            if img_subject != subject:
                raise DataError(f"{data_path}: {iwhere} has subject {img_subject}, but the file is subject {subject}'s")
            width, height = require_int(img, "width", data_path, iwhere), require_int(img, "height", data_path, iwhere)
            tight = as_array(require(ann, "bbox", data_path, where), (4,), data_path, where + " 'bbox'")
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                counts["degenerate_bbox"] += 1
                continue

            if cam_idx not in camera_cache:
                camera_cache[cam_idx] = self._camera(cams_raw, cam_idx, cam_path, iwhere)
            rot, t, focal, princpt = camera_cache[cam_idx]
            action, subaction = (str(require_int(img, k, data_path, iwhere)) for k in ("action_idx", "subaction_idx"))
            key = (action, subaction, str(frame))
            world = self._lookup(joints_raw, key, joint_path, iwhere)
            joint_cam = as_array(world, (17, 3), joint_path, "joints " + "/".join(key)) @ rot.T + t[None]

            fit_entry = self._lookup(fits_raw, key, fit_path, iwhere, missing_ok=True)
            fit = None if fit_entry is None else read_fit(fit_entry, fit_path, "fit " + "/".join(key))
            counts["fit_non_finite"] += fit_entry is not None and fit is None
            counts["kept"] += 1
            counts["kept_without_fit"] += fit is None
            out.append(
                PersonRecord(
                    img_path=self.root / self.layout.images / require_str(img, "file_name", data_path, iwhere),
                    img_size=(height, width),
                    bbox=bbox,
                    tight_bbox=tight,
                    joints=cam_to_pixel(joint_cam, focal, princpt),
                    valid=np.ones((17, 1), np.float32),
                    joint_cam=joint_cam,
                    fit=fit,
                    focal=focal,
                    princpt=princpt,
                    world_to_cam=(rot, t / 1000.0),
                )
            )
        return PackedRecords(out)

    @staticmethod
    def _camera(
        cams: object, cam_idx: str, path: Path, needed_by: str
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(R, t mm, focal, principal point) of one camera."""
        if not isinstance(cams, dict) or cam_idx not in cams:
            raise DataError(f"{path}: no camera '{cam_idx}' (needed by {needed_by})")
        cam, where = cams[cam_idx], f"camera '{cam_idx}'"
        return (
            as_array(require(cam, "R", path, where), (3, 3), path, where + " 'R'"),
            as_array(require(cam, "t", path, where), (3,), path, where + " 't'"),
            as_array(require(cam, "f", path, where), (2,), path, where + " 'f'"),
            as_array(require(cam, "c", path, where), (2,), path, where + " 'c'"),
        )

    @staticmethod
    def _lookup(tree: object, key: tuple[str, ...], path: Path, needed_by: str, missing_ok: bool = False) -> object:
        """tree[action][subaction][frame]; a missing entry is None if ``missing_ok`` (no SMPL fit), else an error."""
        node = tree
        for depth, k in enumerate(key):
            level = ("action", "subaction", "frame")[depth]
            if not isinstance(node, dict):
                at = "/".join(key[:depth]) or "the top level"
                raise DataError(f"{path}: expected a mapping of {level}s at {at}, got {type(node).__name__}")
            if k not in node:
                if missing_ok:
                    return None
                raise DataError(
                    f"{path}: no entry for {level} '{k}' at {'/'.join(key[:depth + 1])} (needed by {needed_by})"
                )
            node = node[k]
        return node

    def fit_is_valid(self, rec: PersonRecord, gt_cam_mm: np.ndarray | None, fit: FitTargets, aug: Augmentation) -> bool:
        """The reference's 25 mm rule on all 17 H36M joints."""
        return self.fit_error_check(gt_cam_mm, fit, H36M17)
