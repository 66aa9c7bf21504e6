"""``hap3d demo``: images, folders or a video + 2D keypoints -> meshes, renders and exports, per person.

Per image ``<out>/<image stem>/``: ``overlay.png`` (meshes over the photo, one shared depth buffer),
``side.png`` (the same people seen from the side), ``person_<k>.{obj,ply,glb,npz,json}``; and for the run
``<out>/summary.json`` (per image: people, skipped people with reasons, errors). Every item is handled on its
own: an unreadable image or a keypoint entry without its image is reported and the others still finish.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from hap3d.data.io import DataError, load_image_rgb
from hap3d.infer.export import save_glb, save_obj, save_person_json, save_person_npz, save_ply
from hap3d.infer.predictor import PersonPrediction, Predictor
from hap3d.infer.render import Camera, person_colour, render_overlay, render_side_view
from hap3d.utils import atomic_write

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm"}


@dataclass
class ItemReport:
    name: str
    people: int = 0
    skipped: list[dict] = field(default_factory=list)
    error: str | None = None
    outputs: list[str] = field(default_factory=list)


def list_inputs(path: Path) -> tuple[list[Path], Path | None]:
    """Images of a file or folder, or (no images, the video file)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), None
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return [], path
    if path.is_file():
        return [path], None
    raise DataError(f"input not found: {path}")


def video_frames(path: Path):
    """(frame name, RGB uint8 frame) for each frame; names are '<stem>_<index:06d>'."""
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"cannot open video: {path}")
    i = 0
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        yield f"{path.stem}_{i:06d}", frame[:, :, ::-1].copy()
        i += 1
    cap.release()


def person_record(p: PersonPrediction) -> dict[str, np.ndarray]:
    return {
        "vertices": p.vertices, "joints3d": p.joints3d, "joints2d": p.joints2d, "smpl_pose": p.smpl_pose,
        "smpl_shape": p.smpl_shape, "cam_trans": p.cam_trans, "focal": np.float32(p.focal), "princpt": p.princpt,
        "bbox": p.bbox, "input_keypoints": p.input_keypoints, "joint_score": p.joint_score,
        "person_index": np.int64(p.person_index),
    }


def render_views(image: np.ndarray, people: list[PersonPrediction], faces: np.ndarray,
                 backend: str) -> tuple[np.ndarray, np.ndarray]:
    """The overlay on ``image`` (RGB uint8) and a 512 px side view; the input and a blank view without people."""
    if not people:
        return image, np.full((512, 512, 3), 255, np.uint8)
    meshes = [(p.vertices, faces, person_colour(p.person_index)) for p in people]
    cams = [Camera(p.focal, p.focal, float(p.princpt[0]), float(p.princpt[1])) for p in people]
    return render_overlay(image, meshes, cams, backend=backend), render_side_view(meshes, camera=cams[0], backend=backend)


def write_item(out: Path, views: tuple[np.ndarray, np.ndarray], people: list[PersonPrediction], faces: np.ndarray,
               formats: tuple[str, ...]) -> list[str]:
    """Write the two views as PNG and each person's mesh, NPZ and JSON under ``out``; returns the file names."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, img in zip(("overlay.png", "side.png"), views):
        atomic_write(out / name, lambda tmp, img=img: _imwrite(tmp, img))
        written.append(name)
    for p in people:
        stem = out / f"person_{p.person_index}"
        if "obj" in formats:
            save_obj(stem.with_suffix(".obj"), p.vertices, faces)
        if "ply" in formats:
            save_ply(stem.with_suffix(".ply"), p.vertices, faces)
        if "glb" in formats:
            save_glb(stem.with_suffix(".glb"), p.vertices, faces, person_colour(p.person_index))
        rec = person_record(p)
        save_person_npz(stem.with_suffix(".npz"), rec)
        save_person_json(stem.with_suffix(".json"), {k: v for k, v in rec.items() if k != "vertices"})
        written += [f"{stem.name}.{s}" for s in (*formats, "npz", "json")]
    return written


def _imwrite(tmp: str, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", rgb[:, :, ::-1])
    if not ok:
        raise DataError("PNG encoding failed")
    Path(tmp).write_bytes(buf.tobytes())


def run_demo(
    predictor: Predictor,
    inputs: Path,
    keypoints: dict[str, list[np.ndarray]],
    out: Path,
    formats: tuple[str, ...] = ("obj", "ply", "glb"),
    backend: str = "auto",
    progress: bool = True,
    keypoint_errors: dict[str, str] | None = None,
) -> tuple[int, list[ItemReport]]:
    """Process every input; returns (exit code: 0 all fine, 1 any item failed, reports).

    ``keypoint_errors``: image name -> why it has no keypoints (e.g. the detector failed on it), reported as is."""
    images, video = list_inputs(inputs)
    by_stem = {Path(k).stem: v for k, v in keypoints.items()} | {Path(k).name: v for k, v in keypoints.items()}
    reports: list[ItemReport] = []
    start = time.time()
    items = ((p.name, p) for p in images) if video is None else video_frames(video)
    total = len(images) if video is None else None
    seen = set()
    faces = predictor.faces
    for name, src in tqdm(items, total=total, desc="demo", unit="img", disable=not progress, dynamic_ncols=True):
        rep = ItemReport(name)
        reports.append(rep)
        stem = Path(name).stem
        seen.update({name, stem})
        people = by_stem.get(name, by_stem.get(stem))
        if people is None:
            why = (keypoint_errors or {}).get(name, (keypoint_errors or {}).get(stem))
            rep.error = f"no keypoints: {why}" if why else "no keypoints for this image in the keypoint file"
            continue
        try:
            image = src if isinstance(src, np.ndarray) else load_image_rgb(src)
        except DataError as err:
            rep.error = str(err)
            continue
        try:
            result = predictor.predict(image, people)
            rep.people = len(result.people)
            rep.skipped = [{"person": i, "reason": r} for i, r in result.skipped]
            if not result.people:
                rep.error = "no person could be reconstructed" if people else "no person in the keypoint file"
            views = render_views(image, result.people, faces, backend)
            rep.outputs = write_item(out / stem, views, result.people, faces, formats)
        except Exception as err:  # one bad item must not end the run; it is reported with its cause
            log.exception("failed on %s", name)
            rep.error = f"{type(err).__name__}: {err}"
    for key in keypoints:
        if key not in seen and Path(key).stem not in seen:
            reports.append(ItemReport(key, error="keypoints given for an image that is not among the inputs"))
    failed = [r for r in reports if r.error]
    summary = {"inputs": str(inputs), "seconds": time.time() - start, "items": [asdict(r) for r in reports],
               "num_items": len(reports), "num_failed": len(failed), "num_people": sum(r.people for r in reports)}
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "summary.json", lambda p: Path(p).write_text(json.dumps(summary, indent=2)))
    return (1 if failed else 0), reports
