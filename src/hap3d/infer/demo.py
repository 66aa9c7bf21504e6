"""``hap3d demo``: images, folders or a video + 2D keypoints -> meshes, renders and exports, per person.

Per item ``<out>/<name>/``: ``overlay.png`` (meshes over the photo, one shared depth buffer), ``side.png`` (the
same people seen from the side), ``person_<k>.{obj,ply,glb,npz,json}``; and for the run ``<out>/summary.json``
(settings, and per item: status, people, skipped people with reasons, error). ``<name>`` is the image's stem, or
its full file name when two inputs share a stem (``a.jpg/``, ``a.png/``), or the frame name ``<video stem>_<index
:06d>``. Every item is handled on its own: an unreadable image or a keypoint entry without its image is reported
and the others still finish. People from consecutive items share model forwards of up to ``batch_size`` crops.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

import cv2
import numpy as np
from tqdm import tqdm

from hap3d.data.io import DataError, load_image_rgb
from hap3d.infer.export import save_glb, save_obj, save_person_json, save_person_npz, save_ply
from hap3d.infer.predictor import PersonPrediction, Predictor, PreparedPerson
from hap3d.infer.render import Camera, person_colour, render_overlay, render_side_view
from hap3d.utils import atomic_write

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
MESH_FORMATS = ("obj", "ply", "glb")


@dataclass
class ItemReport:
    """One input in summary.json. ``status``: 'ok'; 'failed' (``error`` says why; exit code 1); or 'skipped' (a
    video frame with nobody in the keypoints, ``note`` says so; frames without people are normal in a video)."""

    name: str
    status: str = "ok"
    people: int = 0
    skipped: list[dict] = field(default_factory=list)
    error: str | None = None
    note: str | None = None
    output_dir: str | None = None
    outputs: list[str] = field(default_factory=list)

    def fail(self, error: str) -> None:
        self.status, self.error = "failed", error


@dataclass
class _Pending:
    """An item waiting for the batched forward: only what rendering and writing it will need."""

    report: ItemReport
    image: np.ndarray
    prepared: list[PreparedPerson]
    skipped: list[tuple[int, str]]
    given: int  # people in the keypoints
    out_dir: Path


def check_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """The mesh formats in order without repeats; an unknown one is an error rather than silently not written."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in MESH_FORMATS]
    if unknown:
        raise ValueError(f"unknown mesh format(s): {', '.join(unknown)}; valid: {', '.join(MESH_FORMATS)}")
    return chosen


def list_inputs(path: Path) -> tuple[list[Path], Path | None]:
    """Images of a file or folder, or (no images, the video file)."""
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES), None
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return [], path
    if path.is_file():
        return [path], None
    raise DataError(f"input not found: {path}")


def video_frames(path: Path) -> Iterator[tuple[str, np.ndarray]]:
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


def frame_count(path: Path) -> int | None:
    """The frame count the container declares (for the progress bar), or None when it declares none."""
    cap = cv2.VideoCapture(str(path))
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if cap.isOpened() else 0
    cap.release()
    return count if count > 0 else None


class KeypointMatcher:
    """Finds an item's key in a keypoint file, whose naming rarely matches the inputs' exactly.

    An image matches by file name, then by stem, then (all-digit stems) by the COCO integer image id:
    ``000000397133.jpg`` finds ``'397133'``. A video frame ``<stem>_<index>`` matches by name, then by its index
    whatever the zero padding: the demo names frame 12 ``clip_000012``, OpenPose on the video ``clip_000000000012``.
    """

    def __init__(self, keys: Iterable[str], video_stem: str | None = None) -> None:
        self.video_stem = video_stem
        self.by_name: dict[str, str] = {}
        self.by_stem: dict[str, str] = {}
        self.by_frame: dict[int, str] = {}
        self.used: set[str] = set()
        for key in keys:
            path = Path(key)
            for table, alias in ((self.by_name, key), (self.by_name, path.name), (self.by_stem, path.stem)):
                table.setdefault(alias, key)
            for text in (key, path.stem):
                index = self._frame_index(text)
                if index is not None:
                    self.by_frame.setdefault(index, key)

    def _frame_index(self, text: str) -> int | None:
        prefix = f"{self.video_stem}_"
        digits = text[len(prefix):]
        return int(digits) if self.video_stem is not None and text.startswith(prefix) and digits.isdigit() else None

    def find(self, name: str) -> str | None:
        """The key for item ``name`` (and remember it was used), or None."""
        if self.video_stem is None:
            stem = Path(name).stem
            candidates = [name, stem] + ([str(int(stem))] if stem.isdigit() else [])
        else:  # a frame name is not a file name: 'my.clip_000001' has no suffix
            candidates = [name]
        key = next((t[c] for c in candidates for t in (self.by_name, self.by_stem) if c in t), None)
        if key is None and self.video_stem is not None:
            key = self.by_frame.get(self._frame_index(name))
        if key is not None:
            self.used.add(key)
        return key


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


def _items(images: list[Path], video: Path | None) -> Iterator[tuple[str, str, Path | np.ndarray]]:
    """(item name, output folder name, image path or RGB frame); inputs sharing a stem keep their full names."""
    if video is not None:
        for name, frame in video_frames(video):
            yield name, name, frame
        return
    stems = Counter(p.stem for p in images)
    for p in images:
        yield p.name, p.stem if stems[p.stem] == 1 else p.name, p


def _record_failure(rep: ItemReport, err: BaseException) -> None:
    """A DataError's message says it all; anything else is unexpected, so its traceback goes to the log."""
    if isinstance(err, DataError):
        rep.fail(str(err))
    else:
        log.error("failed on %s", rep.name, exc_info=err)
        rep.fail(f"{type(err).__name__}: {err}")


