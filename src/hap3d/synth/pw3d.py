"""Synthetic 3DPW and 3DPW-Crowd: walking people in short video sequences, with detector-like 2D inputs.

Files are the reader's (:data:`hap3d.data.pw3d.LAYOUT`): the test and validation annotations, the 3DPW-Crowd
HigherHRNet poses and the images, ``<sequence>/image_XXXXX.jpg``. The OpenPose and HigherHRNet inputs are the
projected ground truth with detector-like noise, low confidences and misses.
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
from hap3d.synth.records import cam_param, fit_entry, num, write_image, write_json
from hap3d.synth.scene import Scene, background, dress, random_camera, render_scene

PW3D_TEST_SEQUENCES = ("downtown_walking_00", "office_phoneCall_00", "flat_guitar_01", "outdoors_fencing_01",
                       "downtown_bus_00", "downtown_cafe_00")  # fmt: skip
# A validation sequence outside 3DPW-Crowd, which the crowd reader must drop (it keeps its split table's sequences).
PW3D_VALIDATION_EXTRA = "courtyard_drinking_00"


def detections(rng: np.random.Generator, scene: Scene, joints: np.ndarray, detector: str) -> np.ndarray:
    """(J, 3) x, y, confidence as a 2D detector reports the camera-frame ``joints``.

    Visible joints: ~2 px noise, confidence 0.4-0.95; hidden ones: ~6 px, 0.05-0.4. 'openpose' reports joints out
    of view and 5 % of the rest as (0, 0, 0) and, for 30 % of people, one joint at 0.03 (below the readers' 0.05
    threshold); 'hhrnet' (bottom-up, always 17 joints) clamps out-of-view joints to the border with scores < 0.1.
    """
    h, w = scene.depth.shape
    uv, state = scene.keypoints(joints)
    n = len(joints)
    xy = uv + rng.normal(0, 1, (n, 2)) * np.where(state == 2, 2.0, 6.0)[:, None]
    conf = np.where(state == 2, rng.uniform(0.4, 0.95, n), rng.uniform(0.05, 0.4, n))
    if detector == "hhrnet":
        xy = np.clip(xy, 0, [w - 1, h - 1])
        conf = np.where(state == 0, rng.uniform(0.0, 0.1, n), conf)
        return np.concatenate([xy, conf[:, None]], 1)
    missing = (state == 0) | (rng.random(n) < 0.05)
    low = rng.integers(n)
    if rng.random() < 0.3 and not missing[low]:
        conf[low] = 0.03
    return np.where(missing[:, None], 0.0, np.concatenate([xy, conf[:, None]], 1))


def write_pw3d(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """The test and validation annotations (gendered SMPL ground truth, OpenPose input per person, bbox, joint_img),
    the 3DPW-Crowd HigherHRNet poses (crowd sequences only; every 5th person unmatched) and the image sequences.

    1-2 people walk through each sequence in front of a static camera; the validation split holds the two crowd
    sequences (two people close together) and one the crowd reader must skip.
    """
    width, height = 540, 960
    layout = dataset_layout("PW3D")
    crowd_sequences = layout.splits["validation"].sequences  # the two 3DPW-Crowd sequences
    count, crowd_count = 0, 0
    hhrnet: dict[str, dict] = {}
    for split, sequences in (("test", PW3D_TEST_SEQUENCES[: plan["pw3d_sequences"]]),
                             ("validation", (*crowd_sequences, PW3D_VALIDATION_EXTRA))):
        n_frames = plan["pw3d_frames"] if split == "test" else max(1, plan["pw3d_frames"] // 2)
        images, annotations = [], []
        for seq in sequences:
            crowd = seq in crowd_sequences
            camera = random_camera(rng, width, height, (0.95, 1.1))
            bg = background(rng, height, width)
            n = 2 if crowd else int(rng.integers(1, 3))
            genders = [str(g) for g in rng.choice(["male", "female"], n)]
            shape = rng.standard_normal((n, 10))
            above = rng.uniform(1.0, 1.7)
            start = placements(rng, camera, (width, height), n, crowd, full_body_above=above)
            velocity = np.stack([rng.normal(0, 0.3, n), np.zeros(n), rng.normal(0, 0.2, n)], 1)
            motion = [(rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.45), pose_jitter(rng, 0.08), rng.normal(0, 0.9),
                       rng.normal(0, 0.05, 2)) for _ in range(n)]  # fmt: skip
            outfits = None
            for f in range(n_frames):
                t = f / 30.0  # 3DPW runs at 30 fps
                pose = np.stack([
                    np.concatenate([facing_camera(yaw + 0.1 * t, tilt), body_pose(ph + 2 * np.pi * t, st, jit)])
                    for ph, st, jit, yaw, tilt in motion
                ])  # fmt: skip
                targets = start + velocity * t
                targets[:, 2] = np.clip(targets[:, 2], start[:, 2].min(), DEPTH_RANGE[1])
                people = stand(kit, pose, shape, genders, targets, CAMERA_UP, -above)
                meshes = [p.vertices for p in people]
                if outfits is None:
                    outfits = dress(rng, meshes, camera, bg)
                scene = render_scene(kit, bg, meshes, outfits, camera)
                image_id = len(images) + (0 if split == "test" else 10000)
                file_name = f"image_{f:05d}.jpg"
                write_image(root / layout.images / seq / file_name, scene.image)
                images.append({"id": image_id, "width": width, "height": height, "sequence": seq,
                               "file_name": file_name, "cam_param": cam_param(camera)})  # fmt: skip
                for i, p in enumerate(people):
                    aid = count
                    count += 1
                    uv = camera.project(kit.joints(p.vertices, "smpl30"))
                    lo, hi = uv.min(0) - 10, uv.max(0) + 10
                    openpose = detections(rng, scene, kit.joints(p.vertices, "openpose18"), "openpose")
                    annotations.append({
                        "id": aid, "image_id": image_id, "category_id": 1, "bbox": num([*lo, *(hi - lo)], 2),
                        "smpl_param": {**fit_entry(p), "gender": p.gender}, "joint_img": num(uv[:24], 3),
                        "openpose_result": num(openpose, 3),
                    })  # fmt: skip
                    if crowd:
                        if crowd_count % 5 != 1:
                            coco = detections(rng, scene, kit.joints(p.vertices, "coco17"), "hhrnet")
                            hhrnet[str(aid)] = {"coco_joints": num(coco, 3), "img_id": image_id}
                        crowd_count += 1
        db = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "person"}]}
        write_json(layout.path(root, layout.splits[split].annotations), db)
    write_json(layout.path(root, layout.splits["validation"].input_poses), hhrnet)
    return count
