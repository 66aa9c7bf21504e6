"""Human3.6M evaluation samples: the test subjects (9, 11) every 64th frame, all cameras (protocol 1) or the
frontal camera 4 (protocol 2), with the ground-truth 3D joints (camera frame, mm) as the target.

The reference's ``Human36M.evaluate`` cannot run (docs/reference-differences.md R55); this reader follows its test
split. The input 2D pose is a detector's, from a COCO keypoint-results file (``[{image_id, keypoints: 17x3 flat,
score}]``, the best-scoring person of each image), or else the ground-truth 2D joints: an oracle input, which the
evaluation labels as such. The crop comes from the input pose as for 3DPW (valid joints x1.2, square x1.25).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from hap3d.body.joints import COCO17
from hap3d.data.human36m import ACTIONS, LAYOUT, SPLITS, Human36M, cam_to_pixel, subject_file_key
from hap3d.data.io import DataError, ImageIndex, as_array, load_json, require, require_int, require_list, require_str
from hap3d.data.layout import DatasetLayout
from hap3d.data.pw3d import joint_cam_sample
from hap3d.data.transforms import add_midpoint

log = logging.getLogger(__name__)

PROTOCOL_SPLITS = {1: "test_all_cameras", 2: "test"}  # protocol -> split of the layout's table
ORACLE = "ground-truth 2D joints (oracle input)"


@dataclass
class H36MTestRecord:
    aid: int
    image_id: int
    img_path: Path
    img_size: tuple[int, int]  # (height, width)
    tight_bbox: np.ndarray
    joint_cam: np.ndarray  # (17, 3) mm, camera frame
    input_joints: np.ndarray  # (J, 3) x, y, confidence in ``input_set``
    input_set: str
    subject: int
    action: int
    camera: int

    @property
    def sequence(self) -> str:
        """The action's name: the per-sequence table of an evaluation is the per-action table here."""
        return ACTIONS.get(self.action, f"action_{self.action}")


def read_coco_keypoints(path: str | Path) -> dict[int, np.ndarray]:
    """COCO keypoint results -> {image_id: (19, 3) COCO17 + Pelvis + Neck of the best-scoring person}."""
    path = Path(path)
    entries = load_json(path, "COCO keypoint results")
    if not isinstance(entries, list):
        raise DataError(f"{path}: expected a list of COCO keypoint results, got {type(entries).__name__}")
    best: dict[int, tuple[float, np.ndarray]] = {}
    for k, entry in enumerate(entries):
        where = f"result {k}"
        image_id = require_int(entry, "image_id", path, where)
        joints = as_array(require(entry, "keypoints", path, where), (17, 3), path, f"{where} 'keypoints'")
        score = float(entry.get("score", 1.0)) if isinstance(entry, dict) else 1.0
        if image_id not in best or score > best[image_id][0]:
            best[image_id] = (score, joints)
    out = {}
    for image_id, (_, joints) in best.items():
        joints = add_midpoint(joints.astype(np.float32), COCO17, "L_Hip", "R_Hip")
        out[image_id] = add_midpoint(joints, (*COCO17, "Pelvis"), "L_Shoulder", "R_Shoulder")
    return out


class Human36MTest(torch.utils.data.Dataset):
    """Samples ``{'inputs': {img, joints, joints_mask}, 'targets': {joint_cam}, 'meta': {aid, index}}``."""

    layout: ClassVar[DatasetLayout] = LAYOUT

    def __init__(self, root: str | Path, protocol: int = 1, keypoints: str | Path | None = None,
                 conf_thr: float = 0.05) -> None:
        if protocol not in PROTOCOL_SPLITS:
            raise ValueError(f"Human3.6M protocol {protocol}: there are protocols 1 and 2")
        self.root, self.protocol, self.conf_thr = Path(root), protocol, conf_thr
        self.split = PROTOCOL_SPLITS[protocol]
        self.input = ORACLE if keypoints is None else f"2D keypoints of {keypoints}"
        detections = None if keypoints is None else read_coco_keypoints(keypoints)
        self.without_input = 0  # test frames the keypoint file has no person for (not evaluated)
        self.records = [r for s in SPLITS[self.split].subjects for r in self._subject(s, detections)]
        if self.without_input:
            log.warning("Human3.6M protocol %d: %d test frames have no person in %s and are not evaluated",
                        protocol, self.without_input, keypoints)

    def _subject(self, subject: int, detections: dict[int, np.ndarray] | None) -> list[H36MTestRecord]:
        split = SPLITS[self.split]
        path = self.layout.path(self.root, subject_file_key(subject, "data"))
        db = load_json(path, f"Human3.6M subject {subject} annotations")
        cam_path = self.layout.path(self.root, subject_file_key(subject, "camera"))
        cams = load_json(cam_path, f"Human3.6M subject {subject} cameras")
        joint_path = self.layout.path(self.root, subject_file_key(subject, "joint_3d"))
        joints_3d = load_json(joint_path, f"Human3.6M subject {subject} 3D joints")
        images = ImageIndex(db, path)
        out = []
        for k, ann in enumerate(require_list(db, "annotations", path, "the file")):
            aid = require_int(ann, "id", path, f"annotations[{k}]")
            where = f"annotation {aid} (annotations[{k}])"
            image_id = require_int(ann, "image_id", path, where)
            img, iwhere = images.find(image_id, where)
            frame, cam = require_int(img, "frame_idx", path, iwhere), require_int(img, "cam_idx", path, iwhere)
            if frame % split.every or (split.cameras is not None and str(cam) not in split.cameras):
                continue
            rot, t, focal, princpt = Human36M._camera(cams, str(cam), cam_path, iwhere)
            action, subaction = (require_int(img, key, path, iwhere) for key in ("action_idx", "subaction_idx"))
            key = (str(action), str(subaction), str(frame))
            world = Human36M._lookup(joints_3d, key, joint_path, iwhere)
            joint_cam = as_array(world, (17, 3), joint_path, "joints " + "/".join(key)) @ rot.T + t[None]
            if detections is None:
                joints = np.concatenate([cam_to_pixel(joint_cam, focal, princpt)[:, :2], np.ones((17, 1))], 1)
                input_set = "h36m17"
            elif image_id in detections:
                joints, input_set = detections[image_id], "coco19"
            else:
                self.without_input += 1
                continue
            out.append(H36MTestRecord(
                aid=aid, image_id=image_id,
                img_path=self.root / self.layout.images / require_str(img, "file_name", path, iwhere),
                img_size=(require_int(img, "height", path, iwhere), require_int(img, "width", path, iwhere)),
                tight_bbox=as_array(require(ann, "bbox", path, where), (4,), path, where + " 'bbox'"),
                joint_cam=joint_cam.astype(np.float64), input_joints=np.asarray(joints, np.float32),
                input_set=input_set, subject=subject, action=action, camera=cam,
            ))  # fmt: skip
        return out

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, idx: int) -> dict:
        rec = self.records[idx]
        return joint_cam_sample(rec, rec.input_set, self.conf_thr, idx)
