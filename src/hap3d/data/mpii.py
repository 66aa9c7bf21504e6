"""MPII Human Pose (train split) with NeuralAnnot SMPL fits (2D training set).

Layout under ``root``, the folder holding ``annotations/`` (the reference's ``MPII/data``, the seed README's
``mpii/data``, or ``MPII`` / ``mpii`` themselves: :func:`hap3d.data.dataset_root` finds it)::

    annotations/train.json                          COCO-style; 16 keypoints in MPII order
    annotations/MPII_train_SMPL_NeuralAnnot.json    {ann_id: {smpl_param, cam_param}}
    <file_name>                                     images (file_name as written in train.json: images/...)

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
    image_folder = "."  # file_name already starts with images/
    rotate_fit = False  # reference quirk #18, only under reference_compat
    fit_root_relative = False  # reference quirk #18, only under reference_compat

    @property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / "train.json"

    @property
    def neuralannot_file(self) -> Path:
        return self.root / "annotations" / NEURALANNOT
