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

from pathlib import Path

from hap3d.data.coco_style import CocoStyleDataset

NEURALANNOT = "MPII_train_SMPL_NeuralAnnot.json"


class MPII(CocoStyleDataset):
    name = "MPII"
    joint_set = "mpii16"
    is_3d = False
    # PoseFix touches every joint COCO also has; Pelvis is listed as in the reference but PoseFix never moves it.
    posefix_joints = (
        "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "R_Wrist", "R_Elbow", "R_Shoulder",
        "L_Shoulder", "L_Elbow", "L_Wrist",
    )
    num_keypoints = 16
    image_folder = "data"
    rotate_fit = False  # reference quirk #18, only under reference_compat
    fit_root_relative = False  # reference quirk #18, only under reference_compat

    @property
    def annotation_file(self) -> Path:
        return self.root / "data" / "annotations" / "train.json"

    @property
    def neuralannot_file(self) -> Path:
        return self.root / "data" / "annotations" / NEURALANNOT
