"""3DPW test set (OpenPose input) and 3DPW-Crowd (validation split, HigherHRNet input), as the reference reads them,
and the whole validation split with OpenPose input (``validation=True``, the model-selection set ``data.valset``).

Files under ``root`` (``PW3D/data``; declared in :data:`LAYOUT`)::

    3DPW_latest_test.json | 3DPW_latest_validation.json      COCO-style images + annotations with SMPL fits
    3DPW_validation_crowd_hhrnet_result.json                 crowd mode only: {aid: {coco_joints: 17x3, img_id}}
    imageFiles/<sequence>/<file_name>

Each sample's crop comes from its input 2D pose (valid joints x1.2, then square x1.25); the ground-truth box only
filters. The ground-truth mesh is the gendered SMPL fit, computed in batches by :class:`GroundTruthMeshes`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch

from hap3d.body.joints import convert_joints, get_joint_set
from hap3d.data.io import (
    DataError,
    ImageIndex,
    as_array,
    load_json,
    read_image_bgr,
    require,
    require_int,
    require_list,
    require_str,
)
from hap3d.data.layout import DataFile, DatasetLayout, Variant
from hap3d.data.transforms import (
    NO_AUGMENTATION,
    Crop,
    add_midpoint,
    apply_affine,
    crop_image,
    inside_mask,
    joints_bbox,
    process_bbox,
    to_heatmap_space,
)

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class PW3DSplit:
    """What a split reads."""

    annotations: str  # the LAYOUT key of its annotation file
    sequences: tuple[str, ...] | None  # the sequences kept (a name containing one of these); None = all
    input_poses: str | None  # the LAYOUT key of its input 2D poses; None = the annotations' OpenPose poses


SPLITS = {
    "test": PW3DSplit("test_annotations", sequences=None, input_poses=None),
    # 3DPW-Crowd: two crowded sequences of the validation split with HigherHRNet input poses
    "validation": PW3DSplit("validation_annotations", sequences=("courtyard_hug_00", "courtyard_dancing_00"),
                            input_poses="crowd_poses"),
    # the whole validation split with the annotations' OpenPose poses, read like the test split (data.valset)
    "val": PW3DSplit("validation_annotations", sequences=None, input_poses=None),
}
LAYOUT: DatasetLayout[PW3DSplit] = DatasetLayout(
    folders=("PW3D/data",),
    files=(
        DataFile("test_annotations", "3DPW_latest_test.json", "3DPW test annotations", splits=("test",)),
        DataFile("images", "imageFiles", "3DPW image sequences", is_dir=True),
        DataFile("validation_annotations", "3DPW_latest_validation.json",
                 "3DPW validation annotations (3DPW-Crowd, data.valset)", splits=("validation", "val")),
        DataFile("crowd_poses", "3DPW_validation_crowd_hhrnet_result.json", "3DPW-Crowd HigherHRNet poses",
                 splits=("validation",)),
    ),
    images="imageFiles",  # then <sequence>/<file_name>
    splits=SPLITS,
    default_split="test",
    variants=(Variant("PW3D-Crowd", "3DPW-Crowd", split="validation", option="crowd"),
              Variant("PW3D-val", "3DPW validation", split="val", option="validation", replaces_default=False)),
)
GENDER_IDS = {"neutral": 0, "male": 1, "female": 2}


@dataclass
class PW3DRecord:
    aid: int
    img_path: Path
    img_size: tuple[int, int]  # (height, width)
    bbox: np.ndarray  # processed GT box (fallback crop)
    tight_bbox: np.ndarray
    pose: np.ndarray  # (72,)
    shape: np.ndarray  # (10,)
    trans: np.ndarray  # (3,)
    gender: str
    sequence: str
    focal: np.ndarray
    princpt: np.ndarray
    input_joints: np.ndarray  # (J, 3) x, y, confidence in the input joint set
    input_set: str


def pose_input(img_path: Path, joints: np.ndarray, valid: np.ndarray, bbox: np.ndarray) -> tuple[dict, Crop]:
    """A test sample's network input: the image cropped at ``bbox`` (no augmentation) and the (30, 3) SMPL30 input
    joints in 64-space, masked by ``valid`` and the crop (the evaluation readers of 3DPW, Human3.6M, MuPoTS-3D)."""
    crop = crop_image(read_image_bgr(img_path), bbox, NO_AUGMENTATION, bgr=True)
    joints = joints.copy()
    joints[:, :2] = to_heatmap_space(apply_affine(joints[:, :2], crop.img2bb))
    mask = valid[:, None] * inside_mask(joints, use_depth=False)
    inputs = {
        "img": torch.from_numpy(np.ascontiguousarray(crop.img.transpose(2, 0, 1)) / 255.0).float(),
        "joints": torch.from_numpy(joints),
        "joints_mask": torch.from_numpy(mask.astype(np.float32)),
    }
    return inputs, crop


def joint_cam_sample(rec: Any, input_set: str, conf_thr: float, idx: int) -> dict:
    """A sample of the readers scored on camera-space joints (Human3.6M test, MuPoTS-3D): the crop around the input
    joints above ``conf_thr`` (the record's tight box when none are), and ``rec.joint_cam`` as the target."""
    joints = convert_joints(rec.input_joints, input_set, "smpl30").astype(np.float32)
    valid = (joints[:, 2] > conf_thr).astype(np.float32)
    h, w = rec.img_size
    box = joints_bbox(joints[:, :2], valid)
    bbox = process_bbox(rec.tight_bbox if box is None else box, w, h, keep_degenerate=True)
    inputs, _ = pose_input(rec.img_path, joints, valid, bbox)
    return {"inputs": inputs, "targets": {"joint_cam": torch.from_numpy(rec.joint_cam.astype(np.float32))},
            "meta": {"aid": rec.aid, "index": idx}}


class PW3D(torch.utils.data.Dataset):
    """3DPW evaluation samples: ``{'inputs': {img, joints, joints_mask}, 'targets': {...}, 'meta': {...}}``."""

    layout: ClassVar[DatasetLayout[PW3DSplit]] = LAYOUT

    def __init__(self, root: str | Path, crowd: bool = False, conf_thr: float = 0.05, validation: bool = False) -> None:
        if crowd and validation:
            raise ValueError("3DPW: crowd and validation select different splits; pass one of them")
        self.root = Path(root)
        self.crowd = crowd
        self.split = "validation" if crowd else "val" if validation else "test"
        self.conf_thr = conf_thr
        self.smpl30 = get_joint_set("smpl30")
        self.records = self._load()
        self.gt_box_crops = 0  # samples (in this process) cropped at the GT box for lack of a valid input joint

    @property
    def annotation_file(self) -> Path:
        return self.layout.path(self.root, self.layout.splits[self.split].annotations)

    @property
    def hhrnet_file(self) -> Path:
        """The split's HigherHRNet input poses (3DPW-Crowd)."""
        poses = self.layout.splits[self.split].input_poses
        if poses is None:
            raise ValueError(f"the 3DPW {self.split} split has no HigherHRNet poses")
        return self.layout.path(self.root, poses)

    def _load(self) -> list[PW3DRecord]:
        path = self.annotation_file
        split = self.layout.splits[self.split]
        sequences = split.sequences
        db = load_json(path, "3DPW annotation file")
        images = ImageIndex(db, path)
        hhrnet = None
        if split.input_poses is not None:
            hpath = self.hhrnet_file
            hhrnet = load_json(hpath, "3DPW-Crowd HigherHRNet result file")
            if not isinstance(hhrnet, dict):
                raise DataError(f"{hpath}: expected a mapping from annotation id to poses, got {type(hhrnet).__name__}")
        openpose19 = get_joint_set("openpose19").joints
        coco17 = get_joint_set("coco17").joints
        records = []
        for k, ann in enumerate(require_list(db, "annotations", path, "the file")):
            aid = require_int(ann, "id", path, f"annotations[{k}]")
            where = f"annotation {aid} (annotations[{k}])"
            img, iwhere = images.find(require_int(ann, "image_id", path, where), where)
            seq = require_str(img, "sequence", path, iwhere)
            if sequences is not None and not any(s in seq for s in sequences):
                continue
            width, height = require_int(img, "width", path, iwhere), require_int(img, "height", path, iwhere)
            tight = as_array(require(ann, "bbox", path, where), (4,), path, f"{where} 'bbox'")
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                continue
            cam = require(img, "cam_param", path, iwhere)
            smpl = require(ann, "smpl_param", path, where)
            gender = require_str(smpl, "gender", path, f"{where} smpl_param")
            if gender not in GENDER_IDS:
                raise DataError(f"{path}: {where} smpl_param.gender is {gender!r}, expected male/female/neutral")
            openpose = as_array(require(ann, "openpose_result", path, where), (18, 3), path,
                                f"{where} 'openpose_result'")
            openpose = add_midpoint(openpose, openpose19, "L_Hip", "R_Hip")
            joints, joint_set = openpose, "openpose19"
            if hhrnet is not None:
                entry = hhrnet.get(str(aid))
                if entry is not None:
                    hwhere = f"entry {aid}"
                    coco = as_array(require(entry, "coco_joints", hpath, hwhere), (17, 3), hpath,
                                    f"{hwhere} 'coco_joints'")
                    coco = add_midpoint(coco, coco17, "L_Hip", "R_Hip")
                    joints = add_midpoint(coco, coco17 + ("Pelvis",), "L_Shoulder", "R_Shoulder")
                else:  # reference fallback: the OpenPose joints, renamed to the COCO19 set
                    joints = convert_joints(openpose, "openpose19", "coco19")
                joint_set = "coco19"
            swhere = f"{where} smpl_param"
            records.append(
                PW3DRecord(
                    aid=aid,
                    img_path=self.root / self.layout.images / seq / require_str(img, "file_name", path, iwhere),
                    img_size=(height, width),
                    bbox=bbox,
                    tight_bbox=tight,
                    pose=as_array(require(smpl, "pose", path, swhere), (72,), path, f"{swhere}.pose"),
                    shape=as_array(require(smpl, "shape", path, swhere), (10,), path, f"{swhere}.shape"),
                    trans=as_array(require(smpl, "trans", path, swhere), (3,), path, f"{swhere}.trans"),
                    gender=gender,
                    sequence=seq,
                    focal=as_array(require(cam, "focal", path, f"{iwhere} cam_param"), (2,), path,
                                   f"{iwhere} cam_param.focal"),
                    princpt=as_array(require(cam, "princpt", path, f"{iwhere} cam_param"), (2,), path,
                                     f"{iwhere} cam_param.princpt"),
                    input_joints=joints.astype(np.float32),
                    input_set=joint_set,
                )
            )
        return records

    def __len__(self) -> int:
        return len(self.records)

    def crop_box(self, rec: PW3DRecord, joints: np.ndarray, valid: np.ndarray) -> np.ndarray:
        """The crop: valid input joints' extent x1.2, made square and x1.25. With no valid joint the reference
        crashes (min of an empty list); here the sample is cropped at its processed GT box and counted."""
        box = joints_bbox(joints[:, :2], valid)
        if box is None:
            self.gt_box_crops += 1
            log.warning("3DPW annotation %d: no input joint above %.2f confidence; cropping at the GT box",
                        rec.aid, self.conf_thr)
            return rec.bbox
        h, w = rec.img_size
        return process_bbox(box, w, h, keep_degenerate=True)

    def __getitem__(self, idx: int) -> dict:
        rec = self.records[idx]
        joints = convert_joints(rec.input_joints, rec.input_set, "smpl30").astype(np.float32)
        valid = (joints[:, 2] > self.conf_thr).astype(np.float32)
        box_raw = joints_bbox(joints[:, :2], valid)
        bbox = self.crop_box(rec, joints, valid)
        inputs, crop = pose_input(rec.img_path, joints, valid, bbox)
        return {
            "inputs": inputs,
            "targets": {
                "smpl_pose": torch.from_numpy(rec.pose),
                "smpl_shape": torch.from_numpy(rec.shape),
                "smpl_trans": torch.from_numpy(rec.trans),
                "gender": GENDER_IDS[rec.gender],
            },
            "meta": {
                "bb2img_trans": torch.from_numpy(crop.bb2img),
                "img2bb_trans": torch.from_numpy(crop.img2bb),
                "bbox": torch.from_numpy(bbox),
                "joints_bbox_raw": torch.from_numpy(box_raw if box_raw is not None else np.full(4, np.nan, np.float32)),
                "tight_bbox": torch.from_numpy(rec.tight_bbox),
                "aid": rec.aid,
                "index": idx,
            },
        }
