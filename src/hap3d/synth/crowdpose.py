"""Synthetic CrowdPose: crowded photos with 14 keypoints, the crowd index, and SMPL fits with a fit error.

Files are the reader's (:data:`hap3d.data.crowdpose.LAYOUT`): the keypoint annotations, the NeuralAnnot fits and
the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from hap3d.data import dataset_layout
from hap3d.render import Camera
from hap3d.synth.people import BodyKit, Person
from hap3d.synth.records import (
    cam_param,
    num,
    person_annotation,
    unlabeled,
    write_image,
    write_json,
)
from hap3d.synth.scene import photo_scene

CROWDPOSE_KEYPOINT_NAMES = ["left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
                            "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle", "head",
                            "neck"]  # fmt: skip
CROWDPOSE_SKELETON = [[13, 14], [14, 1], [14, 2], [1, 3], [3, 5], [2, 4], [4, 6], [1, 7], [2, 8], [7, 8], [7, 9],
                      [9, 11], [8, 10], [10, 12]]  # fmt: skip


def crowd_index(keypoints: Sequence[np.ndarray], boxes: Sequence[Sequence[float]]) -> float:
    """CrowdPose's crowd index: mean over people of (others' labeled joints inside the person's box) / (own ones)."""
    ratios = []
    for i, (kp, box) in enumerate(zip(keypoints, boxes)):
        own = int((kp[:, 2] > 0).sum())
        if own == 0:
            continue
        x, y, w, h = box
        inside = 0
        for j, other in enumerate(keypoints):
            if j != i:
                sel = other[other[:, 2] > 0]
                inside += int(((sel[:, 0] >= x) & (sel[:, 0] <= x + w) & (sel[:, 1] >= y) & (sel[:, 1] <= y + h)).sum())
        ratios.append(inside / own)
    return float(np.mean(ratios)) if ratios else 0.0


def _noisy_fits(
    kit: BodyKit, rng: np.random.Generator, camera: Camera, records: list[tuple[dict, Person | None]]
) -> dict[int, dict]:
    """NeuralAnnot-style entries for the labeled people of ``records`` (by index): the true parameters with body-pose
    noise of random size, and ``fit_err`` = the fit's mean reprojection error in pixels over the labeled joints."""
    idx = [i for i, (a, p) in enumerate(records) if p is not None and a["num_keypoints"] > 0]
    if not idx:
        return {}
    people = [records[i][1] for i in idx]
    pose = np.stack([p.pose for p in people])
    pose[:, 3:] += rng.standard_normal(pose[:, 3:].shape) * rng.uniform(0, 0.15, (len(idx), 1))
    pose = np.round(pose, 6)
    verts = kit.posed(pose, np.stack([p.shape for p in people]), ["neutral"] * len(idx))
    out = {}
    for i, p, q, v in zip(idx, people, pose, verts):
        kp = np.asarray(records[i][0]["keypoints"], np.float64).reshape(-1, 3)
        uv = camera.project(kit.joints(v + p.trans, "crowdpose14"))
        labeled = kp[:, 2] > 0
        err = float(np.linalg.norm(uv[labeled] - kp[labeled, :2], axis=1).mean())
        fit = {"pose": num(q, 6), "shape": num(p.shape, 6), "trans": num(p.trans, 6)}
        out[i] = {"smpl_param": fit, "cam_param": cam_param(camera), "fit_err": round(err, 4)}
    return out


def write_crowdpose(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """The keypoint annotations (crowdpose_train.json: 14 keypoints, crowdIndex) and NeuralAnnot fits with fit_err.

    Like the release 3DCrowdNet used, the images' ``width`` and ``height`` are written swapped (the reference
    reader swaps them back; upstream corrected its file in 2021, jeffffffli/CrowdPose#12). Fits are the true
    parameters with body-pose noise of random size; ``fit_err`` is their mean reprojection error in pixels over
    the labeled joints, so both sides of the reader's 5.0 threshold occur.
    """
    layout = dataset_layout("CrowdPose")
    images, annotations, fits = [], [], {}
    for k in range(plan["crowdpose"]):
        far = int(k % 3 == 1)
        sizes = ((640, 480), (480, 640), (640, 427))
        scene, people, distant = photo_scene(kit, rng, sizes, int(rng.integers(3, 7)), True, far, False)
        height, width = scene.depth.shape
        image_id = 100000 + k
        write_image(root / layout.images / f"{image_id}.jpg", scene.image)
        records = [(person_annotation(kit, scene, i, p, "crowdpose14"), p) for i, p in enumerate(people)]
        if distant:
            records.append((unlabeled(scene.mask(len(people)), False, 14), None))
        records = [(a, p) for a, p in records if a is not None]
        kps = [np.asarray(a["keypoints"], np.float64).reshape(14, 3) for a, _ in records]
        images.append({"id": image_id, "file_name": f"{image_id}.jpg", "width": height, "height": width,  # swapped
                       "crowdIndex": round(crowd_index(kps, [a["bbox"] for a, _ in records]), 2)})  # fmt: skip
        noisy = _noisy_fits(kit, rng, scene.camera, records)
        for i, (a, _) in enumerate(records):
            del a["segmentation"], a["area"]  # CrowdPose has no masks
            a.update(id=len(annotations) + 1, image_id=image_id)
            annotations.append(a)
            if i in noisy:
                fits[str(a["id"])] = noisy[i]
    db = {
        "images": images, "annotations": annotations,
        "categories": [{"id": 1, "name": "person", "supercategory": "person", "keypoints": CROWDPOSE_KEYPOINT_NAMES,
                        "skeleton": CROWDPOSE_SKELETON}],
    }  # fmt: skip
    write_json(layout.path(root, "annotations"), db)
    write_json(layout.path(root, "fits"), fits)
    return len(annotations)
