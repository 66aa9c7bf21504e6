"""Synthetic MuPoTS-3D: groups of 2-3 people in short sequences TS1, TS2, ..., with HigherHRNet and OpenPose inputs.

Files are the reader's (:data:`hap3d.data.mupots.LAYOUT`): ``MuPoTS-3D.json`` (images with ``intrinsic``,
annotations with ``keypoints_cam`` in mm and ``keypoints_img`` in the 17-joint MuPoTS order, ``bbox`` and
``is_valid``), the two detector result files keyed by annotation id, and the images
``MultiPersonTestSet/TS<n>/img_XXXXXX.jpg``. Every 7th person is marked invalid, every 4th has no HigherHRNet
entry and every 5th an all-zero OpenPose pose (missed by the detector: unmatched).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data import dataset_layout
from hap3d.synth.people import (
    CAMERA_UP,
    DEPTH_RANGE,
    BodyKit,
    body_pose,
    facing_camera,
    placements,
    pose_jitter,
    stand,
)
from hap3d.synth.pw3d import detections
from hap3d.synth.records import num, write_image, write_json
from hap3d.synth.scene import background, dress, random_camera, render_scene


def write_mupots(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """The annotations, both detector files and the images; returns the number of annotations."""
    width, height = 640, 480
    layout = dataset_layout("MuPoTS")
    images, annotations, hhrnet, openpose = [], [], {}, {}
    for s in range(plan["mupots_sequences"]):
        seq = f"TS{s + 1}"
        camera = random_camera(rng, width, height, (0.9, 1.1))
        bg = background(rng, height, width)
        n = int(rng.integers(2, 4))
        shape = rng.standard_normal((n, 10))
        above = rng.uniform(1.0, 1.6)
        targets = placements(rng, camera, (width, height), n, True, full_body_above=above)
        targets[:, 2] = np.clip(targets[:, 2], *DEPTH_RANGE)
        motion = [(rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.4), pose_jitter(rng, 0.08), rng.normal(0, 0.8),
                   rng.normal(0, 0.05, 2)) for _ in range(n)]
        outfits = None
        for f in range(plan["mupots_frames"]):
            pose = np.stack([np.concatenate([facing_camera(yaw, tilt), body_pose(ph + 0.5 * f, st, jit)])
                             for ph, st, jit, yaw, tilt in motion])
            people = stand(kit, pose, shape, ["neutral"] * n, targets, CAMERA_UP, -above)
            meshes = [p.vertices for p in people]
            if outfits is None:
                outfits = dress(rng, meshes, camera, bg)
            scene = render_scene(kit, bg, meshes, outfits, camera)
            file_name = f"{seq}/img_{f:06d}.jpg"
            write_image(root / layout.images / file_name, scene.image)
            image_id = len(images)
            images.append({"id": image_id, "file_name": file_name, "width": width, "height": height,
                           "intrinsic": num([camera.fx, camera.fy, camera.cx, camera.cy], 2)})
            for i, p in enumerate(people):
                aid = len(annotations)
                cam_mm = kit.joints(p.vertices, "muco21")[:17] * 1000.0  # the MuPoTS joints are MuCo's first 17
                uv = camera.project(cam_mm / 1000.0)
                box = scene.tight_box(i) or [*(uv.min(0) - 10), *(uv.max(0) - uv.min(0) + 20)]
                annotations.append({"id": aid, "image_id": image_id, "keypoints_cam": num(cam_mm, 2),
                                    "keypoints_img": num(uv, 2), "bbox": num(box, 2), "is_valid": int(aid % 7 != 6)})
                if aid % 4 != 3:
                    coco = detections(rng, scene, kit.joints(p.vertices, "coco17"), "hhrnet")
                    hhrnet[str(aid)] = {"coco_joints": num(coco, 3), "img_id": image_id}
                op = detections(rng, scene, kit.joints(p.vertices, "openpose18"), "openpose")
                openpose[str(aid)] = {"coco_joints": num(op if aid % 5 != 4 else np.zeros((18, 3)), 3),
                                      "img_id": image_id}
    db = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
    write_json(layout.path(root, "annotations"), db)
    write_json(layout.path(root, "hhrnet_poses"), hhrnet)
    write_json(layout.path(root, "openpose_poses"), openpose)
    return len(annotations)