def _forward(predictor: Predictor, batch: list[_Pending]) -> list[list[PersonPrediction] | Exception]:
    """Each item's people from one forward over the whole batch. If that fails, each item runs alone, so the error
    lands on the item that caused it and the others still finish."""
    try:
        flat = predictor.run_prepared([p for item in batch for p in item.prepared])
    except Exception as err:  # attributed to an item below
        if len(batch) == 1:
            return [err]
        log.warning("a batched forward over %d items failed (%s); running them one by one", len(batch), err)
        results: list[list[PersonPrediction] | Exception] = []
        for item in batch:
            try:
                results.append(predictor.run_prepared(item.prepared))
            except Exception as item_err:  # reported on its item
                results.append(item_err)
        return results
    ends = np.cumsum([len(item.prepared) for item in batch])
    return [flat[end - len(item.prepared):end] for item, end in zip(batch, ends)]


def _flush(predictor: Predictor, batch: list[_Pending], formats: tuple[str, ...], backend: str) -> None:
    """Run the batch's forward, then render and write each item; a failure is reported on its item only."""
    if not batch:
        return
    for item, result in zip(batch, _forward(predictor, batch)):
        try:
            if isinstance(result, Exception):
                raise result
            _finish(item, result, predictor.faces, formats, backend)
        except Exception as err:  # one bad item must not end the run; it is reported with its cause
            _record_failure(item.report, err)


def _finish(item: _Pending, people: list[PersonPrediction], faces: np.ndarray, formats: tuple[str, ...],
            backend: str) -> None:
    rep = item.report
    rep.people = len(people)
    rep.skipped = [{"person": i, "reason": r} for i, r in item.skipped]
    if not people:
        reasons = "; ".join(f"person {i}: {r}" for i, r in item.skipped)
        rep.fail(f"no person could be reconstructed: {reasons}" if item.given else "no person in the keypoint file")
    views = render_views(item.image, people, faces, backend)
    rep.outputs = write_item(item.out_dir, views, people, faces, formats)


def run_demo(
    predictor: Predictor,
    inputs: Path,
    keypoints: Mapping[str, list[np.ndarray]],
    out: Path,
    formats: Iterable[str] = MESH_FORMATS,
    backend: str = "auto",
    progress: bool = True,
    keypoint_errors: Mapping[str, str] | None = None,
    settings: Mapping[str, Any] | None = None,
) -> tuple[int, list[ItemReport]]:
    """Process every input; returns (exit code: 0 all fine, 1 any item failed, reports).

    ``keypoint_errors``: image name -> why it has no keypoints (``read_keypoints(...).errors``, or the detector's
    failures), reported as is. ``settings`` (e.g. the checkpoint) go into summary.json with the predictor's."""
    formats = check_formats(formats)
    errors = dict(keypoint_errors or {})
    images, video = list_inputs(inputs)
    matcher = KeypointMatcher([*keypoints, *errors], None if video is None else video.stem)
    reports: list[ItemReport] = []
    start = time.time()
    batch: list[_Pending] = []  # consecutive items whose crops share forwards; at most batch_size crops
    total = len(images) if video is None else frame_count(video)
    unit = "img" if video is None else "frame"
    for name, out_name, src in tqdm(_items(images, video), total=total, desc="demo", unit=unit,
                                    disable=not progress, dynamic_ncols=True):
        rep = ItemReport(name)
        reports.append(rep)
        key = matcher.find(name)
        if key in errors:
            rep.fail(f"no keypoints: {errors[key]}")
            continue
        people = None if key is None else keypoints[key]
        if video is not None and not people:  # people leave the picture: not a failure
            rep.status = "skipped"
            rep.note = "no keypoints for this frame" if people is None else "nobody in this frame's keypoints"
            continue
        if people is None:
            rep.fail("no keypoints for this image in the keypoint file")
            continue
        try:
            image = src if isinstance(src, np.ndarray) else load_image_rgb(src)
            prepared, skipped = predictor.prepare(image, people)
        except Exception as err:  # one bad item must not end the run; it is reported with its cause
            _record_failure(rep, err)
            continue
        rep.output_dir = out_name
        item = _Pending(rep, image, prepared, skipped, len(people), out / out_name)
        if not prepared:  # nothing for the model: write it now rather than hold its image
            _flush(predictor, [item], formats, backend)
            continue
        if batch and sum(len(b.prepared) for b in batch) + len(prepared) > predictor.batch_size:
            _flush(predictor, batch, formats, backend)
            batch = []
        batch.append(item)
        if sum(len(b.prepared) for b in batch) >= predictor.batch_size:
            _flush(predictor, batch, formats, backend)
            batch = []
    _flush(predictor, batch, formats, backend)
    for key in [*keypoints, *errors]:
        if key not in matcher.used:
            reports.append(ItemReport(key, error="keypoints given for an image that is not among the inputs",
                                      status="failed"))
    failed = [r for r in reports if r.status == "failed"]
    summary = {
        "inputs": str(inputs), "seconds": time.time() - start,
        "settings": {**(settings or {}), "amp": predictor.amp, "device": str(predictor.device),
                     "batch_size": predictor.batch_size, "formats": list(formats)},
        "num_items": len(reports), "num_failed": len(failed),
        "num_skipped": sum(r.status == "skipped" for r in reports), "num_people": sum(r.people for r in reports),
        "items": [asdict(r) for r in reports],
    }
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "summary.json", lambda p: Path(p).write_text(json.dumps(summary, indent=2)))
    return (1 if failed else 0), reports
