"""MuCo-3DHP with SMPL fits (3D training set, train only).

Files under ``root`` (the ``MuCo`` folder; declared in :data:`LAYOUT`)::

    data/MuCo-3DHP.json     COCO-like: images (file_name relative to data/, width, height, f, c) and
                            annotations (keypoints_cam 21x3 mm, keypoints_img 21x2 px, bbox)
    data/smpl_param.json    {ann_id: {pose, shape, trans (m)}}, camera frame; a missing id means no fit
    data/augmented_set/, data/unaugmented_set/   images

Only the person closest to the camera (smallest pelvis depth) of each composite image is a sample, as in the
reference (docs/reference-differences.md R36); the others whose tight boxes overlap it (IoU >= 0.1) are its PoseFix
near people.

``reference_compat`` changes nothing here: the reference reader has no quirk with a numerical effect beyond
those :class:`~hap3d.data.base.TrainDataset` handles for every set. Keeping only the closest person is the
training recipe, not a bug, so both modes keep it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hap3d.body.joints import convert_joints
from hap3d.data.base import PackedRecords, PersonRecord, TrainDataset, overlapping_people, read_fit
from hap3d.data.fit import FitTargets
from hap3d.data.io import DataError, ImageIndex, as_array, load_json, require, require_int, require_list, require_str
from hap3d.data.layout import DataFile, DatasetLayout
from hap3d.data.transforms import Augmentation, process_bbox

log = logging.getLogger(__name__)

NUM_JOINTS = 21
ROOT = 14  # Pelvis in MuCo order
# The H36M joints MuCo also has: the fit-validity test compares only these.
SHARED_WITH_H36M = (
    "Pelvis", "R_Hip", "R_Knee", "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Head_top", "L_Shoulder", "L_Elbow",
    "L_Wrist", "R_Shoulder", "R_Elbow", "R_Wrist",
)
LAYOUT: DatasetLayout[None] = DatasetLayout(
    folders=("MuCo",),
    files=(
        DataFile("annotations", "data/MuCo-3DHP.json", "MuCo-3DHP annotations"),
        DataFile("fits", "data/smpl_param.json", "MuCo SMPL fits"),
        DataFile("augmented_images", "data/augmented_set", "MuCo augmented composites", is_dir=True),
        DataFile("unaugmented_images", "data/unaugmented_set", "MuCo unaugmented composites", is_dir=True),
    ),
    images="data",  # file names start with augmented_set/ or unaugmented_set/
)


class MuCo(TrainDataset):
    name = "MuCo"
    layout = LAYOUT
    joint_set = "muco21"
    is_3d = True
    posefix_joints = (
        "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee", "R_Ankle", "L_Hip",
        "L_Knee", "L_Ankle",
    )

    @property
    def annotation_file(self) -> Path:
        return self.layout.path(self.root, "annotations")

    @property
    def smpl_file(self) -> Path:
        return self.layout.path(self.root, "fits")

    def load(self) -> PackedRecords:
        path, fit_path = self.annotation_file, self.smpl_file
        db = load_json(path, "MuCo-3DHP annotation file")
        fits_raw = load_json(fit_path, "MuCo SMPL fits")
        if not isinstance(fits_raw, dict):
            raise DataError(f"{fit_path}: expected a mapping from annotation id to fits, got {type(fits_raw).__name__}")
        by_image: dict[int, list[tuple[int, dict]]] = {}  # image id -> [(list index, annotation)]
        for k, ann in enumerate(require_list(db, "annotations", path, "the file")):
            aid = require_int(ann, "id", path, f"annotations[{k}]")
            image_id = require_int(ann, "image_id", path, f"annotation {aid} (annotations[{k}])")
            by_image.setdefault(image_id, []).append((k, ann))

        counts = self.filter_counts = dict.fromkeys(
            ("images", "images_without_people", "annotations", "not_closest", "degenerate_bbox", "kept",
             "kept_without_fit", "fit_non_finite"), 0
        )
        records = []
        for image_id, (img, iwhere) in ImageIndex(db, path).items():
            counts["images"] += 1
            anns = by_image.pop(image_id, [])
            counts["annotations"] += len(anns)
            if not anns:
                counts["images_without_people"] += 1
                continue
            people = [self._person(ann, path, index) for index, ann in anns]
            closest = int(np.argmin([cam[ROOT, 2] for _, cam, _, _ in people]))  # first of equal depths
            counts["not_closest"] += len(people) - 1
            aid, cam, kp_img, tight = people[closest]

            width, height = require_int(img, "width", path, iwhere), require_int(img, "height", path, iwhere)
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                counts["degenerate_bbox"] += 1
                continue
            near = overlapping_people(np.stack([p[3] for p in people]))[closest]
            entry = fits_raw.get(str(aid))
            fit = None if entry is None else read_fit(entry, fit_path, f"entry {aid}")
            counts["fit_non_finite"] += entry is not None and fit is None
            counts["kept"] += 1
            counts["kept_without_fit"] += fit is None
            records.append(
                PersonRecord(
                    img_path=self.root / self.layout.images / require_str(img, "file_name", path, iwhere),
                    img_size=(height, width),
                    bbox=bbox,
                    tight_bbox=tight,
                    joints=np.concatenate([kp_img, cam[:, 2:]], 1),
                    valid=np.ones((NUM_JOINTS, 1), np.float32),
                    joint_cam=cam,
                    fit=fit,
                    focal=as_array(require(img, "f", path, iwhere), (2,), path, iwhere + " 'f'"),
                    princpt=as_array(require(img, "c", path, iwhere), (2,), path, iwhere + " 'c'"),
                    near_joints=[self._near_coco(people[k][2]) for k in near],
                )
            )
        if by_image:
            image_id, [(k, ann), *_] = next(iter(by_image.items()))
            raise DataError(f"{path}: annotation {ann['id']} (annotations[{k}]) refers to image_id {image_id}, "
                            f"which is not in 'images' ({len(by_image)} such image ids)")
        log.info(
            "MuCo: %d samples from %d images (%d without SMPL fit, %d of them for a non-finite fit); %d other people "
            "not used as samples, %d degenerate boxes, %d images without people", counts["kept"], counts["images"],
            counts["kept_without_fit"], counts["fit_non_finite"], counts["not_closest"], counts["degenerate_bbox"],
            counts["images_without_people"],
        )
        return PackedRecords(records)

    @staticmethod
    def _person(ann: dict, path: Path, index: int) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """(annotation id, keypoints_cam (21,3) mm, keypoints_img (21,2) px, tight bbox) of annotations[index]."""
        aid = require_int(ann, "id", path, f"annotations[{index}]")
        where = f"annotation {aid} (annotations[{index}])"
        return (
            aid,
            as_array(require(ann, "keypoints_cam", path, where), (NUM_JOINTS, 3), path, where + " 'keypoints_cam'"),
            as_array(require(ann, "keypoints_img", path, where), (NUM_JOINTS, 2), path, where + " 'keypoints_img'"),
            as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'"),
        )

    @staticmethod
    def _near_coco(kp_img: np.ndarray) -> np.ndarray:
        """A near person's image joints renamed to COCO17 (face joints, absent in MuCo, stay zero)."""
        return convert_joints(np.concatenate([kp_img, np.ones((NUM_JOINTS, 1), np.float32)], 1), "muco21", "coco17")

    def fit_is_valid(self, rec: PersonRecord, gt_cam_mm: np.ndarray | None, fit: FitTargets, aug: Augmentation) -> bool:
        """The reference's 25 mm rule on the 14 joints MuCo and H36M share."""
        return self.fit_error_check(gt_cam_mm, fit, SHARED_WITH_H36M)
