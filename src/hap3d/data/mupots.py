"""MuPoTS-3D test set (20 sequences TS1..TS20 of several people) as 3DCrowdNet reads it, with HigherHRNet or
OpenPose input poses. The reference's reader cannot run (docs/reference-differences.md R55).

Files under ``root`` (``MuPoTs/data``; declared in :data:`LAYOUT`)::

    MuPoTS-3D.json                        COCO-style: images (file_name 'TS1/img_000000.jpg', intrinsic
                                          [fx, fy, cx, cy]), annotations (keypoints_cam 17x3 mm, keypoints_img
                                          17x2, bbox, is_valid)
    MuPoTs_test_hhrnet_result.json        {aid: {coco_joints: 17x3}} (matched to the annotations offline)
    MuPoTs_test_openpose_result.json      {aid: {coco_joints: 18x3 in OpenPose order}}
    MultiPersonTestSet/<file_name>

Every valid annotation is a person of the "all people" measure; a person whose detector pose is missing (no
HigherHRNet entry, or an all-zero OpenPose pose) is not evaluated and counts as unmatched.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hap3d.body.joints import COCO17, get_joint_set
from hap3d.data.io import DataError, ImageIndex, as_array, load_json, require, require_int, require_list, require_str
from hap3d.data.layout import DataFile, DatasetLayout
from hap3d.data.pw3d import joint_cam_sample
from hap3d.data.transforms import add_midpoint

MUPOTS17 = (
    "Head_top", "Thorax", "R_Shoulder", "R_Elbow", "R_Wrist", "L_Shoulder", "L_Elbow", "L_Wrist", "R_Hip", "R_Knee",
    "R_Ankle", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "Spine", "Head",
)  # fmt: skip  # the annotations' joint order (MPI-INF-3DHP's first 17)
DETECTORS = {"hhrnet": ("hhrnet_poses", 0.1), "openpose": ("openpose_poses", 0.05)}  # pose file, confidence threshold

LAYOUT: DatasetLayout = DatasetLayout(
    folders=("MuPoTs/data", "MuPoTS/data"),
    files=(
        DataFile("annotations", "MuPoTS-3D.json", "MuPoTS-3D annotations"),
        DataFile("hhrnet_poses", "MuPoTs_test_hhrnet_result.json", "MuPoTS-3D HigherHRNet poses"),
        DataFile("openpose_poses", "MuPoTs_test_openpose_result.json", "MuPoTS-3D OpenPose poses"),
        DataFile("images", "MultiPersonTestSet", "MuPoTS-3D image sequences", is_dir=True),
    ),
    images="MultiPersonTestSet",
)


@dataclass
class MuPoTSRecord:
    aid: int
    img_path: Path
    img_size: tuple[int, int]  # (height, width)
    tight_bbox: np.ndarray
    joint_cam: np.ndarray  # (17, 3) mm, MUPOTS17 order
    sequence: str  # TS1 .. TS20
    input_joints: np.ndarray | None  # (19, 3) in ``input_set``; None: the detector missed this person


class MuPoTS(torch.utils.data.Dataset):
    """The matched people's samples ``{'inputs', 'targets': {joint_cam}, 'meta': {aid, index}}``; ``people``
    holds every valid person (matched or not) for the "all people" measure."""

    layout: ClassVar[DatasetLayout] = LAYOUT
    sample_shapes: ClassVar[dict[tuple[str, str], tuple[int, ...]]] = {  # what `hap3d data check` expects
        ("inputs", "img"): (3, 256, 256), ("inputs", "joints"): (30, 3), ("inputs", "joints_mask"): (30, 1),
        ("targets", "joint_cam"): (17, 3),
    }

    def __init__(self, root: str | Path, detector: str = "hhrnet") -> None:
        if detector not in DETECTORS:
            raise ValueError(f"MuPoTS-3D input {detector!r}: choose one of {', '.join(DETECTORS)}")
        self.root, self.detector = Path(root), detector
        key, self.conf_thr = DETECTORS[detector]
        self.input_set = "coco19" if detector == "hhrnet" else "openpose19"
        self.people = self._load(self.layout.find(self.root, key))
        self.records = [p for p in self.people if p.input_joints is not None]

    def _input(self, entry: object, path: Path, aid: int) -> np.ndarray | None:
        """The detector pose of one person, with Pelvis (and for COCO, Neck) added as the reference does."""
        if entry is None:
            return None
        n = 17 if self.detector == "hhrnet" else 18
        joints = as_array(require(entry, "coco_joints", path, f"entry {aid}"), (n, 3), path, f"entry {aid}")
        names = COCO17 if n == 17 else get_joint_set("openpose18").joints
        if not joints.any():  # OpenPose found no one here
            return None
        joints = add_midpoint(joints.astype(np.float32), names, "L_Hip", "R_Hip")
        return add_midpoint(joints, (*COCO17, "Pelvis"), "L_Shoulder", "R_Shoulder") if n == 17 else joints

    def _load(self, poses_path: Path) -> list[MuPoTSRecord]:
        path = self.layout.find(self.root, "annotations")
        db = load_json(path, "MuPoTS-3D annotation file")
        poses = load_json(poses_path, f"MuPoTS-3D {self.detector} result file")
        if not isinstance(poses, dict):
            raise DataError(f"{poses_path}: expected a mapping from annotation id to poses, got "
                            f"{type(poses).__name__}")
        images = ImageIndex(db, path)
        out = []
        for k, ann in enumerate(require_list(db, "annotations", path, "the file")):
            aid = require_int(ann, "id", path, f"annotations[{k}]")
            where = f"annotation {aid} (annotations[{k}])"
            if not ann.get("is_valid", 1):
                continue
            img, iwhere = images.find(require_int(ann, "image_id", path, where), where)
            file_name = require_str(img, "file_name", path, iwhere)
            out.append(MuPoTSRecord(
                aid=aid, img_path=self.root / self.layout.images / file_name,
                img_size=(require_int(img, "height", path, iwhere), require_int(img, "width", path, iwhere)),
                tight_bbox=as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'"),
                joint_cam=as_array(require(ann, "keypoints_cam", path, where), (17, 3), path,
                                   where + " 'keypoints_cam'").astype(np.float64),
                sequence=Path(file_name).parts[0], input_joints=self._input(poses.get(str(aid)), poses_path, aid),
            ))  # fmt: skip
        return out

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> dict:
        return joint_cam_sample(self.records[idx], self.input_set, self.conf_thr, idx)
