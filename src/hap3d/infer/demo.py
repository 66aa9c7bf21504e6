"""``hap3d demo``: images, folders or a video + 2D keypoints -> meshes, renders and exports, per person.

Per item ``<out>/<name>/``: ``overlay.png`` (meshes over the photo, one shared depth buffer), ``side.png`` (the
same people seen from the side), ``person_<k>.{obj,ply,glb,npz,json}``; and for the run ``<out>/summary.json``
(settings, and per item: status, people, skipped people with reasons, error). For a video, people are also tracked
across frames, filtered over time and exported per track (:mod:`hap3d.infer.video`). ``<name>`` is the image's stem
(see :func:`folder_names` for inputs that would share a folder), or the frame name ``<video stem>_<index:06d>``.
Every item is handled on its own: an unreadable image or a keypoint entry without its image is reported and the
others still finish. People from consecutive items share model forwards of up to ``batch_size`` crops. A run that
stops part-way (Ctrl-C, a video that cannot be read on) still writes summary.json, marked ``interrupted``.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping

import cv2
import numpy as np
from tqdm import tqdm

from hap3d import files
from hap3d.data.io import DataError, load_image_rgb
from hap3d.infer.export import save_glb, save_obj, save_person_json, save_person_npz, save_ply
from hap3d.infer.predictor import PersonPrediction, Predictor, PreparedPerson
from hap3d.render import Camera, person_colour, render_overlay, render_side_view
from hap3d.utils import atomic_write

if TYPE_CHECKING:
    from hap3d.infer.video import VideoOptions, VideoSession

log = logging.getLogger(__name__)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
MESH_FORMATS = ("obj", "ply", "glb")
SUMMARY = "summary.json"


@dataclass
class ItemReport:
    """One input in summary.json. ``status``: 'ok'; 'failed' (``error`` says why; exit code 1); or 'skipped' (a
    video frame with nobody in the keypoints, or nobody reconstructable, ``note`` says why; frames without people
    are normal in a video). ``people`` counts only people whose files were written."""

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
    given: int  # people in the keypoints
    out_dir: Path
    video: VideoSession | None = None
    frame: int = -1  # in a video: the frame index
    tracks: dict[int, int] = field(default_factory=dict)  # in a video: person index -> track id


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
    with files.c_path(path) as plain:  # OpenCV's video I/O takes the path as a C string
        cap = cv2.VideoCapture(plain)
        if not cap.isOpened():
            raise DataError(f"cannot open video: {files.display(path)}")
        i = 0
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            yield f"{path.stem}_{i:06d}", frame[:, :, ::-1].copy()
            i += 1
        cap.release()


def frame_count(path: Path) -> int | None:
    """The frame count the container declares (for the progress bar), or None when it declares none. A video
    OpenCV cannot open is an error here, before any progress bar."""
    with files.c_path(path) as plain:
        cap = cv2.VideoCapture(plain)
        if not cap.isOpened():
            raise DataError(f"cannot open video: {files.display(path)}")
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        cap.release()
    return count if count > 0 else None


class KeypointMatcher:
    """Finds an item's key in a keypoint file, whose naming rarely matches the inputs' exactly.

    An image matches a key equal to its file name, else a key whose last path part is (``sub/a.jpg``); else a key
    without an image suffix equal to its stem (``a`` for ``a.jpg``; OpenPose's ``a`` from ``a_keypoints.json``);
    else, for an all-digit stem, an all-digit key without suffix by value: the COCO image id (``000000397133.jpg``
    finds ``'397133'``). A key with an image suffix never matches another file: ``a.png``'s people are not
    ``a.jpg``'s.

    A video frame ``<stem>_<index>`` matches by name, then by its index whatever the zero padding or image suffix:
    the demo names frame 12 ``clip_000012``, OpenPose on the video ``clip_000000000012``.

    Nothing is shared silently: when several keys match an item at the same rule, or one key matches several of
    ``items`` (the images, known up front), :meth:`find` raises a DataError naming them, for each such item.
    """

    def __init__(self, keys: Iterable[str], video_stem: str | None = None, items: Iterable[str] = ()) -> None:
        self.video_stem = video_stem
        self.used: set[str] = set()
        self._rules: list[dict[object, list[str]]] = [{}, {}, {}, {}]  # key, its file name, stem, number
        for key in dict.fromkeys(keys):
            for rule, alias in self._key_aliases(key):
                self._rules[rule].setdefault(alias, []).append(key)
        claims: dict[str, list[str]] = {}
        for item in items:
            found = self._keys_for(item)
            if len(found) == 1:
                claims.setdefault(found[0], []).append(item)
        self._shared = {key: names for key, names in claims.items() if len(names) > 1}

    def _key_aliases(self, key: str) -> Iterator[tuple[int, object]]:
        name = Path(key).name
        bare = _without_image_suffix(name)
        yield 0, key
        yield 1, name
        if self.video_stem is not None:
            index = self._frame_index(bare)
            if index is not None:
                yield 3, index
        elif bare == name:  # a key with an image suffix names that file only
            yield 2, name
            if _is_digits(name):
                yield 3, int(name)

    def _item_aliases(self, item: str) -> Iterator[tuple[int, object]]:
        yield 0, item
        yield 1, item
        if self.video_stem is not None:  # a frame name is not a file name: 'my.clip_000001' has no suffix
            index = self._frame_index(item)
            if index is not None:
                yield 3, index
            return
        stem = Path(item).stem
        yield 2, stem
        if _is_digits(stem):
            yield 3, int(stem)

    def _frame_index(self, text: str) -> int | None:
        prefix = f"{self.video_stem}_"
        digits = text[len(prefix):]
        return int(digits) if text.startswith(prefix) and _is_digits(digits) else None

    def _keys_for(self, item: str) -> list[str]:
        """The keys of the first rule that matches ``item`` at all (usually one)."""
        for rule, alias in self._item_aliases(item):
            found = self._rules[rule].get(alias)
            if found:
                return found
        return []

    def find(self, name: str) -> str | None:
        """The key for item ``name`` (remembered as used, as are ambiguous ones: they are reported here), or None."""
        found = self._keys_for(name)
        self.used.update(found)
        if len(found) > 1:
            raise DataError(f"several keypoint entries match this item: {', '.join(map(repr, found))}; "
                            "keep one, or key it by the item's full file name")
        if not found:
            return None
        key = found[0]
        if key in self._shared:
            raise DataError(f"keypoint entry {key!r} matches several inputs ({', '.join(self._shared[key])}), so "
                            "it is used for none of them; key it by the full file name of the image it belongs to")
        return key


def _without_image_suffix(name: str) -> str:
    suffix = Path(name).suffix
    return name[: -len(suffix)] if suffix.lower() in IMAGE_SUFFIXES else name


def _is_digits(text: str) -> bool:
    """Whether ``int(text)`` reads ``text`` as digits: ``str.isdigit`` alone accepts '²', which int() rejects."""
    return text.isascii() and text.isdigit()


def colour(p: PersonPrediction) -> tuple[float, float, float]:
    """A person's colour: their track's in a video (stable over frames), else their index's."""
    return person_colour(p.track_id if p.track_id >= 0 else p.person_index)


def person_record(p: PersonPrediction) -> dict[str, np.ndarray]:
    track = {"track_id": np.int64(p.track_id)} if p.track_id >= 0 else {}
    return {**track,
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
    meshes = [(p.vertices, faces, colour(p)) for p in people]
    cams = [Camera(p.focal, p.focal, float(p.princpt[0]), float(p.princpt[1])) for p in people]
    overlay = render_overlay(image, meshes, cams, backend=backend)
    return overlay, render_side_view(meshes, camera=cams[0], backend=backend)


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
            save_glb(stem.with_suffix(".glb"), p.vertices, faces, colour(p))
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


def folder_names(images: list[Path]) -> list[str]:
    """Each image's output folder, distinct even where the filesystem ignores case: its stem; its full file name
    when that stem is shared (``a.jpg/``, ``a.png/``) or would still clash (``a.jpg.png`` beside ``a.jpg``, or
    ``summary.json.png``); then a numeric suffix (``photo.jpg_2/`` for ``Photo.JPG`` beside ``photo.jpg``)."""
    stem = {p: files.safe_name(p.stem) for p in images}  # '...jpg' has the stem '..': never a folder name
    full = {p: files.safe_name(p.name) for p in images}
    stems = Counter(stem[p].casefold() for p in images)
    names = [stem[p] if stems[stem[p].casefold()] == 1 else full[p] for p in images]
    clashes = Counter(n.casefold() for n in [*names, SUMMARY])
    names = [full[p] if clashes[n.casefold()] > 1 else n for p, n in zip(images, names)]
    avoid = {n.casefold() for n in names} | {SUMMARY}  # a suffixed name must not take another input's own
    seen = {SUMMARY}
    unique = []
    for n in names:
        if n.casefold() in seen:
            n = next(c for k in itertools.count(2) if (c := f"{n}_{k}").casefold() not in avoid)
            avoid.add(n.casefold())
        seen.add(n.casefold())
        unique.append(n)
    return unique


def _items(images: list[Path], video: Path | None) -> Iterator[tuple[str, str, Path | np.ndarray]]:
    """(item name, output folder name, image path or RGB frame)."""
    if video is not None:
        for name, frame in video_frames(video):
            yield name, files.safe_name(name), frame
        return
    yield from ((p.name, folder, p) for p, folder in zip(images, folder_names(images)))


def _record_failure(rep: ItemReport, err: BaseException) -> None:
    """A DataError's message says it all; anything else is unexpected, so its traceback goes to the log."""
    if isinstance(err, DataError):
        rep.fail(str(err))
    else:
        log.error("failed on %s", rep.name, exc_info=err)
        rep.fail(f"{type(err).__name__}: {err}")


def _run(predictor: Predictor, prepared: list[PreparedPerson]) -> list[PersonPrediction]:
    """``run_prepared``, checked: results go to items by position, so one missing would shift later items' people."""
    people = predictor.run_prepared(prepared)
    got, want = [p.person_index for p in people], [p.index for p in prepared]
    if got != want:
        raise RuntimeError(f"internal error: the predictor returned {len(got)} results (person indices {got}) for "
                           f"{len(want)} crops (person indices {want}); results cannot be matched to their images")
    return people


def _forward(predictor: Predictor, batch: list[_Pending]) -> list[list[PersonPrediction] | Exception]:
    """Each item's people from one forward over the whole batch. If that fails, each item runs alone, so the error
    lands on the item that caused it and the others still finish."""
    try:
        flat = _run(predictor, [p for item in batch for p in item.prepared])
    except Exception as err:  # attributed to an item below
        if len(batch) == 1:
            return [err]
        log.warning("a batched forward over %d items failed (%s); running them one by one", len(batch), err)
        results: list[list[PersonPrediction] | Exception] = []
        for item in batch:
            try:
                results.append(_run(predictor, item.prepared))
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


def _reasons(rep: ItemReport) -> str:
    return "; ".join(f"person {s['person']}: {s['reason']}" for s in rep.skipped)


def _non_finite(p: PersonPrediction) -> list[str]:
    """The outputs of ``p`` holding NaN or Inf (a diverged or broken model): such a person is not a result."""
    return [name for name in ("vertices", "joints3d", "cam_trans", "smpl_pose", "smpl_shape")
            if not np.isfinite(getattr(p, name)).all()]


def _finish(item: _Pending, people: list[PersonPrediction], faces: np.ndarray, formats: tuple[str, ...],
            backend: str) -> None:
    rep = item.report
    broken = {p.person_index: _non_finite(p) for p in people if _non_finite(p)}
    if broken:
        people = [p for p in people if p.person_index not in broken]
        rep.skipped += [{"person": i, "reason": f"non-finite model output ({', '.join(n)})"}
                        for i, n in broken.items()]
        rep.fail("the model returned NaN or Inf for " + "; ".join(
            f"person {i} ({', '.join(n)})" for i, n in broken.items()))
    if item.video is not None:
        people = item.video.finish(item.frame, people, item.tracks)
        item.video.frame_dirs[item.frame] = item.out_dir.name
    if not people and not broken:
        rep.fail(f"no person could be reconstructed: {_reasons(rep)}" if item.given
                 else "no person in the keypoint file")
    views = render_views(item.image, people, faces, backend)
    rep.outputs = write_item(item.out_dir, views, people, faces, formats)
    rep.people = len(people)  # only now: num_people counts people whose files exist


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
    video_options: VideoOptions | None = None,
) -> tuple[int, list[ItemReport]]:
    """Process every input; returns (exit code: 0 all fine, 1 any item failed, reports).

    ``video_options``: tracking, filtering and per-track exports of a video input (default: ``VideoOptions()``).

    ``keypoint_errors``: image name -> why it has no keypoints (by default ``keypoints.errors`` of
    :func:`read_keypoints`; or the detector's failures), reported as is. ``settings`` (e.g. the checkpoint) go into
    summary.json with the predictor's. An exception that ends the run (KeyboardInterrupt, a video that cannot be
    read on) is re-raised after summary.json records what was done, with ``interrupted`` and the ``error``."""
    formats = check_formats(formats)
    errors = dict(getattr(keypoints, "errors", {}) if keypoint_errors is None else keypoint_errors)
    images, video = list_inputs(inputs)
    reports: list[ItemReport] = []
    start = time.time()
    session = None
    if video is not None:
        from hap3d.infer.video import VideoOptions, VideoSession, video_fps

        session = VideoSession(predictor, video_options or VideoOptions(), video_fps(video))
    tracks: dict[str, dict] = {}

    def write_summary(stopped: BaseException | None) -> None:
        failed = sum(r.status == "failed" for r in reports)
        summary = {
            "inputs": str(inputs), "seconds": time.time() - start,
            "interrupted": stopped is not None,
            "error": None if stopped is None else type(stopped).__name__ + (f": {stopped}" if str(stopped) else ""),
            "settings": {**(settings or {}), "amp": predictor.amp, "device": str(predictor.device),
                         "batch_size": predictor.batch_size, "formats": list(formats)},
            "num_items": len(reports), "num_failed": failed,
            "num_skipped": sum(r.status == "skipped" for r in reports), "num_people": sum(r.people for r in reports),
            "items": [asdict(r) for r in reports],
        }
        if session is not None:
            summary["settings"]["video"] = {"fps": session.fps, **asdict(session.options)}
            summary["tracks"] = tracks
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / SUMMARY, lambda p: Path(p).write_text(json.dumps(summary, indent=2)))

    try:
        _process(predictor, images, video, keypoints, errors, out, formats, backend, progress, reports, session)
        if session is not None:
            tracks.update(session.write(out, video))
    except BaseException as err:  # Ctrl-C, or a video that stops reading: record what was done, then stop
        for r in reports:
            if r.status == "ok" and not r.outputs:
                r.fail("not finished: the run stopped before this item was written")
        try:
            write_summary(err)
        except OSError as write_err:  # the run's own error is the one to report
            log.error("could not write %s: %s", out / SUMMARY, write_err)
        raise
    write_summary(None)
    return (1 if any(r.status == "failed" for r in reports) else 0), reports


