"""What ``hap3d demo`` adds for a video: people tracked across frames, their outputs filtered over time, and per
track the sequence of outputs, an animation, and one overlay video of the whole clip.

Outputs, besides the per-frame folders (whose people then carry ``track_id`` and are drawn in their track's
colour): ``<out>/tracks/track_<id>.npz`` (``frame`` (N,) indices and every parameter of
:func:`hap3d.infer.demo.person_record` but the vertices, stacked over the N frames where the track was
reconstructed), ``track_<id>.glb`` and ``track_<id>.bvh`` (:mod:`hap3d.infer.animation`) and
``<out>/overlay.mp4`` (every frame, with the meshes where there were people). See docs/demo.md.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable

import cv2
import numpy as np

from hap3d import files
from hap3d.data.io import DataError
from hap3d.infer.animation import ANIMATION_FORMATS, SkeletonAnimation, save_animation_glb, save_bvh
from hap3d.infer.export import save_person_npz
from hap3d.infer.predictor import PersonPrediction, Predictor, PreparedPerson
from hap3d.infer.smoothing import PersonSmoother
from hap3d.infer.track import Tracker
from hap3d.render import person_colour
from hap3d.utils import atomic_write

DEFAULT_FPS = 30.0  # when the container declares none
OVERLAY_VIDEO = "overlay.mp4"
TRACKS = "tracks"


@dataclass
class VideoOptions:
    """Settings of the video outputs (``hap3d demo`` flags in brackets)."""

    smooth: bool = True  # One Euro filter per track (--no-smooth)
    min_cutoff: float = 1.0  # Hz (--smooth-min-cutoff)
    beta: float = 1.0  # (--smooth-beta)
    max_age: int = 30  # frames a hidden person keeps their track (--track-max-age)
    animation: tuple[str, ...] = ANIMATION_FORMATS  # per-track animation files (--animation)
    overlay_video: bool = True  # overlay.mp4 (--no-overlay-video)


def video_fps(path: Path) -> float:
    """The frame rate the container declares, else DEFAULT_FPS."""
    with files.c_path(path) as plain:
        cap = cv2.VideoCapture(plain)
        fps = float(cap.get(cv2.CAP_PROP_FPS)) if cap.isOpened() else 0.0
        cap.release()
    return fps if np.isfinite(fps) and fps > 0 else DEFAULT_FPS


def check_animation_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """The animation formats in order without repeats; an unknown one is an error."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in formats if f.strip()))
    unknown = [f for f in chosen if f not in ANIMATION_FORMATS]
    if unknown:
        raise ValueError(f"unknown animation format(s): {', '.join(unknown)}; valid: {', '.join(ANIMATION_FORMATS)}")
    return chosen


class VideoSession:
    """Tracks, filters and collects one video's people; frames must arrive in order (they do in ``run_demo``)."""

    def __init__(self, predictor: Predictor, options: VideoOptions, fps: float) -> None:
        self.predictor, self.options, self.fps = predictor, options, fps
        self.tracker = Tracker(options.max_age)
        self.smoothers: dict[int, PersonSmoother] = {}
        self.sequences: dict[int, list[tuple[int, PersonPrediction]]] = {}
        self.frame_dirs: dict[int, str] = {}  # frame index -> its output folder, once written

    def assign(self, frame: int, prepared: list[PreparedPerson]) -> dict[int, int]:
        """Person index -> track id for a frame's people, from their input keypoints (before the model runs)."""
        ids = self.tracker.update(frame, [p.keypoints for p in prepared])
        return {p.index: track for p, track in zip(prepared, ids)}

    def finish(self, frame: int, people: list[PersonPrediction], tracks: dict[int, int]) -> list[PersonPrediction]:
        """The frame's people with their track ids, filtered (and re-posed) when smoothing is on, and collected."""
        out = []
        for p in people:
            track = tracks[p.person_index]
            p = replace(p, track_id=track)
            if self.options.smooth:
                smoother = self.smoothers.setdefault(track, PersonSmoother(self.options.min_cutoff, self.options.beta))
                p = self.predictor.repose(smoother(p, frame / self.fps))
            self.sequences.setdefault(track, []).append((frame, p))
            out.append(p)
        return out

    def write(self, out: Path, video: Path) -> dict[str, dict]:
        """Per-track NPZ and animations, and the overlay video; returns the summary's ``tracks`` entry."""
        summary = {}
        for track, seq in sorted(self.sequences.items()):
            frames = np.array([f for f, _ in seq])
            stem = out / TRACKS / f"track_{track}"
            records = [_sequence_record(p) for _, p in seq]
            save_person_npz(stem.with_suffix(".npz"), {
                "frame": frames, "fps": np.float32(self.fps),
                **{k: np.stack([r[k] for r in records]) for k in records[0]}})
            written = [f"{TRACKS}/{stem.name}.npz"]
            if self.options.animation:
                anim = SkeletonAnimation.from_track(self.predictor.model.smpl, [p for _, p in seq], frames, self.fps)
                if "glb" in self.options.animation:
                    save_animation_glb(stem.with_suffix(".glb"), anim, person_colour(track))
                if "bvh" in self.options.animation:
                    save_bvh(stem.with_suffix(".bvh"), anim)
                written += [f"{TRACKS}/{stem.name}.{f}" for f in self.options.animation]
            summary[str(track)] = {"frames": len(frames), "first_frame": int(frames[0]),
                                   "last_frame": int(frames[-1]), "outputs": written}
        if self.options.overlay_video:
            write_overlay_video(out / OVERLAY_VIDEO, video, out, self.frame_dirs, self.fps)
        return summary


def _sequence_record(p: PersonPrediction) -> dict[str, np.ndarray]:
    from hap3d.infer.demo import person_record

    return {k: v for k, v in person_record(p).items() if k not in ("vertices", "track_id")}


def write_overlay_video(path: Path, video: Path, out: Path, frame_dirs: dict[int, str], fps: float) -> Path:
    """Every frame of ``video``, replaced by its ``overlay.png`` where one was written, as an MP4 (mp4v)."""
    from hap3d.infer.demo import video_frames

    with tempfile.TemporaryDirectory(prefix=".overlay-", dir=out) as tmp:
        encoded = os.path.join(tmp, "overlay.mp4")  # the writer picks the container from the suffix
        writer = None
        try:
            for index, (_, frame) in enumerate(video_frames(video)):
                overlay = out / frame_dirs[index] / "overlay.png" if index in frame_dirs else None
                bgr = files.read_image_bgr(overlay) if overlay is not None and overlay.is_file() else frame[:, :, ::-1]
                if writer is None:
                    writer = cv2.VideoWriter(encoded, cv2.VideoWriter_fourcc(*"mp4v"), fps, bgr.shape[1::-1])
                    if not writer.isOpened():
                        raise DataError(f"OpenCV cannot write an MP4 video here ({files.display(path)})")
                writer.write(np.ascontiguousarray(bgr))
        finally:
            if writer is not None:
                writer.release()
        return atomic_write(path, lambda dest: shutil.copyfile(encoded, dest))
