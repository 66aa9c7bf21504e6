"""What the COCO-format 2D training sets share: a keypoint file in COCO's schema plus a NeuralAnnot SMPL-fit file.

MSCOCO, MPII and CrowdPose differ only in where their files are (each declares its ``layout`` with the keys
``annotations``, ``fits`` and ``images``), how many keypoints they have, which annotations they drop and
(CrowdPose) how they treat image sizes and fits; :class:`CocoStyleDataset` does the rest once:
parse and validate the records, process the boxes, attach the fits, find the overlapping people each PoseFix
sample needs, keep a tally of what was dropped and store the result column-wise.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hap3d.body.joints import convert_joints, get_joint_set
from hap3d.data.base import PackedRecords, PersonRecord, TrainDataset, overlapping_people, read_fit
from hap3d.data.io import (
    DataError,
    ImageIndex,
    as_array,
    load_json,
    optional_number,
    require,
    require_int,
    require_list,
    require_str,
)
from hap3d.data.transforms import add_midpoint, process_bbox

log = logging.getLogger(__name__)


def find_first(candidates: list[Path], what: str) -> Path:
    """The first existing file among the places a file is found in the wild."""
    for c in candidates:
        if c.is_file():
            return c
    raise DataError(f"{what} not found; looked for " + ", ".join(str(c) for c in candidates))


def read_neuralannot(path: Path, extra: tuple[str, ...] = ()) -> dict[int, dict[str, np.ndarray | float] | None]:
    """{ann_id: {pose, shape, trans, focal, princpt, *extra}} from a NeuralAnnot file.

    ``extra`` names per-entry numeric fields some releases add (CrowdPose's ``fit_err``). An entry with a null,
    NaN or infinite value, or without an ``extra`` field, maps to None: the person is kept without a fit (see
    :func:`~hap3d.data.base.read_fit`); the reader counts it. A value of the wrong type (a string) is an error.
    """
    raw = load_json(path, "NeuralAnnot SMPL file")
    if not isinstance(raw, dict):
        raise DataError(f"{path}: expected a mapping from annotation id to fits, got {type(raw).__name__}")
    out: dict[int, dict[str, np.ndarray | float] | None] = {}
    for key, entry in raw.items():
        where = f"entry {key}"
        try:
            aid = int(key)
        except ValueError:
            raise DataError(f"{path}: key {key!r} is not an annotation id (an integer)") from None
        smpl = read_fit(require(entry, "smpl_param", path, where), path, where + ".smpl_param")
        cam = require(entry, "cam_param", path, where)
        intrinsics = {
            k: as_array(require(cam, k, path, where + ".cam_param"), (2,), path, f"{where}.cam_param.{k}", finite=False)
            for k in ("focal", "princpt")
        }
        numbers = {k: optional_number(entry, k, path, where) for k in extra}
        if smpl is not None and not all(np.isfinite(v).all() for v in intrinsics.values()):
            log.warning("%s: %s.cam_param has a null, NaN or infinite value; the person is used without a fit",
                        path, where)
            smpl = None
        missing = [k for k, v in numbers.items() if v is None]
        if smpl is not None and missing:
            log.warning("%s: %s has no finite '%s' (missing, null, NaN or infinite); the person is used without a fit",
                        path, where, missing[0])
            smpl = None
        out[aid] = None if smpl is None else {**smpl, **intrinsics, **numbers}
    return out


class CocoStyleDataset(TrainDataset):
    """Base of the readers of COCO-format keypoint files with NeuralAnnot fits. Subclasses set the attributes
    and their ``layout`` (files ``annotations`` and ``fits``; image names relative to ``layout.images``); the
    hooks below cover what differs between datasets."""

    num_keypoints = 17
    pelvis_from_hips: str | None = None  # joint set whose hips give an added mid-hip pelvis row
    neuralannot_extra: tuple[str, ...] = ()
    extra_counts: tuple[str, ...] = ()  # dataset-specific entries of ``filter_counts``

    @property
    def annotation_file(self) -> Path:
        return self.layout.path(self.root, "annotations")

    @property
    def neuralannot_file(self) -> Path:
        return self.layout.path(self.root, "fits")

    # ----------------------------------------------------------------- hooks
    def drop_reason(self, ann: dict, keypoints: np.ndarray) -> str | None:
        """A ``filter_counts`` key when the annotation is not a training person, else None."""
        return None

    def image_size(self, img: dict, path: Path, where: str) -> tuple[int, int]:
        """(width, height) used for box clipping and flips: the annotated size by default."""
        return require_int(img, "width", path, where), require_int(img, "height", path, where)

    def keep_fit(self, fit: dict) -> bool:
        return True

    # ----------------------------------------------------------------- parsing
    def load(self) -> PackedRecords:
        path = self.annotation_file
        db = load_json(path, f"{self.name} annotation file")
        fits = read_neuralannot(self.neuralannot_file, self.neuralannot_extra)
        images = ImageIndex(db, path)
        counts = self.filter_counts = dict.fromkeys(
            ("annotations", *self.extra_counts, "degenerate_bbox", "kept", "kept_without_fit", "fit_non_finite"), 0
        )
        sizes: dict[int, tuple[int, int]] = {}
        by_image: dict[int, list[PersonRecord]] = {}
        for k, ann in enumerate(require_list(db, "annotations", path, "the file")):
            aid = require_int(ann, "id", path, f"annotations[{k}]")
            where = f"annotation {aid} (annotations[{k}])"
            counts["annotations"] += 1
            image_id = require_int(ann, "image_id", path, where)
            img, iwhere = images.find(image_id, where)
            kps = as_array(require(ann, "keypoints", path, where), (self.num_keypoints, 3), path,
                           where + " 'keypoints'")
            reason = self.drop_reason(ann, kps)
            if reason is not None:
                counts[reason] += 1
                continue
            if image_id not in sizes:
                sizes[image_id] = self.image_size(img, path, iwhere)
            width, height = sizes[image_id]
            tight = as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'")
            bbox = process_bbox(tight, width, height)
            if bbox is None:
                counts["degenerate_bbox"] += 1
                continue
            if self.pelvis_from_hips is not None:
                kps = add_midpoint(kps, get_joint_set(self.pelvis_from_hips).joints, "L_Hip", "R_Hip")
            valid = (kps[:, 2:3] > 0).astype(np.float32)
            kps[:, 2] = valid[:, 0]
            fit = fits.get(aid)
            if fit is None and aid in fits:
                counts["fit_non_finite"] += 1
            elif fit is not None and not self.keep_fit(fit):
                counts["fit_rejected"] += 1
                fit = None
            counts["kept"] += 1
            counts["kept_without_fit"] += fit is None
            file_name = require_str(img, "file_name", path, iwhere)
            by_image.setdefault(image_id, []).append(
                PersonRecord(
                    img_path=self.root / self.layout.images / file_name,
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
                person.near_joints = [convert_joints(people[k].joints, self.joint_set, "coco17") for k in near]
            records.extend(people)
        dropped = ", ".join(f"{k.replace('_', ' ')} {counts[k]}" for k in (*self.extra_counts, "degenerate_bbox"))
        log.info("%s: %d of %d annotations kept (%d without SMPL fit, %d of them for a non-finite fit); %s", self.name,
                 counts["kept"], counts["annotations"], counts["kept_without_fit"], counts["fit_non_finite"], dropped)
        return PackedRecords(records)