def _process(predictor: Predictor, images: list[Path], video: Path | None, keypoints: Mapping[str, list[np.ndarray]],
             errors: Mapping[str, str], out: Path, formats: tuple[str, ...], backend: str, progress: bool,
             reports: list[ItemReport], session: VideoSession | None) -> None:
    """The items of :func:`run_demo`, each appended to ``reports`` as it starts, then the unused keypoint keys."""
    matcher = KeypointMatcher([*keypoints, *errors], None if video is None else video.stem, [p.name for p in images])
    batch: list[_Pending] = []  # consecutive items whose crops share forwards; at most batch_size crops
    total = len(images) if video is None else frame_count(video)
    unit = "img" if video is None else "frame"
    for frame, (name, out_name, src) in enumerate(tqdm(_items(images, video), total=total, desc="demo", unit=unit,
                                                       disable=not progress, dynamic_ncols=True)):
        rep = ItemReport(name)
        reports.append(rep)
        try:
            key = matcher.find(name)
        except DataError as err:
            rep.fail(str(err))
            continue
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
        rep.skipped = [{"person": i, "reason": r} for i, r in skipped]
        if video is not None and not prepared:  # only unsure or off-picture detections: an empty frame, no failure
            rep.status, rep.note = "skipped", f"nobody to reconstruct: {_reasons(rep)}"
            continue
        rep.output_dir = out_name
        item = _Pending(rep, image, prepared, len(people), out / out_name)
        if session is not None:
            item.video, item.frame, item.tracks = session, frame, session.assign(frame, prepared)
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
    unused = ("keypoints given for an image that is not among the inputs" if video is None else
              f"keypoints given for no frame of {video.name} (frames are '{video.stem}_<index>', counting from 0)")
    reports.extend(ItemReport(key, status="failed", error=unused) for key in [*keypoints, *errors]
                   if key not in matcher.used)
