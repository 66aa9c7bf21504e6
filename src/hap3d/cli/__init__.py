"""Command-line interface: ``hap3d <command>``. Each command is a thin layer over the Python API.

The commands that write or check data (``hap3d body ...``, ``hap3d data ...``) live in :mod:`hap3d.cli.data`;
``python -m hap3d.cli`` (and ``torchrun -m hap3d.cli``) runs :func:`main` through ``__main__.py``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import select
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from hap3d.cli.data import add_parsers as add_data_parsers
from hap3d.cli.data import cmd_data_check, cmd_data_synth, format_data_report
from hap3d.config import shipped_configs
from hap3d.utils import Hap3dError

if TYPE_CHECKING:
    from hap3d.infer.detect import Detections


def _cmd_convert(args: argparse.Namespace) -> int:
    from hap3d.config import parse_override
    from hap3d.model import build_model
    from hap3d.model.checkpoint import infer_model_config, load_model_checkpoint, read_checkpoint, save_model_checkpoint

    raw = read_checkpoint(args.input)
    overrides = {}
    for text in args.set:
        path, value = parse_override(text)
        overrides[path[-1]] = value
    cfg = infer_model_config(raw, **overrides)
    model = build_model(cfg, args.body_model_dir, vposer_dir=False)
    report = load_model_checkpoint(model, args.input)
    print(report.summary())
    info = {"converted_from": str(Path(args.input).resolve()), "source_format": raw.format}
    info.update({k: v for k, v in raw.meta.items() if isinstance(v, (int, float, str))})
    out = save_model_checkpoint(args.output, model, cfg, info)
    print(f"wrote {out} (hap3d format, backbone={cfg.backbone}, reference_compat={cfg.reference_compat})")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    from hap3d.model.checkpoint import read_checkpoint

    raw = read_checkpoint(args.checkpoint)
    n = sum(t.numel() for t in raw.tensors.values())
    print(f"{raw.path}: format={raw.format}, {len(raw.tensors)} tensors, {n / 1e6:.2f} M values")
    for k, v in raw.meta.items():
        print(f"  {k}: {json.dumps(v, default=str)}")
    if args.keys:
        for k, t in raw.tensors.items():
            print(f"  {k} {tuple(t.shape)} {str(t.dtype).replace('torch.', '')}")
    return 0


def _load_cfg(args: argparse.Namespace, path: str | Path | None):
    """The config at ``path`` (None: the built-in defaults) with the path flags and the KEY=VALUE overrides applied."""
    from hap3d.config import load_config

    overrides = list(args.overrides)
    for flag, key in (("data_root", "data.root"), ("body_model_dir", "data.body_model_dir"), ("device", "eval.device")):
        if getattr(args, flag, None):
            overrides.append(f"{key}={getattr(args, flag)}")
    return load_config(path, overrides)


def run_config_of(ckpt: str | Path) -> Path | None:
    """``<run>/config.yaml`` when ``ckpt`` lies in a run's ``checkpoints/`` folder: that run's data root, body model
    and test set are the natural defaults for evaluating it."""
    folder = Path(os.path.abspath(ckpt)).parent
    config = folder.parent / "config.yaml"
    return config if folder.name == "checkpoints" and config.is_file() else None


def eval_out_dir(ckpt: str | Path, crowd: bool) -> Path:
    """``<ckpt folder>/eval_<ckpt name>[_crowd]``: one folder per checkpoint and test set, so evaluations of
    different checkpoints, or of 3DPW and 3DPW-Crowd, do not overwrite each other."""
    path = Path(os.path.abspath(ckpt))
    stem = path.name
    for suffix in (".tar", ".safetensors", ".pth", ".pt"):  # snapshot_10.pth.tar -> snapshot_10
        stem = stem.removesuffix(suffix)
    return path.parent / f"eval_{stem}{'_crowd' if crowd else ''}"


def _cmd_train(args: argparse.Namespace) -> int:
    from hap3d.engine.run import train

    cfg = _load_cfg(args, args.cfg)
    out = args.out or cfg.output_dir
    final = train(cfg, out, resume=args.resume)
    if final:
        print("final epoch: " + ", ".join(f"{k} {v:.2f} mm" for k, v in final.items()))
    print(f"run directory: {out}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from hap3d.config import ConfigError
    from hap3d.engine.run import evaluate

    overrides = list(args.overrides) + (["data.crowd=true"] if args.crowd else [])
    if args.testset:
        overrides.append(f"data.testset={args.testset}")
    args.overrides = overrides
    path = args.cfg or run_config_of(args.ckpt)
    if args.cfg:
        print(f"config: {path} (--cfg)")
        cfg = _load_cfg(args, path)
    elif path:
        print(f"config: {path} (the checkpoint's run; --cfg and the flags override it)")
        if not args.device:  # the run's training device (say cuda:1) need not exist where it is evaluated
            args.overrides.append("eval.device=auto")
        try:
            cfg = _load_cfg(args, path)
        except ConfigError as err:  # e.g. written by another hap3d version: the defaults still evaluate it
            print(f"hap3d: warning: {path} does not load ({err}); using the built-in defaults (pass --cfg to choose)",
                  file=sys.stderr)
            cfg = _load_cfg(args, None)
    else:
        print("config: built-in defaults (no --cfg, and no <run>/config.yaml beside the checkpoint's folder)")
        cfg = _load_cfg(args, None)
    out = Path(args.out) if args.out else eval_out_dir(args.ckpt, cfg.data.crowd)
    result = evaluate(cfg, args.ckpt, out)
    print(result.per_sequence_table())
    print(result.summary())
    print(f"results: {out / 'eval.json'}, {out / 'eval_per_sample.csv'}, {out / 'eval_per_sequence.csv'}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from hap3d.infer.demo import MESH_FORMATS, run_demo
    from hap3d.infer.keypoints import read_coco_image_names, read_keypoints
    from hap3d.infer.predictor import Predictor, load_predictor_model

    if args.ckpt and not Path(args.ckpt).is_file():  # before any work (detection, a procedural body model, ...)
        raise Hap3dError(f"checkpoint not found: {args.ckpt} (--ckpt)")
    if args.coco_annotations and not args.keypoints:
        print("hap3d: error: --coco-annotations names the images of --keypoints (COCO results by image_id); "
              "it does not apply to --detector", file=sys.stderr)
        return 2
    if args.detector:
        found = _detect(args.input, args.mediapipe_python)
        keypoints, keypoint_errors = found.keypoints, found.errors
    else:
        names = read_coco_image_names(args.coco_annotations) if args.coco_annotations else None
        keypoints = read_keypoints(args.keypoints, names)
        keypoint_errors = keypoints.errors
    body = args.body_model_dir
    if body is None:
        from hap3d.synth import write_body_model_dir

        body = Path(args.out) / "procedural_body_model"
        if not (body / "smpl").is_dir():
            write_body_model_dir(body)
        print(f"warning: no --body-model-dir; using the procedural body model in {body} (not SMPL)", file=sys.stderr)
    from hap3d.engine.distributed import resolve_device

    model = load_predictor_model(args.ckpt, body, random_weights=args.random_weights)
    predictor = Predictor(model, resolve_device(args.device), amp=args.amp, batch_size=args.batch_size)
    settings = {
        "checkpoint": str(Path(args.ckpt).resolve()) if args.ckpt else "random weights",
        "body_model_dir": str(Path(body).resolve()) if args.body_model_dir else f"procedural ({Path(body).resolve()})",
    }
    code, reports = run_demo(predictor, Path(args.input), keypoints, Path(args.out),
                             MESH_FORMATS if args.formats is None else args.formats, backend=args.backend,
                             keypoint_errors=keypoint_errors, settings=settings)
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


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from err
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def _detect(inputs: str, python: str | None, min_confidence: float = 0.5, venv: str | None = None) -> Detections:
    """MediaPipe keypoints for every input, with each image that failed printed (it gets no entry)."""
    from hap3d.infer.detect import MediaPipeDetector

    detector = MediaPipeDetector(python, min_confidence, venv)
    print(f"detecting 2D keypoints with MediaPipe BlazePose ({detector.python}; at most one person per image)")
    found = detector.detect_path(inputs, progress=True)
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
    found = _detect(args.input, python, args.min_confidence, args.venv)
    write_keypoints(args.out, found.keypoints)
    people = sum(len(v) for v in found.keypoints.values())
    print(f"{people} people in {len(found.keypoints) + len(found.errors)} items; keypoints in {args.out}")
    return 1 if found.errors else 0


def _cmd_quickstart(args: argparse.Namespace) -> int:
    from hap3d.quickstart import run_quickstart

    return run_quickstart(Path(args.out), budget=args.budget, device=args.device, resume=args.resume)


MEDIAPIPE_PYTHON_HELP = ("python with mediapipe (default: $HAP3D_MEDIAPIPE_PYTHON, else this python if it has "
                         "mediapipe, else the venv of `hap3d detect --setup`)")


def build_parser() -> argparse.ArgumentParser:
    from hap3d import __version__

    p = argparse.ArgumentParser(prog="hap3d", description="HAP / 3DCrowdNet 3D human pose and shape estimation")
    p.add_argument("--version", action="version", version=f"hap3d {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quickstart", help="run the main job end to end on procedural data (no licensed files)")
    q.add_argument("--out", default="runs/quickstart", help="run directory (default: runs/quickstart)")
    q.add_argument("--budget", default="small", choices=["tiny", "small", "medium"],
                   help="how much work: tiny (the tests), small (about a minute on a quiet 2-core CPU), "
                        "medium (longer, better fit) (default: %(default)s)")
    q.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto")
    q.add_argument("--resume", action="store_true",
                   help="continue the run in --out (same budget) instead of starting it again")
    q.set_defaults(func=_cmd_quickstart)

    t = sub.add_parser("train", help="train (single process, or under torchrun for DDP)",
                       description="Train. KEY=VALUE config overrides may come anywhere on the command line.")
    t.add_argument("--cfg", help="YAML config, ours or the reference's, or the name of a shipped one ("
                   f"{', '.join(shipped_configs())}) (default: the built-in defaults)")
    t.add_argument("--out", help="run directory (default: the config's output_dir)")
    t.add_argument("--resume", action="store_true", help="continue from <run>/checkpoints/last.pt")
    t.add_argument("--data-root", help="data root: Human36M/, MuCo/, MSCOCO/ or coco/, MPII/data/ or mpii/data/, "
                                       "PW3D/data/, see docs/data.md (default: the config's data.root)")
    t.add_argument("--body-model-dir", help="folder with smpl/, J_regressor_*.npy, vposer/ "
                                            "(default: the config's data.body_model_dir)")
    t.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's eval.device, itself auto)")
    t.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. train.lr=1e-4 train.end_epoch=1 (default: none)")
    t.set_defaults(func=_cmd_train)

    e = sub.add_parser("eval", help="evaluate a checkpoint on the test set, 3DPW by default (MPJPE, PA-MPJPE, MPVPE)",
                       description="Evaluate a checkpoint. KEY=VALUE config overrides may come anywhere on the "
                                   "command line.")
    e.add_argument("--ckpt", required=True,
                   help="hap3d .safetensors, a training state (<run>/checkpoints/last.pt) or a reference "
                        "snapshot_N.pth.tar")
    e.add_argument("--cfg", help="YAML config for data paths and batch size (default: <run>/config.yaml when --ckpt "
                                 "lies in <run>/checkpoints/, else the built-in defaults)")
    e.add_argument("--testset", help="test set: a registered dataset with an evaluation, PW3D (3DPW) the one so far "
                                     "(default: the config's data.testset)")
    e.add_argument("--crowd", action="store_true", help="3DPW-Crowd (validation split, HigherHRNet input)")
    e.add_argument("--out", help="output folder (default: <ckpt folder>/eval_<ckpt name>, with _crowd for 3DPW-Crowd)")
    e.add_argument("--data-root", help="data root holding the test set, e.g. PW3D/data/ (default: the config's "
                                       "data.root)")
    e.add_argument("--body-model-dir", help="folder with smpl/ (neutral, male, female) and "
                                            "J_regressor_h36m_correct.npy (default: the config's data.body_model_dir)")
    e.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's eval.device, itself auto)")
    e.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. eval.test_batch_size=32 (default: none)")
    e.set_defaults(func=_cmd_eval)

    d = sub.add_parser("demo", help="meshes, renders and exports for images, a folder or a video")
    d.add_argument("input", help="an image, a folder of images, or a video file")
    src = d.add_mutually_exclusive_group(required=True)
    src.add_argument("--keypoints", help="2D keypoints: demo JSON, COCO results JSON or OpenPose folder")
    src.add_argument("--detector", choices=["mediapipe"],
                     help="detect 2D keypoints instead: MediaPipe BlazePose, at most one person per image "
                          "(set up with `hap3d detect --setup`)")
    d.add_argument("--coco-annotations", metavar="FILE",
                   help="COCO annotation JSON whose 'images' list maps the image_id of COCO results to file names "
                        "(default: none; image_ids then match numeric file stems)")
    d.add_argument("--mediapipe-python", help=MEDIAPIPE_PYTHON_HELP)
    weights = d.add_mutually_exclusive_group(required=True)
    weights.add_argument("--ckpt", help="checkpoint (hap3d, reference snapshot or the 3DCrowdNet demo checkpoint)")
    weights.add_argument("--random-weights", action="store_true", help="untrained network (pipeline tests only)")
    d.add_argument("--body-model-dir", help="folder with smpl/ (default: a procedural stand-in, with a warning)")
    d.add_argument("--out", default="demo_out", help="output folder (default: %(default)s)")
    d.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: %(default)s)")
    d.add_argument("--amp", default="auto", choices=["auto", "none", "bf16", "fp16"],
                   help="auto: bf16 where the hardware supports it natively, else fp32 (default: %(default)s)")
    d.add_argument("--batch-size", type=_positive_int, default=16,
                   help="person crops per model forward (default: %(default)s)")
    d.add_argument("--formats", type=_mesh_formats,
                   help="mesh formats, comma-separated, of obj, ply, glb (default: all; empty: none)")
    d.add_argument("--backend", default="auto", choices=["auto", "raster", "egl"],
                   help="renderer: raster (numpy, anywhere) or egl (headless OpenGL); auto takes egl where it works "
                        "(default: %(default)s)")
    d.set_defaults(func=_cmd_demo)

    x = sub.add_parser("detect", help="2D keypoints with MediaPipe BlazePose (one person per image) as demo JSON")
    x.add_argument("input", nargs="?", help="an image, a folder of images, or a video file")
    x.add_argument("--out", default="keypoints.json", help="demo JSON for `hap3d demo --keypoints`")
    x.add_argument("--setup", action="store_true",
                   help="create (or reuse) a venv with mediapipe and check that it works offline")
    x.add_argument("--venv", help="the venv of --setup, also searched for detection (default: "
                                  "$HAP3D_MEDIAPIPE_VENV, else ~/.cache/hap3d/mediapipe-venv)")
    x.add_argument("--constraints", help="with --setup: a pip constraints file of exact versions (the repository's "
                   "requirements/detect-lock.txt, what the tests ran with)")
    x.add_argument("--base-python", help="python that creates the venv (default: this one; mediapipe needs 3.9-3.12)")
    x.add_argument("--mediapipe-python", help=MEDIAPIPE_PYTHON_HELP)
    x.add_argument("--min-confidence", type=float, default=0.5, help="MediaPipe's person detection threshold")
    x.set_defaults(func=_cmd_detect)

    add_data_parsers(sub)

    c = sub.add_parser("convert", help="convert a reference snapshot / demo checkpoint to the hap3d format")
    c.add_argument("input", help="snapshot_N.pth.tar, demo_checkpoint.pth.tar or a hap3d .safetensors")
    c.add_argument("output", help="output .safetensors path")
    c.add_argument("--body-model-dir", required=True, help="folder with smpl/, J_regressor_extra.npy")
    c.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE",
        help="model config values the weights cannot reveal, e.g. num_heads=16 (repeatable)",
    )
    c.set_defaults(func=_cmd_convert)

    i = sub.add_parser("inspect", help="identify a checkpoint's format and list its contents")
    i.add_argument("checkpoint")
    i.add_argument("--keys", action="store_true", help="list every tensor")
    i.set_defaults(func=_cmd_inspect)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse a command line, taking KEY=VALUE overrides anywhere in it (``train --cfg X a=1 --resume b=2``).

    argparse binds a positional ``nargs='*'`` once, at the first run of positionals, so overrides after an option
    come back unrecognised; and ``parse_intermixed_args`` refuses parsers with subcommands. So the leftovers that
    are KEY=VALUE overrides of a command that takes them are appended to its overrides; anything else is an error.
    """
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        overrides = getattr(args, "overrides", None)
        if overrides is None or any(e.startswith("-") or "=" not in e for e in extras):
            parser.error(f"unrecognized arguments: {' '.join(extras)}")
        args.overrides = overrides + extras
    return args


