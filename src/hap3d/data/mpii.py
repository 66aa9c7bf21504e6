"""MPII Human Pose (train split) with NeuralAnnot SMPL fits (2D training set).

Files under ``root``, the folder holding ``annotations/`` (the reference's ``MPII/data``, the lowercase tree's
``mpii/data``, or ``MPII`` / ``mpii`` themselves: :func:`hap3d.data.dataset_root` finds it; declared in
:data:`LAYOUT`)::

    annotations/train.json                          COCO-style; 16 keypoints in MPII order
    annotations/MPII_train_SMPL_NeuralAnnot.json    {ann_id: {smpl_param, cam_param}}
    <file_name>                                     images (file_name as written in train.json: images/...)

Reference difference (docs/reference-differences.md R23): under ``reference_compat`` the
fit targets of MPII skip the rotation augmentation (root pose and fit joints) and ``fit_joint_cam`` holds
*absolute* camera-frame joints in metres, while the loss compares it with root-relative predictions. Every other
training set rotates and centres its fit, so with ``reference_compat: false`` MPII does too
(:class:`TrainDataset` switches both on).
"""

from __future__ import annotations

from hap3d.data.coco_style import CocoStyleDataset
from hap3d.data.layout import DataFile, DatasetLayout

NEURALANNOT = "MPII_train_SMPL_NeuralAnnot.json"
LAYOUT: DatasetLayout[None] = DatasetLayout(
    # the reference's MPII/data; the lowercase tree's mpii/data; its symlink steps link mpii/{images,annotations}
    folders=("MPII/data", "MPII", "mpii/data", "mpii"),
    files=(
        DataFile("annotations", "annotations/train.json", "MPII keypoint annotations"),
        DataFile("fits", f"annotations/{NEURALANNOT}", "MPII NeuralAnnot SMPL fits"),
        DataFile("images", "images", "MPII images", is_dir=True),
    ),
    images=".",  # file names already start with images/
    written="mpii/data",
)


class MPII(CocoStyleDataset):
    name = "MPII"
    layout = LAYOUT
    joint_set = "mpii16"
    is_3d = False
    # PoseFix touches every joint COCO also has; Pelvis is listed as in the reference but PoseFix never moves it.
    posefix_joints = (
        "R_Ankle", "R_Knee", "R_Hip", "L_Hip", "L_Knee", "L_Ankle", "Pelvis", "R_Wrist", "R_Elbow", "R_Shoulder",
        "L_Shoulder", "L_Elbow", "L_Wrist",
    )
    num_keypoints = 16
    rotate_fit = False  # the reference's MPII fit targets, only under reference_compat (see above)
    fit_root_relative = False  # the reference's MPII fit targets, only under reference_compat (see above)
