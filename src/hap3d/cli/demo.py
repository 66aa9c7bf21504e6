"""``hap3d demo`` and ``hap3d detect``: meshes, renders and exports for images and videos, and 2D keypoints."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from hap3d.cli.common import positive_int, run_config_of
from hap3d.files import check_output_dir
from hap3d.utils import Hap3dError

if TYPE_CHECKING:
    from hap3d.infer.detect import Detections


def _body_model_dir(args: argparse.Namespace) -> tuple[Path, str]:
    """The body model and where it came from: ``--body-model-dir``; else, for a checkpoint inside a run's
    ``checkpoints/`` folder, that run's ``data.body_model_dir`` (the model it was trained with) when it exists; else
    a procedural stand-in written into ``--out``, with a warning."""
    if args.body_model_dir:
        return Path(args.body_model_dir), "--body-model-dir"
    run_config = run_config_of(args.ckpt) if args.ckpt else None
    if run_config is not None:
        from hap3d.config import load_config

        body = Path(load_config(run_config).data.body_model_dir)
        if (body / "smpl").is_dir():
            print(f"body model: {body} (data.body_model_dir of the checkpoint's run, {run_config})")
            return body, str(run_config)
    from hap3d.synth import write_body_model_dir

    body = Path(args.out) / "procedural_body_model"
    if not (body / "smpl").is_dir():
        write_body_model_dir(body)
    print(f"warning: no --body-model-dir; using the procedural body model in {body} (not SMPL)", file=sys.stderr)
    return body, "procedural"


def _cmd_demo(args: argparse.Namespace) -> int:
    from hap3d.infer.demo import MESH_FORMATS, run_demo
    from hap3d.infer.keypoints import read_coco_image_names, read_keypoints
    from hap3d.infer.predictor import Predictor, load_predictor_model

    if args.ckpt and not Path(args.ckpt).is_file():  # before any work (detection, a procedural body model, ...)
        raise Hap3dError(f"checkpoint not found: {args.ckpt} (--ckpt)")
    from hap3d.engine.distributed import resolve_device

    device = resolve_device(args.device)  # a missing GPU or an unwritable --out: said before any work
    check_output_dir(args.out)
    if args.coco_annotations and not args.keypoints:
        print("hap3d: error: --coco-annotations names the images of --keypoints (COCO results by image_id); "
              "it does not apply to --detector", file=sys.stderr)
        return 2
    if args.detector:
        found = _detect(args)
        keypoints, keypoint_errors = found.keypoints, found.errors
    else:
        names = read_coco_image_names(args.coco_annotations) if args.coco_annotations else None
        keypoints = read_keypoints(args.keypoints, names)
        keypoint_errors = keypoints.errors
    body, body_source = _body_model_dir(args)
    model = load_predictor_model(args.ckpt, body, random_weights=args.random_weights)
    predictor = Predictor(model, device, amp=args.amp, batch_size=args.batch_size, runtime=args.runtime)
    settings = {
        "checkpoint": str(Path(args.ckpt).resolve()) if args.ckpt else "random weights",
        "body_model_dir": str(Path(body).resolve()) if body_source != "procedural"
        else f"procedural ({Path(body).resolve()})",
    }
    from hap3d.infer.video import ANIMATION_FORMATS, VideoOptions

    video = VideoOptions(smooth=not args.no_smooth, min_cutoff=args.smooth_min_cutoff, beta=args.smooth_beta,
                         max_age=args.track_max_age, overlay_video=not args.no_overlay_video,
                         animation=ANIMATION_FORMATS if args.animation is None else args.animation)
    code, reports = run_demo(predictor, Path(args.input), keypoints, Path(args.out),
                             MESH_FORMATS if args.formats is None else args.formats, backend=args.backend,
                             keypoint_errors=keypoint_errors, settings=settings, video_options=video)
    for r in reports:
        if r.error:
            print(f"  {r.name}: {r.error}", file=sys.stderr)
    skipped = sum(r.status == "skipped" for r in reports)
    print(f"{sum(r.people for r in reports)} people in {len(reports)} items"
          + (f" ({skipped} frames with nobody to reconstruct skipped)" if skipped else "")
          + f"; outputs in {args.out}")
    return code


def _mesh_formats(text: str) -> tuple[str, ...]:
    from hap3d.infer.demo import check_formats

    try:
        return check_formats(text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _animation_formats(text: str) -> tuple[str, ...]:
    from hap3d.infer.video import check_animation_formats

    try:
        return check_animation_formats(text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _finite(text: str, zero_ok: bool) -> float:
    what = "a number >= 0" if zero_ok else "a positive number"
    try:
        value = float(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from err
    if not (value >= 0 if zero_ok else value > 0) or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def _positive_float(text: str) -> float:
    return _finite(text, zero_ok=False)


def _non_negative_float(text: str) -> float:
    return _finite(text, zero_ok=True)


def _non_negative_int(text: str) -> int:
    return 0 if text.strip() == "0" else positive_int(text)


def _add_video_options(parser: argparse.ArgumentParser) -> None:
    """Tracking, filtering and per-track exports of a video input (docs/demo.md)."""
    v = parser.add_argument_group("video input")
    v.add_argument("--no-smooth", action="store_true",
                   help="do not filter each track's pose, shape, camera and joints over time (One Euro filter)")
    v.add_argument("--smooth-min-cutoff", type=_positive_float, default=1.0,
                   help="One Euro cut-off at rest, Hz: lower is smoother, with more lag (default: %(default)s)")
    v.add_argument("--smooth-beta", type=_non_negative_float, default=1.0,
                   help="One Euro speed coefficient: higher follows fast motion with less lag (default: %(default)s)")
    v.add_argument("--track-max-age", type=_non_negative_int, default=30,
                   help="frames a person may be missing and keep their track id (default: %(default)s)")
    v.add_argument("--animation", type=_animation_formats,
                   help="per-track animation files, comma-separated, of glb, bvh (default: both; empty: none)")
    v.add_argument("--no-overlay-video", action="store_true", help="do not write overlay.mp4")


def _detect(args: argparse.Namespace, python: str | None = None) -> Detections:
    """MediaPipe keypoints for every input, with each image that failed printed (it gets no entry)."""
    from hap3d.infer.detect import MIN_PERSON_SCORE, MediaPipeDetector

    least = MIN_PERSON_SCORE if args.min_person_score is None else args.min_person_score
    detector = MediaPipeDetector(python or args.mediapipe_python, args.min_confidence, getattr(args, "venv", None),
                                 multi=not args.single_person, max_people=args.max_people, min_person_score=least)
    how = "at most one person per image" if args.single_person else (
        "every person" if args.max_people is None else f"at most {args.max_people} people per image")
    print(f"detecting 2D keypoints with MediaPipe BlazePose ({detector.python}; {how})")
    found = detector.detect_path(args.input, progress=True)
    for name, err in found.errors.items():
        print(f"  {name}: detection failed: {err}", file=sys.stderr)
    return found


def _cmd_detect(args: argparse.Namespace) -> int:
    from hap3d.infer.detect import setup_venv, write_keypoints

    python = args.mediapipe_python
    if args.setup:
        python = setup_venv(args.venv, args.base_python, constraints=args.constraints)
        if args.input is None:
            return 0
    elif args.input is None:
        print("hap3d: error: pass INPUT (images, a folder or a video), or --setup", file=sys.stderr)
        return 2
    if Path(args.out).exists() and not args.overwrite:  # before the detection: a user's file is never replaced
        raise Hap3dError(f"{args.out} exists; pass --overwrite to replace it, or choose another --out")
    check_output_dir(Path(os.path.abspath(args.out)).parent, "the folder of --out")
    found = _detect(args, python)
    write_keypoints(args.out, found.keypoints)
    people = sum(len(v) for v in found.keypoints.values())
    print(f"{people} people in {len(found.keypoints) + len(found.errors)} items; keypoints in {args.out}")
    return 1 if found.errors else 0


def _add_detector_options(parser: argparse.ArgumentParser) -> None:
    """The MediaPipe options ``demo --detector`` and ``detect`` share."""
    parser.add_argument("--mediapipe-python", help=MEDIAPIPE_PYTHON_HELP)
    parser.add_argument("--single-person", action="store_true",
                        help="MediaPipe's legacy one-person graph instead of the multi-person detector")
    parser.add_argument("--max-people", type=positive_int,
                        help="keep at most this many people per image, the most confident (default: all found)")
    parser.add_argument("--min-confidence", type=float, default=0.5,
                        help="MediaPipe's person detection threshold (default: %(default)s)")
    parser.add_argument("--min-person-score", type=float,
                        help="multi-person: drop people whose mean keypoint score is below this (default: 0.25; "
                             "a half-body photo, legs outside the picture, scores about 0.5)")


MEDIAPIPE_PYTHON_HELP = ("python with mediapipe (default: $HAP3D_MEDIAPIPE_PYTHON, else this python if it has "
                         "mediapipe, else the venv of `hap3d detect --setup`)")


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` and ``detect`` subcommands."""
    d = sub.add_parser("demo", help="meshes, renders and exports for images, a folder or a video")
    d.add_argument("input", help="an image, a folder of images, or a video file")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--keypoints", help="2D keypoints: demo JSON, COCO results JSON or OpenPose folder")
    src.add_argument("--detector", choices=["mediapipe"],
                     help="detect 2D keypoints instead: MediaPipe BlazePose, every person in the image "
                          "(set up with `hap3d detect --setup`; see --single-person, --max-people)")
    d.add_argument("--coco-annotations", metavar="FILE",
                   help="COCO annotation JSON whose 'images' list maps the image_id of COCO results to file names "
                        "(default: none; image_ids then match numeric file stems)")
    _add_detector_options(d)
    weights = d.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt", help="checkpoint (hap3d, reference snapshot or the 3DCrowdNet demo checkpoint)")
    weights.add_argument("--random-weights", action="store_true", help="untrained network (pipeline tests only)")
    d.add_argument("--body-model-dir", help="folder with smpl/ (default: the checkpoint's run's data.body_model_dir "
                   "when the checkpoint lies in <run>/checkpoints/, else a procedural stand-in, with a warning)")
    d.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    d.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    d.add_argument("--runtime", default="auto", choices=["auto", "eager", "fast", "int8"],
                   help="how the network runs: auto = fast on CPU (oneDNN kernels, equal to eager within 0.1 mm) or "
                        "$HAP3D_RUNTIME; int8 = quantised, faster, at an accuracy cost (default: %(default)s)")
    d.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"],
                   help="auto: bf16 where the hardware supports it natively, else fp32 (default: %(default)s)")
    d.add_argument("--batch-size", type=positive_int, default=16,
                   help="person crops per model forward (default: %(default)s)")
    d.add_argument("--formats", type=_mesh_formats,
                   help="mesh formats, comma-separated, of obj, ply, glb (default: all; empty: none)")
    d.add_argument("--backend", default="auto", choices=["auto", "raster", "egl"],
                   help="renderer: raster (numpy, anywhere) or egl (headless OpenGL); auto takes egl where it works "
                        "(default: %(default)s)")
    _add_video_options(d)
    d.set_defaults(func=_cmd_demo)

    x = sub.add_parser("detect", help="2D keypoints of every person with MediaPipe BlazePose, as demo JSON")
    x.add_argument("input", nargs="?", help="an image, a folder of images, or a video file")
    x.add_argument("--out", default="keypoints.json",
                   help="demo JSON for `hap3d demo --keypoints` (default: %(default)s)")
    x.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    x.add_argument("--setup", action="store_true",
                   help="create (or reuse) a venv with mediapipe and check that it works offline")
    x.add_argument("--venv", help="the venv of --setup, also searched for detection (default: "
                                  "$HAP3D_MEDIAPIPE_VENV, else ~/.cache/hap3d/mediapipe-venv)")
    x.add_argument("--constraints", help="with --setup: a pip constraints file of exact versions (the repository's "
                   "requirements/detect-lock.txt, what the tests ran with)")
    x.add_argument("--base-python", help="python that creates the venv (default: this one; mediapipe needs 3.9-3.12)")
    _add_detector_options(x)
    x.set_defaults(func=_cmd_detect)
