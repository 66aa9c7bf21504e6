"""CrowdPose (train split) with NeuralAnnot SMPL fits (2D training set; in the reference, unused by HAP).

Files under ``root`` (``CrowdPose``; declared in :data:`LAYOUT`)::

    annotations/crowdpose_train.json                     COCO-style; 14 keypoints (CrowdPose order)
    annotations/CrowdPose_train_SMPL_NeuralAnnot.json    {ann_id: {smpl_param, cam_param, fit_err}}
    images/<file_name>

Reference differences (docs/reference-differences.md R24-R26), reproduced only under ``reference_compat``:

* the annotated image width and height are swapped. That undid the reversed sizes of the
  ``crowdpose_train.json`` release it was built on; upstream corrected the file in 2021
  (jeffffffli/CrowdPose#12), and with that file the swap clips boxes and mirrors joints with the wrong width.
  Fixed mode reads each image's real size from its file header, which is right for either file version.
* the flip pairs are wrong (:data:`CROWDPOSE_REFERENCE_FLIP_PAIRS`: a shoulder ends up in the elbow row, ...).
* a fit is kept only when ``fit_err >= 5.0``, which keeps the *bad* fits; fixed mode keeps ``fit_err < 5.0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from hap3d.body.joints import CROWDPOSE_REFERENCE_FLIP_PAIRS
from hap3d.data.coco_style import CocoStyleDataset
from hap3d.data.io import require_str
from hap3d.data.layout import DataFile, DatasetLayout

NEURALANNOT = "CrowdPose_train_SMPL_NeuralAnnot.json"
LAYOUT: DatasetLayout[None] = DatasetLayout(
    folders=("CrowdPose",),
    files=(
        DataFile("annotations", "annotations/crowdpose_train.json", "CrowdPose keypoint annotations"),
        DataFile("fits", f"annotations/{NEURALANNOT}", "CrowdPose NeuralAnnot SMPL fits"),
        DataFile("images", "images", "CrowdPose images", is_dir=True),
    ),
    images="images",
)
FIT_ERR_THRESHOLD = 5.0  # on NeuralAnnot's fit_err (the reference calls it pixels in 64-space)


def image_file_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image file's header (no decoding), or None when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.size
    except OSError:
        return None


class CrowdPose(CocoStyleDataset):
    name = "CrowdPose"
    layout = LAYOUT
    joint_set = "crowdpose15"  # 14 keypoints + Pelvis (mid-hip)
    is_3d = False
    posefix_joints = (
        "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee",
        "R_Knee", "L_Ankle", "R_Ankle", "Pelvis",
    )
    num_keypoints = 14
    pelvis_from_hips = "crowdpose14"
    neuralannot_extra = ("fit_err",)
    # fit_rejected: fits dropped by the fit_err rule; images_size_*: fixed mode's real-size lookups
    extra_counts = ("no_keypoints", "fit_rejected", "images_size_corrected", "images_size_unchecked")

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        return CROWDPOSE_REFERENCE_FLIP_PAIRS if self.reference_compat else super().flip_pairs

    def drop_reason(self, ann: dict, keypoints: np.ndarray) -> str | None:
        return "no_keypoints" if keypoints.sum() == 0 else None

    def keep_fit(self, fit: dict) -> bool:
        """The reference keeps fits with a *large* error (inverted test); fixed mode keeps the accurate ones."""
        err = fit["fit_err"]
        return err >= FIT_ERR_THRESHOLD if self.reference_compat else err < FIT_ERR_THRESHOLD

    def image_size(self, img: dict, path: Path, where: str) -> tuple[int, int]:
        """The swapped annotated size (reference) or the real one, read from the image file's header."""
        width, height = super().image_size(img, path, where)
        if self.reference_compat:
            return height, width
        real = image_file_size(self.root / self.layout.images / require_str(img, "file_name", path, where))
        if real is None:
            self.filter_counts["images_size_unchecked"] += 1
            return width, height
        self.filter_counts["images_size_corrected"] += real != (width, height)
        return real
