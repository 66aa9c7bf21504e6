"""MPII Human Pose (train split) with NeuralAnnot SMPL fits (2D training set).

Layout under ``root`` (the seed README's ``mpii`` folder)::

    data/annotations/train.json                          COCO-style; 16 keypoints in MPII order
    data/annotations/MPII_train_SMPL_NeuralAnnot.json    {ann_id: {smpl_param, cam_param}}
    data/<file_name>                                     images (file_name as written in train.json)

Reference difference (spec §10 #18): under ``reference_compat`` the fit targets of MPII skip the rotation
augmentation (root pose and fit joints) and ``fit_joint_cam`` holds *absolute* camera-frame joints in metres,
while the loss compares it with root-relative predictions. Every other training set rotates and centres its
fit, so with ``reference_compat: false`` MPII does too (:class:`TrainDataset` switches both on).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hap3d.body.joints import convert_joints
from hap3d.data.base import PersonRecord, TrainDataset, overlapping_people
from hap3d.data.coco import read_neuralannot
from hap3d.data.io import DataError, as_array, load_json, require
from hap3d.data.transforms import process_bbox

log = logging.getLogger(__name__)

NEURALANNOT = "MPII_train_SMPL_NeuralAnnot.json"
NUM_KEYPOINTS = 16


class MPII(TrainDataset):
    name = "MPII"
    joint_set = "mpii16"
    is_3d = False
    # PoseFix touches every joint COCO also has; Pelvis is listed as in the reference but PoseFix never moves it.
    posefix_joints = (
        "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "R_Wrist", "R_Elbow", "R_Shoulder",
        "L_Shoulder", "L_Elbow", "L_Wrist",
    )
    rotate_fit = False  # reference quirk #18, only under reference_compat
    fit_root_relative = False  # reference quirk #18, only under reference_compat

    @property
    def annotation_file(self) -> Path:
        return self.root / "data" / "annotations" / "train.json"

    @property
    def neuralannot_file(self) -> Path:
        return self.root / "data" / "annotations" / NEURALANNOT

    def load(self) -> list[PersonRecord]:
        path = self.annotation_file
        db = load_json(path, "MPII annotation file")
        fits = read_neuralannot(self.neuralannot_file)
        images = {int(require(im, "id", path, "an image record")): im for im in require(db, "images", path, "the file")}
        counts = self.filter_counts = dict.fromkeys(("annotations", "degenerate_bbox", "kept", "kept_without_fit"), 0)
        by_image: dict[int, list[PersonRecord]] = {}
        for ann in require(db, "annotations", path, "the file"):
            aid = int(require(ann, "id", path, "an annotation"))
            where = f"annotation {aid}"
            counts["annotations"] += 1
            image_id = int(require(ann, "image_id", path, where))
            img = images.get(image_id)
            if img is None:
                raise DataError(f"{path}: {where} refers to image_id {image_id}, which is not in 'images'")
            width, height = int(require(img, "width", path, f"image {image_id}")), int(require(img, "height", path, f"image {image_id}"))
            tight = as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'")
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                counts["degenerate_bbox"] += 1
                continue
            kps = as_array(require(ann, "keypoints", path, where), (NUM_KEYPOINTS, 3), path, where + " 'keypoints'")
            valid = (kps[:, 2:3] > 0).astype(np.float32)
            kps[:, 2] = valid[:, 0]
            fit = fits.get(aid)
            counts["kept"] += 1
            counts["kept_without_fit"] += fit is None
            by_image.setdefault(image_id, []).append(
                PersonRecord(
                    img_path=self.root / "data" / str(require(img, "file_name", path, f"image {image_id}")),
                    img_size=(height, width),
                    bbox=bbox,
                    tight_bbox=tight,
                    joints=kps,
                    valid=valid,
                    fit=None if fit is None else {k: fit[k] for k in ("pose", "shape", "trans")},
                    focal=None if fit is None else fit["focal"],
                    princpt=None if fit is None else fit["princpt"],
                )
            )
        records = []
        for people in by_image.values():
            for person, near in zip(people, overlapping_people(np.stack([p.tight_bbox for p in people]))):
                person.near_joints = [convert_joints(people[k].joints, self.joint_set, "coco17") for k in near]
            records.extend(people)
        log.info(
            "MPII: %d of %d annotations kept (%d without SMPL fit); dropped: %d degenerate boxes",
            counts["kept"], counts["annotations"], counts["kept_without_fit"], counts["degenerate_bbox"],
        )
        return records
