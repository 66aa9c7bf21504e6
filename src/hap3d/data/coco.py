"""MSCOCO 2017 keypoints with NeuralAnnot SMPL fits (2D training set).

Files under ``root`` (the reference's ``MSCOCO`` folder or the lowercase tree's ``coco``; declared in
:data:`LAYOUT`)::

    annotations/person_keypoints_train2017.json
    annotations/MSCOCO_train_SMPL_NeuralAnnot.json     (also accepted directly under root/, where HAP's own
                                                        README tells users to put it)
    images/train2017/<file_name>

Crowd annotations and people without a labelled keypoint are not training samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data.coco_style import CocoStyleDataset, find_first
from hap3d.data.layout import DataFile, DatasetLayout

NEURALANNOT = "MSCOCO_train_SMPL_NeuralAnnot.json"
LAYOUT: DatasetLayout[None] = DatasetLayout(
    folders=("MSCOCO", "coco"),  # the reference's data/ tree (symlinks), the lowercase tree
    files=(
        DataFile("annotations", "annotations/person_keypoints_train2017.json", "COCO keypoint annotations"),
        DataFile("fits", f"annotations/{NEURALANNOT}", "COCO NeuralAnnot SMPL fits", alternatives=(NEURALANNOT,)),
        DataFile("images", "images/train2017", "COCO train2017 images", is_dir=True),
    ),
    images="images/train2017",
    written="coco",
)


class MSCOCO(CocoStyleDataset):
    name = "MSCOCO"
    layout = LAYOUT
    joint_set = "coco18"  # 17 keypoints + Pelvis (mid-hip)
    is_3d = False
    posefix_joints = (
        "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
        "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
    )
    pelvis_from_hips = "coco17"
    extra_counts = ("crowd", "no_keypoints")

    @property
    def neuralannot_file(self) -> Path:
        """The first of the fits' accepted places that exists; else an error naming them all."""
        return find_first(self.layout.file("fits").candidates(self.root), "COCO NeuralAnnot fits")

    def drop_reason(self, ann: dict, keypoints: np.ndarray) -> str | None:
        if ann.get("iscrowd", 0):
            return "crowd"
        return "no_keypoints" if ann.get("num_keypoints", 1) == 0 else None
