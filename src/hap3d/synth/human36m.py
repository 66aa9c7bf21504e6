"""Synthetic Human3.6M: one subject per annotation set, seen by four calibrated cameras in a world frame (z up, mm).

Files and subjects are the reader's (:data:`hap3d.data.human36m.LAYOUT` and its split table): per training and
test subject one JSON file of each kind in ``SUBJECT_FILES`` (data, camera, joint_3d, smpl_param), and the images
in one folder per sequence (the layout in docs/data.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data import dataset_layout
from hap3d.data.human36m import ACTIONS as H36M_ACTIONS
from hap3d.data.human36m import SUBJECT_FILES, subject_file_key
from hap3d.render import Camera
from hap3d.synth.people import (
    BETA_SCALE_3D,
    BodyKit,
    Person,
    axis_angle,
    axis_rotation,
    body_pose,
    pose_jitter,
    stand,
)
from hap3d.synth.records import fit_entry, num, write_image, write_json
from hap3d.synth.scene import background, dress, random_camera, render_scene


def _h36m_cameras(
    rng: np.random.Generator, width: int, height: int
) -> dict[str, tuple[np.ndarray, np.ndarray, Camera]]:
    """Four calibrated cameras around the capture area: {cam_idx: (R, t mm, intrinsics)}, world z up, in mm."""
    cams = {}
    for k in range(4):
        a = np.pi / 4 + k * np.pi / 2 + rng.normal(0, 0.1)
        centre = np.array([np.cos(a), np.sin(a), 0.0]) * rng.uniform(4.0, 6.0) + [0, 0, rng.uniform(1.2, 1.8)]
        forward = np.array([0.0, 0.0, 0.9]) + rng.normal(0, 0.05, 3) - centre
        forward /= np.linalg.norm(forward)
        right = np.cross(forward, [0.0, 0.0, 1.0])
        right /= np.linalg.norm(right)
        rot = np.round(np.stack([right, np.cross(forward, right), forward]), 8)
        t = np.round(-rot @ centre * 1000.0, 4)
        cams[str(k + 1)] = (rot, t, random_camera(rng, width, height, (1.1, 1.2)))
    return cams


def _h36m_person(kit: BodyKit, shape: np.ndarray, frame: int, motion: dict) -> Person:
    """The subject at one frame of a sequence: a slow walking cycle and turn in the world frame (z up)."""
    t = frame / 50.0  # seconds at 50 fps
    pose = np.zeros((1, 72))
    pose[0, 3:] = body_pose(motion["phase"] + 2 * np.pi * t, motion["stride"], motion["jitter"])
    pose[0, :3] = axis_angle(axis_rotation("z", motion["yaw"] + 0.2 * t) @ axis_rotation("x", np.pi / 2))
    target = motion["position"] + np.array([0.1 * np.sin(t), 0.1 * np.cos(t), 0.0])
    return stand(kit, pose, shape[None], ["neutral"], target[None], np.array([0.0, 0.0, 1.0]), 0.0)[0]


def write_human36m(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """Per subject: data (images + boxes), camera, joint_3d (world mm, regressed from the fit's mesh) and
    smpl_param (world frame, trans in m). Every 10th fit is perturbed (fails the 25 mm check), every 10th missing."""
    width = height = 500
    layout = dataset_layout("Human36M")
    ids = {"image": 0, "ann": 0, "fit": 0}
    for split in ("train", "test"):  # the reader's subjects, frame subsampling and test cameras (test_all_cameras
        table = layout.splits[split]  # reads the test subjects' files too)
        subjects, every = table.subjects, table.every
        n_frames = plan["h36m_frames"] if split == "train" else max(1, plan["h36m_frames"] // 4)
        for pos, subject in enumerate(subjects):
            cams = _h36m_cameras(rng, width, height)
            backgrounds = {c: background(rng, height, width) for c in cams}
            action = int(rng.choice(list(H36M_ACTIONS)))
            subaction = int(rng.integers(1, 3))
            shape = BETA_SCALE_3D * rng.standard_normal(10)
            motion = {"phase": rng.uniform(0, 2 * np.pi), "stride": rng.uniform(0.1, 0.4),
                      "jitter": pose_jitter(rng, 0.08), "yaw": rng.uniform(0, 2 * np.pi),
                      "position": np.append(rng.normal(0, 0.3, 2), 0.0)}  # fmt: skip
            if table.cameras is None:  # a split that reads every camera
                cam_ids = [str((pos + j) % 4 + 1) for j in range(plan["h36m_cameras"])]
            else:  # the test camera(s); the first test subject also has another one, which the reader drops
                others = max(plan["h36m_cameras"] - 1, int(pos == 0))
                cam_ids = list(table.cameras) + [str(j + 1) for j in range(others)]
            # frame 1 of the first training subject is off the reader's every-5th-frame grid
            frames = [every * k for k in range(n_frames)] + ([1] if (split, pos) == ("train", 0) else [])
            outfits = None
            images, annotations, joints_tree, fits_tree = [], [], {}, {}
            for frame in frames:
                person = _h36m_person(kit, shape, frame, motion)
                key = (str(action), str(subaction), str(frame))
                world_mm = kit.joints(person.vertices, "h36m17") * 1000.0
                joints_tree.setdefault(key[0], {}).setdefault(key[1], {})[key[2]] = num(world_mm, 3)
                kind = ids["fit"] % 10
                ids["fit"] += 1
                if kind != 8:
                    fit = fit_entry(person)
                    if kind == 5:  # bent knees and elbows: a bad fit that the 25 mm rule must reject
                        bad = person.pose.reshape(24, 3).copy()
                        bad[[4, 5], 0] += 1.2
                        bad[18, 1] -= 1.3
                        bad[19, 1] += 1.3
                        fit["pose"] = num(bad.reshape(72), 6)
                    fits_tree.setdefault(key[0], {}).setdefault(key[1], {})[key[2]] = fit
                for cam_idx in cam_ids:
                    rot, t, camera = cams[cam_idx]
                    mesh = person.vertices @ rot.T + t / 1000.0
                    if outfits is None:
                        outfits = dress(rng, [mesh], camera, backgrounds[cam_idx])
                    scene = render_scene(kit, backgrounds[cam_idx], [mesh], outfits, camera)
                    box = scene.tight_box(0)
                    if box is None:
                        continue
                    seq = f"s_{subject:02d}_act_{action:02d}_subact_{subaction:02d}_ca_{int(cam_idx):02d}"
                    file_name = f"{seq}/{seq}_{frame + 1:06d}.jpg"
                    write_image(root / layout.images / file_name, scene.image)
                    images.append({
                        "id": ids["image"], "file_name": file_name, "width": width, "height": height,
                        "subject": subject, "action_name": H36M_ACTIONS[action], "action_idx": action,
                        "subaction_idx": subaction, "cam_idx": int(cam_idx), "frame_idx": frame,
                    })  # fmt: skip
                    annotations.append({"id": ids["ann"], "image_id": ids["image"], "bbox": num(box, 2),
                                        "keypoints_vis": [True] * 17})  # fmt: skip
                    ids["image"] += 1
                    ids["ann"] += 1
            cameras = {
                c: {"R": num(r, 8), "t": num(t, 4), "f": num([cam.fx, cam.fy], 2), "c": num([cam.cx, cam.cy], 2)}
                for c, (r, t, cam) in cams.items()
            }
            contents = {"data": {"images": images, "annotations": annotations}, "camera": cameras,
                        "joint_3d": joints_tree, "smpl_param": fits_tree}  # fmt: skip
            for kind in SUBJECT_FILES:
                write_json(layout.path(root, subject_file_key(subject, kind)), contents[kind])
    return ids["ann"]
