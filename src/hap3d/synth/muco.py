"""Synthetic MuCo-3DHP: composites of 2-4 people with camera-frame joints in mm and SMPL fits.

Files are the reader's (:data:`hap3d.data.muco.LAYOUT`): the annotations, the SMPL fits and the augmented and
unaugmented composites.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hap3d.data import dataset_layout
from hap3d.synth.people import BETA_SCALE_3D, BodyKit, camera_people
from hap3d.synth.records import fit_entry, num, write_image, write_json
from hap3d.synth.scene import background, dress, random_camera, render_scene


def write_muco(kit: BodyKit, root: Path, plan: dict[str, int], rng: np.random.Generator) -> int:
    """Composites of 2-4 people: MuCo-3DHP.json (camera-frame joints in mm, their projections, boxes, intrinsics
    per image) and smpl_param.json (camera frame; every 10th person has no fit)."""
    width = height = 512
    layout = dataset_layout("MuCo")
    # the composite folders, as image names relative to the reader's image folder; odd images are augmented
    sets = [Path(layout.file(key).rel).relative_to(layout.images).as_posix()
            for key in ("unaugmented_images", "augmented_images")]  # fmt: skip
    images, annotations, fits = [], [], {}
    for k in range(plan["muco"]):
        camera = random_camera(rng, width, height, (0.95, 1.15))
        bg = background(rng, height, width)
        n, group = int(rng.integers(2, 5)), bool(rng.random() < 0.6)
        people = camera_people(kit, rng, camera, (width, height), n, group, full_body=True, beta_scale=BETA_SCALE_3D)
        meshes = [p.vertices for p in people]
        scene = render_scene(kit, bg, meshes, dress(rng, meshes, camera, bg), camera)
        file_name = f"{sets[k % 2]}/{k:06d}.jpg"
        write_image(root / layout.images / file_name, scene.image)
        images.append({"id": k, "file_name": file_name, "width": width, "height": height,
                       "f": num([camera.fx, camera.fy], 2), "c": num([camera.cx, camera.cy], 2)})  # fmt: skip
        for i, p in enumerate(people):
            box = scene.tight_box(i)
            if box is None:
                continue
            aid = len(annotations)
            cam_mm = kit.joints(p.vertices, "muco21") * 1000.0
            annotations.append({"id": aid, "image_id": k, "bbox": num(box, 2), "keypoints_cam": num(cam_mm, 3),
                                "keypoints_img": num(camera.project(cam_mm), 3)})  # fmt: skip
            if aid % 10 != 7:
                fits[str(aid)] = fit_entry(p)
    write_json(layout.path(root, "annotations"), {"images": images, "annotations": annotations})
    write_json(layout.path(root, "fits"), fits)
    return len(annotations)
