"""Inference throughput of `hap3d demo`, on CPU in fp32 and bf16: images/s with the share of each stage (decode,
crop, model, render, write in the demo's default mesh formats) one image per forward, which shows that the model
dominates, not rendering or I/O; then `run_demo` itself end to end on the same images, where the people of
consecutive images share forwards of up to batch_size crops (its default), so that batching is measured too.
Then the video case: a clip of two people walking apart, end to end with multi-person detection (MediaPipe, when
a python with it is found; else the known keypoints, said so), tracking, smoothing, per-track exports and the
overlay video, in frames/s with the share of each stage.

    python benchmarks/bench_infer.py [--images 4] [--depth 12] [--backend auto] [--video-frames 8]
"""

from __future__ import annotations

import argparse
import functools
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Callable

import cv2
import numpy as np
import torch

from hap3d.config import ModelConfig
from hap3d.data.io import load_image_rgb
from hap3d.infer import demo, detect, smoothing, video
from hap3d.infer.demo import MESH_FORMATS, render_views, run_demo, write_item
from hap3d.infer.predictor import Predictor
from hap3d.model import build_model
from hap3d.render import gl_available
from hap3d.synth import write_body_model_dir
from hap3d.utils import Hap3dError

KEYPOINTS = np.array([[222, 125, .95], [245, 108, .9], [200, 108, .9], [280, 120, .8], [165, 120, .8], [340, 300, .85],
                      [85, 300, .85], [352, 450, .7], [45, 440, .7], [300, 500, .5], [150, 495, .6], [300, 560, .5],
                      [150, 560, .5], [0, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backend", default="auto", choices=("auto", "raster", "egl"))
    ap.add_argument("--video-frames", type=int, default=8, help="frames of the video case (0: skip it)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        body = write_body_model_dir(tmp / "body")
        rng = np.random.default_rng(0)
        (tmp / "images").mkdir()
        paths = []
        for i in range(args.images):
            p = tmp / "images" / f"img_{i}.jpg"
            cv2.imwrite(str(p), rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8))
            paths.append(p)
        two_people = [KEYPOINTS, KEYPOINTS + np.array([500, 0, 0], np.float32)]
        model = build_model(ModelConfig(depth=args.depth), body)
        backend = ("egl" if gl_available() else "raster") if args.backend == "auto" else args.backend
        print(f"{args.images} images 1280x720, 2 people each, ViT depth {args.depth}, {args.threads} threads, "
              f"render backend {backend}")
        for amp in ("none", "bf16"):
            predictor = Predictor(model, "cpu", amp=amp)
            predictor.run_prepared(predictor.prepare(load_image_rgb(paths[0]), [KEYPOINTS])[0])  # warm-up, untimed
            stages: dict[str, float] = defaultdict(float)
            start = time.perf_counter()
            for p in paths:
                t0 = time.perf_counter()
                img = load_image_rgb(p)
                t1 = time.perf_counter()
                prepared, _ = predictor.prepare(img, two_people)
                t2 = time.perf_counter()
                people = predictor.run_prepared(prepared)
                t3 = time.perf_counter()
                views = render_views(img, people, predictor.faces, backend)
                t4 = time.perf_counter()
                write_item(tmp / "out" / p.stem, views, people, predictor.faces, MESH_FORMATS)
                t5 = time.perf_counter()
                for k, v in zip(("decode", "crop", "model", "render", "write"), np.diff([t0, t1, t2, t3, t4, t5])):
                    stages[k] += v
            total = time.perf_counter() - start
            split = ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items())
            label = "fp32" if amp == "none" else amp
            print(f"{label}: {args.images / total:.3f} images/s one image per forward  [{split}]")
            start = time.perf_counter()
            code, reports = run_demo(predictor, tmp / "images", {p.name: two_people for p in paths},
                                     tmp / f"demo_{amp}", backend=backend, progress=False)
            total = time.perf_counter() - start
            if code != 0:
                raise SystemExit("run_demo failed: " + "; ".join(f"{r.name}: {r.error}" for r in reports if r.error))
            print(f"{label}: {args.images / total:.3f} images/s run_demo end to end (batch_size "
                  f"{predictor.batch_size}: up to {predictor.batch_size // len(two_people)} images per forward)")
        if args.video_frames > 0:
            bench_video(Predictor(model, "cpu", amp="auto"), tmp, args.video_frames, backend)


def _two_people_video(path: Path, frames: int) -> dict[str, list[np.ndarray]]:
    """A 1280x720 MJPG clip of two astronaut photos walking apart, and their keypoints per frame."""
    from skimage.data import astronaut

    photo = astronaut()[:, :, ::-1]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25, (1280, 720))
    keypoints = {}
    for f in range(frames):
        frame = np.full((720, 1280, 3), 90, np.uint8)
        left, right = 100 - 4 * f, 660 + 4 * f
        frame[100:612, max(left, 0):left + 512] = photo[:, max(-left, 0):]
        frame[100:612, right:min(right + 512, 1280)] = photo[:, :1280 - right]
        writer.write(frame)
        keypoints[f"{path.stem}_{f:06d}"] = [KEYPOINTS + np.array([x, 100, 0], np.float32) for x in (left, right)]
    writer.release()
    return keypoints


def _timed(stages: dict[str, float], stage: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            stages[stage] += time.perf_counter() - t0
    return wrapper


def bench_video(predictor: Predictor, tmp: Path, frames: int, backend: str) -> None:
    """Frames/s of the video path end to end, with each stage's share (the rest: decoding and cropping)."""
    clip = tmp / "walk.avi"
    keypoints = _two_people_video(clip, frames)
    stages: dict[str, float] = defaultdict(float)
    start = time.perf_counter()
    try:
        found = detect.MediaPipeDetector().detect_path(clip)
        keypoints, source = found.keypoints, "MediaPipe multi-person detection"
    except Hap3dError as err:
        source = f"the known keypoints (no detection: {str(err).splitlines()[0]})"
    stages["detect"] = time.perf_counter() - start
    patches = [(video.VideoSession, "assign", "track"), (smoothing.PersonSmoother, "__call__", "smooth"),
               (Predictor, "repose", "smooth"), (Predictor, "run_prepared", "model"), (demo, "render_views", "render"),
               (demo, "write_item", "write"), (video.VideoSession, "write", "tracks+mp4")]
    originals = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    for owner, name, stage in patches:
        setattr(owner, name, _timed(stages, stage, getattr(owner, name)))
    try:
        t0 = time.perf_counter()
        code, reports = run_demo(predictor, clip, keypoints, tmp / "video_out", formats=(), backend=backend,
                                 progress=False)
        stages["demo"] = time.perf_counter() - t0
    finally:
        for owner, name, fn in originals:
            setattr(owner, name, fn)
    if code != 0:
        raise SystemExit("video run failed: " + "; ".join(f"{r.name}: {r.error}" for r in reports if r.error))
    total = stages["detect"] + stages.pop("demo")
    stages["decode+crop+other"] = total - sum(stages.values())
    split = ", ".join(f"{k} {v / total:.0%}" for k, v in stages.items())
    print(f"video, {frames} frames 1280x720, 2 people, keypoints from {source}, amp {predictor.amp}: "
          f"{frames / total:.3f} frames/s end to end  [{split}]")


if __name__ == "__main__":
    main()
