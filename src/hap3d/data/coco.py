"""MSCOCO 2017 keypoints with NeuralAnnot SMPL fits (2D training set).

Layout under ``root`` (the reference's ``MSCOCO`` folder or the seed README's ``coco``)::

    annotations/person_keypoints_train2017.json
    annotations/MSCOCO_train_SMPL_NeuralAnnot.json     (also accepted directly under root/, where the HAP
                                                        README tells users to put it; spec §10 #52)
    images/train2017/<file_name>

Crowd annotations and people without a labelled keypoint are not training samples.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data.coco_style import CocoStyleDataset, find_first

NEURALANNOT = "MSCOCO_train_SMPL_NeuralAnnot.json"


class MSCOCO(CocoStyleDataset):
    name = "MSCOCO"
    joint_set = "coco18"  # 17 keypoints + Pelvis (mid-hip)
    is_3d = False
    posefix_joints = (
        "Nose", "L_Eye", "R_Eye", "L_Ear", "R_Ear", "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist",
        "R_Wrist", "L_Hip", "R_Hip", "L_Knee", "R_Knee", "L_Ankle", "R_Ankle",
    )
    image_folder = "images/train2017"
    pelvis_from_hips = "coco17"
    extra_counts = ("crowd", "no_keypoints")

    @property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / "person_keypoints_train2017.json"

    @property
    def neuralannot_file(self) -> Path:
        return find_first([self.root / "annotations" / NEURALANNOT, self.root / NEURALANNOT], "COCO NeuralAnnot fits")

    def drop_reason(self, ann: dict, keypoints: np.ndarray) -> str | None:
        if ann.get("iscrowd", 0):
            return "crowd"
        return "no_keypoints" if ann.get("num_keypoints", 1) == 0 else None
