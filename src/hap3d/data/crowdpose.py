"""CrowdPose (train split) with NeuralAnnot SMPL fits (2D training set; in the reference, unused by HAP).

Layout under ``root`` (``CrowdPose``)::

    annotations/crowdpose_train.json                     COCO-style; 14 keypoints (CrowdPose order)
    annotations/CrowdPose_train_SMPL_NeuralAnnot.json    {ann_id: {smpl_param, cam_param, fit_err}}
    images/<file_name>

Reference differences (spec §10 #19), reproduced only under ``reference_compat``:

* the annotated image width and height are swapped. That undid the reversed sizes of the
  ``crowdpose_train.json`` release it was built on; upstream corrected the file in 2021
  (jeffffffli/CrowdPose#12), and with that file the swap clips boxes and mirrors joints with the wrong width.
  Fixed mode reads each image's real size from its file header, which is right for either file version.
* the flip pairs are wrong (:data:`CROWDPOSE_REFERENCE_FLIP_PAIRS`: a shoulder ends up in the elbow row, ...).
* a fit is kept only when ``fit_err >= 5.0``, which keeps the *bad* fits; fixed mode keeps ``fit_err < 5.0``.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from hap3d.body.joints import CROWDPOSE14, CROWDPOSE_REFERENCE_FLIP_PAIRS, convert_joints
from hap3d.data.base import PersonRecord, TrainDataset, overlapping_people
from hap3d.data.coco import read_neuralannot
from hap3d.data.io import DataError, as_array, load_json, require
from hap3d.data.transforms import add_midpoint, process_bbox

log = logging.getLogger(__name__)

NEURALANNOT = "CrowdPose_train_SMPL_NeuralAnnot.json"
NUM_KEYPOINTS = 14
FIT_ERR_THRESHOLD = 5.0  # on NeuralAnnot's fit_err (the reference calls it pixels in 64-space)


def read_fit_errors(path: Path) -> dict[int, float]:
    """{ann_id: fit_err} from a CrowdPose NeuralAnnot file (the field the COCO/MPII files do not have)."""
    raw = load_json(path, "NeuralAnnot SMPL file")
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping from annotation id to fits, got {type(raw).__name__}")
    out = {}
    for aid, entry in raw.items():
        value = require(entry, "fit_err", path, f"entry {aid}")
        if not isinstance(value, (int, float)):
            raise DataError(f"{path}: entry {aid} field 'fit_err' is not a number ({value!r})")
        out[int(aid)] = float(value)
    return out


def image_size(path: Path) -> tuple[int, int] | None:
    """(width, height) from the image file's header (no decoding), or None when it cannot be read."""
    try:
        with Image.open(path) as img:
            return img.size
    except OSError:
        return None