def _silence_stdout() -> None:
    """Point stdout at /dev/null after its reader went away (``hap3d inspect --keys | head``), so that the flush at
    exit does not raise BrokenPipeError again."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return  # not a real file (captured output): nothing will be flushed to a pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def _stdout_broken() -> bool:
    """Whether stdout's reader has gone (``| head``), as opposed to some other pipe breaking."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        return True
    except (OSError, ValueError):
        return False
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poller.poll(0))
    except (AttributeError, ValueError, OSError, io.UnsupportedOperation):
        return False


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start = time.time()
    try:
        code = args.func(args)
        if args.command != "inspect":
            print(f"done in {time.time() - start:.1f} s")
        sys.stdout.flush()  # here, not at exit, so that a closed pipe is caught below
    except BrokenPipeError as err:
        if not _stdout_broken():  # another pipe (a worker, a socket) broke: that is a real failure
            print(f"hap3d: error: broken pipe: {err}", file=sys.stderr)
            return 1
        _silence_stdout()
        return 141  # 128 + SIGPIPE: what a shell reports for a writer whose reader stopped early
    except Hap3dError as err:
        print(f"hap3d: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("hap3d: interrupted", file=sys.stderr)
        return 130
    return code


__all__ = [
    "build_parser", "cmd_data_check", "cmd_data_synth", "eval_out_dir", "format_data_report", "main", "parse_args",
]
