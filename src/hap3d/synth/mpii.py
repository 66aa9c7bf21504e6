"""Synthetic MPII: 16 keypoints flagged 1 when annotated, and NeuralAnnot SMPL fits.

Files are the reader's (:data:`hap3d.data.mpii.LAYOUT`), under the folder it names for ``hap3d data synth``: the
keypoint annotations, the NeuralAnnot fits and the images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data import dataset_layout
from hap3d.synth.people import BodyKit
from hap3d.synth.records import neuralannot, person_annotation, write_image, write_json
from hap3d.synth.scene import photo_scene


def write_mpii(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """The keypoint annotations (train.json: 16 MPII keypoints, flag 1 = annotated, file names starting with the
    images folder) and NeuralAnnot fits (every 8th person without a fit), under ``root`` = the MPII folder."""
    layout = dataset_layout("MPII")
    images, annotations, fits = [], [], {}
    for k in range(plan["mpii"]):
        n = int(rng.integers(1, 4))
        scene, people, _ = photo_scene(kit, rng, ((640, 360), (640, 480)), n, n > 1, 0, False)
        height, width = scene.depth.shape
        file_name = f"{layout.file('images').rel}/{10000000 + 7919 * k:09d}.jpg"
        write_image(root / layout.images / file_name, scene.image)
        images.append({"id": k, "file_name": file_name, "width": width, "height": height})
        for i, p in enumerate(people):
            ann = person_annotation(kit, scene, i, p, "mpii16", binary=True)
            if ann is None:
                continue
            del ann["segmentation"], ann["area"]  # MPII has no masks
            ann.update(id=len(annotations), image_id=k)
            annotations.append(ann)
            if ann["id"] % 8 != 5:
                fits[str(ann["id"])] = neuralannot(p, scene.camera)
    categories = [{"id": 1, "name": "person", "supercategory": "person"}]
    db = {"images": images, "annotations": annotations, "categories": categories}
    write_json(layout.path(root, "annotations"), db)
    write_json(layout.path(root, "fits"), fits)
    return len(annotations)