class CrowdPose(TrainDataset):
    name = "CrowdPose"
    joint_set = "crowdpose15"  # 14 keypoints + Pelvis (mid-hip)
    is_3d = False
    posefix_joints = (
        "L_Shoulder", "R_Shoulder", "L_Elbow", "R_Elbow", "L_Wrist", "R_Wrist", "L_Hip", "R_Hip", "L_Knee",
        "R_Knee", "L_Ankle", "R_Ankle", "Pelvis",
    )

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        return CROWDPOSE_REFERENCE_FLIP_PAIRS if self.reference_compat else super().flip_pairs

    @property
    def annotation_file(self) -> Path:
        return self.root / "annotations" / "crowdpose_train.json"

    @property
    def neuralannot_file(self) -> Path:
        return self.root / "annotations" / NEURALANNOT

    def keep_fit(self, fit_err: float) -> bool:
        """The reference keeps fits with a *large* error (inverted test); fixed mode keeps the accurate ones."""
        return fit_err >= FIT_ERR_THRESHOLD if self.reference_compat else fit_err < FIT_ERR_THRESHOLD

    def _image_size(self, img: dict, image_id: int, path: Path) -> tuple[int, int]:
        """(width, height) used for box clipping and flips: swapped annotation (reference) or the real one."""
        width, height = int(require(img, "width", path, f"image {image_id}")), int(require(img, "height", path, f"image {image_id}"))
        if self.reference_compat:
            return height, width
        real = image_size(self.root / "images" / str(require(img, "file_name", path, f"image {image_id}")))
        if real is None:
            self.filter_counts["images_size_unchecked"] += 1
            return width, height
        self.filter_counts["images_size_corrected"] += real != (width, height)
        return real

    def load(self) -> list[PersonRecord]:
        path = self.annotation_file
        db = load_json(path, "CrowdPose annotation file")
        fits = read_neuralannot(self.neuralannot_file)
        fit_errors = read_fit_errors(self.neuralannot_file)
        images = {int(require(im, "id", path, "an image record")): im for im in require(db, "images", path, "the file")}
        counts = self.filter_counts = dict.fromkeys(
            ("annotations", "no_keypoints", "degenerate_bbox", "kept", "kept_without_fit", "fit_rejected",
             "images_size_corrected", "images_size_unchecked"), 0
        )
        sizes: dict[int, tuple[int, int]] = {}
        by_image: dict[int, list[PersonRecord]] = {}
        for ann in require(db, "annotations", path, "the file"):
            aid = int(require(ann, "id", path, "an annotation"))
            where = f"annotation {aid}"
            counts["annotations"] += 1
            image_id = int(require(ann, "image_id", path, where))
            img = images.get(image_id)
            if img is None:
                raise DataError(f"{path}: {where} refers to image_id {image_id}, which is not in 'images'")
            if image_id not in sizes:
                sizes[image_id] = self._image_size(img, image_id, path)
            width, height = sizes[image_id]
            kps = as_array(require(ann, "keypoints", path, where), (NUM_KEYPOINTS, 3), path, where + " 'keypoints'")
            if kps.sum() == 0:
                counts["no_keypoints"] += 1
                continue
            tight = as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'")
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                counts["degenerate_bbox"] += 1
                continue
            kps = add_midpoint(kps, CROWDPOSE14, "L_Hip", "R_Hip")  # pelvis = mid-hip
            valid = (kps[:, 2:3] > 0).astype(np.float32)
            kps[:, 2] = valid[:, 0]
            fit = fits.get(aid)
            if fit is not None and not self.keep_fit(fit_errors[aid]):
                counts["fit_rejected"] += 1
                fit = None
            counts["kept"] += 1
            counts["kept_without_fit"] += fit is None
            by_image.setdefault(image_id, []).append(
                PersonRecord(
                    img_path=self.root / "images" / str(require(img, "file_name", path, f"image {image_id}")),
                    img_size=(height, width),
                    bbox=bbox,
                    tight_bbox=tight,
                    joints=kps,
                    valid=valid,
                    fit=None if fit is None else {k: fit[k] for k in ("pose", "shape", "trans")},
                    focal=None if fit is None else fit["focal"],
                    princpt=None if fit is None else fit["princpt"],
                    fit_extra={} if fit is None else {"fit_err": fit_errors[aid]},
                )
            )
        records = []
        for people in by_image.values():
            for person, near in zip(people, overlapping_people(np.stack([p.tight_bbox for p in people]))):
                person.near_joints = [convert_joints(people[k].joints, self.joint_set, "coco17") for k in near]
            records.extend(people)
        log.info(
            "CrowdPose: %d of %d annotations kept (%d without SMPL fit, %d of them by the fit_err %s %.1f rule); "
            "dropped: %d without keypoints, %d degenerate boxes; image sizes taken from the file where the "
            "annotation differs: %d, unreadable images (annotated size used): %d", counts["kept"], counts["annotations"],
            counts["kept_without_fit"], counts["fit_rejected"], "<" if self.reference_compat else ">=",
            FIT_ERR_THRESHOLD, counts["no_keypoints"], counts["degenerate_bbox"], counts["images_size_corrected"],
            counts["images_size_unchecked"],
        )
        return records
