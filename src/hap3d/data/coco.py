"""MSCOCO 2017 keypoints with NeuralAnnot SMPL fits (2D training set).

Layout under ``root`` (the seed README's ``coco`` folder)::

    annotations/person_keypoints_train2017.json
    annotations/MSCOCO_train_SMPL_NeuralAnnot.json     (also accepted directly under root/, where the HAP
                                                        README tells users to put it)
    images/train2017/<file_name>
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.body.joints import COCO17
from hap3d.data.base import PersonRecord, TrainDataset, overlapping_people
from hap3d.data.io import DataError, as_array, load_json, require
from hap3d.data.transforms import add_midpoint, process_bbox

NEURALANNOT = "MSCOCO_train_SMPL_NeuralAnnot.json"


def find_first(candidates: list[Path], what: str) -> Path:
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{what} not found; looked for " + ", ".join(str(c) for c in candidates))


def read_neuralannot(path: Path) -> dict[int, dict[str, np.ndarray]]:
    """{ann_id: {pose, shape, trans, focal, princpt}} from a NeuralAnnot file."""
    raw = load_json(path, "NeuralAnnot SMPL file")
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping from annotation id to fits, got {type(raw).__name__}")
    out = {}
    for aid, entry in raw.items():
        where = f"entry {aid}"
        smpl = require(entry, "smpl_param", path, where)
        cam = require(entry, "cam_param", path, where)
        out[int(aid)] = {
            "pose": as_array(require(smpl, "pose", path, where + ".smpl_param"), (72,), path, where + ".smpl_param.pose"),
            "shape": as_array(require(smpl, "shape", path, where + ".smpl_param"), (10,), path, where + ".smpl_param.shape"),
            "trans": as_array(require(smpl, "trans", path, where + ".smpl_param"), (3,), path, where + ".smpl_param.trans"),
            "focal": as_array(require(cam, "focal", path, where + ".cam_param"), (2,), path, where + ".cam_param.focal"),
            "princpt": as_array(require(cam, "princpt", path, where + ".cam_param"), (2,), path, where + ".cam_param.princpt"),
        }
    return out


class MSCOCO(TrainDataset):
    name = "MSCOCO"
    joint_set = "coco18"
    is_3d = False
    posefix_joints = (
        "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
        "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
    )

    @property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / "person_keypoints_train2017.json"

    def neuralannot_file(self) -> Path:
        return find_first([self.root / "annotations" / NEURALANNOT, self.root / NEURALANNOT], "COCO NeuralAnnot fits")

    def load(self) -> list[PersonRecord]:
        path = self.annotation_file
        db = load_json(path, "COCO keypoint annotation file")
        fits = read_neuralannot(self.neuralannot_file())
        images = {int(require(im, "id", path, "an image record")): im for im in require(db, "images", path, "the file")}
        by_image: dict[int, list[PersonRecord]] = {}
        for ann in require(db, "annotations", path, "the file"):
            aid = int(require(ann, "id", path, "an annotation"))
            where = f"annotation {aid}"
            if ann.get("iscrowd", 0) or ann.get("num_keypoints", 1) == 0:
                continue
            image_id = int(require(ann, "image_id", path, where))
            img = images.get(image_id)
            if img is None:
                raise DataError(f"{path}: {where} refers to image_id {image_id}, which is not in 'images'")
            width, height = int(require(img, "width", path, f"image {image_id}")), int(require(img, "height", path, f"image {image_id}"))
            tight = as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'")
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                continue
            kps = as_array(require(ann, "keypoints", path, where), (17, 3), path, where + " 'keypoints'")
            kps = add_midpoint(kps, COCO17, "L_Hip", "R_Hip")  # pelvis; validity = product of the flags
            valid = (kps[:, 2:3] > 0).astype(np.float32)
            kps[:, 2] = valid[:, 0]
            fit = fits.get(aid)
            by_image.setdefault(image_id, []).append(
                PersonRecord(
                    img_path=self.root / "images" / "train2017" / str(require(img, "file_name", path, f"image {image_id}")),
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
                person.near_joints = [people[k].joints for k in near]
            records.extend(people)
        return records
