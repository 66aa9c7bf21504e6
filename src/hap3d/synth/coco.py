"""Synthetic MSCOCO: person keypoints (17, visibility 0/1/2), masks, crowd regions and NeuralAnnot SMPL fits.

Files are the reader's (:data:`hap3d.data.coco.LAYOUT`): the keypoint annotations, the NeuralAnnot fits and the
train2017 images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data import dataset_layout
from hap3d.synth.people import BodyKit
from hap3d.synth.records import (
    README_HEADER,
    neuralannot,
    person_annotation,
    unlabeled,
    write_image,
    write_json,
)
from hap3d.synth.scene import photo_scene

COCO_KEYPOINT_NAMES = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
                       "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
                       "right_knee", "left_ankle", "right_ankle"]  # fmt: skip
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
                 [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]  # fmt: skip


def write_coco(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """The keypoint annotations (person_keypoints_train2017.json) and NeuralAnnot fits. Images cycle through one person,
    an overlapping group, people plus a crowd region (iscrowd 1, RLE) and people plus a small unlabeled person
    (num_keypoints 0): the reader's filters all have something to drop."""
    layout = dataset_layout("MSCOCO")
    images, annotations, fits = [], [], {}
    for k in range(plan["coco"]):
        kind = k % 4
        n = 1 if kind == 0 else int(rng.integers(2, 4)) if kind == 1 else int(rng.integers(1, 3))
        far = int(rng.integers(4, 7)) if kind == 2 else int(kind == 3)
        sizes = ((640, 480), (480, 640), (640, 427), (612, 612))
        scene, people, distant = photo_scene(kit, rng, sizes, n, kind == 1, far, True)
        height, width = scene.depth.shape
        image_id = 1000 + 37 * k
        file_name = f"{image_id:012d}.jpg"
        write_image(root / layout.images / file_name, scene.image)
        images.append({"id": image_id, "file_name": file_name, "width": width, "height": height, "license": 0,
                       "coco_url": "", "flickr_url": "", "date_captured": "2017-01-01 00:00:00"})  # fmt: skip
        records = [(person_annotation(kit, scene, i, p, "coco17"), p) for i, p in enumerate(people)]
        if distant:
            mask = np.isin(scene.owner, np.arange(len(people), len(people) + len(distant)))
            records.append((unlabeled(mask, kind == 2, 17), None))
        for ann, p in records:
            if ann is None:
                continue
            ann.update(id=len(annotations) + 1, image_id=image_id)
            annotations.append(ann)
            if p is not None and ann["num_keypoints"] > 0 and ann["id"] % 9 != 4:
                fits[str(ann["id"])] = neuralannot(p, scene.camera)
    db = {
        "info": {"description": f"{README_HEADER}: NOT MSCOCO, only its file format", "version": "1.0", "year": 2017},
        "licenses": [{"id": 0, "name": "synthetic, no licence attached", "url": ""}],
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": COCO_KEYPOINT_NAMES,
                        "skeleton": COCO_SKELETON}],
    }  # fmt: skip
    write_json(layout.path(root, "annotations"), db)
    write_json(layout.path(root, "fits"), fits)
    return len(annotations)
