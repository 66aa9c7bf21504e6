"""``hap3d eval``: evaluate a checkpoint on a test set."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hap3d.cli.common import load_cfg, main_process, run_config_of
from hap3d.files import check_output_dir
from hap3d.utils import Hap3dError


def _say(*text: object) -> None:
    """Print on rank 0 only: under torchrun every process runs the command, one reports."""
    if main_process():
        print(*text)


def eval_out_dir(ckpt: str | Path, crowd: bool, validation: bool = False, suffix: str = "") -> Path:
    """``<ckpt folder>/eval_<ckpt name>[_crowd|_val|<suffix>]``: one folder per checkpoint and evaluated set, so
    evaluations of different checkpoints, or of 3DPW, 3DPW-Crowd, the validation split, Human3.6M or MuPoTS-3D,
    do not overwrite each other."""
    path = Path(os.path.abspath(ckpt))
    stem = path.name
    for ext in (".tar", ".safetensors", ".pth", ".pt"):  # snapshot_10.pth.tar -> snapshot_10
        stem = stem.removesuffix(ext)
    suffix = suffix or ("_val" if validation else "_crowd" if crowd else "")
    return path.parent / f"eval_{stem}{suffix}"


def _eval_config(args: argparse.Namespace):
    """The config of an evaluation: --cfg, else the run's config.yaml (of the checkpoint, or the swept run), else
    the built-in defaults; the flags and overrides on top. Says which."""
    from hap3d.config import ConfigError

    overrides = list(args.overrides) + (["data.crowd=true"] if args.crowd else [])
    if args.testset:
        overrides.append(f"data.testset={args.testset}")
    args.overrides = overrides
    run_config = Path(args.sweep) / "config.yaml" if args.sweep else run_config_of(args.ckpt)
    path = args.cfg or (run_config if run_config and run_config.is_file() else None)
    if args.cfg:
        _say(f"config: {path} (--cfg)")
        cfg = load_cfg(args, path)
    elif path:
        whose = "the swept run" if args.sweep else "the checkpoint's run"
        _say(f"config: {path} ({whose}; --cfg and the flags override it)")
        if not args.device:  # the run's training device (say cuda:1) need not exist where it is evaluated
            args.overrides.append("eval.device=auto")
        try:
            cfg = load_cfg(args, path)
        except ConfigError as err:  # e.g. written by another hap3d version: the defaults still evaluate it
            print(f"hap3d: warning: {path} does not load ({err}); using the built-in defaults (pass --cfg to choose)",
                  file=sys.stderr)
            cfg = load_cfg(args, None)
    else:
        _say("config: built-in defaults (no --cfg, and no <run>/config.yaml beside the checkpoint's folder)")
        cfg = load_cfg(args, None)
    if args.valset and cfg.data.valset is None:  # --valset, and no valset in the config: 3DPW's
        cfg.data.valset = "PW3D"
    return cfg


def _cmd_eval(args: argparse.Namespace) -> int:
    from hap3d.engine.run import evaluate

    cfg = _eval_config(args)
    validation = args.valset
    if args.sweep:
        if cfg.data.testset != "PW3D":
            raise Hap3dError(f"--sweep evaluates 3DPW (the test set, --crowd or --valset), not {cfg.data.testset}; "
                             "evaluate single checkpoints with --ckpt")
        return _sweep(args, cfg)
    if cfg.data.testset == "Human36M":
        return _human36m(args, cfg)
    if cfg.data.testset == "MuPoTS":
        return _mupots(args, cfg)
    if args.keypoints:
        raise Hap3dError("--keypoints is for --testset Human36M (3DPW carries its own input poses)")
    out = Path(args.out) if args.out else eval_out_dir(args.ckpt, cfg.data.crowd, validation)
    check_output_dir(out)  # a folder that cannot be written fails now, not after the whole evaluation
    result = evaluate(cfg, args.ckpt, out, validation=validation)
    _say(result.per_sequence_table())
    _say(result.summary())
    _say(f"results: {out / 'eval.json'}, {out / 'eval_per_sample.csv'}, {out / 'eval_per_sequence.csv'}")
    return 0


def _human36m(args: argparse.Namespace, cfg) -> int:
    from hap3d.engine.run import evaluate_human36m

    out = Path(args.out) if args.out else eval_out_dir(args.ckpt, False, suffix="_h36m")
    check_output_dir(out)
    results = evaluate_human36m(cfg, args.ckpt, out, args.keypoints)
    for result in results.values():
        _say(result.per_sequence_table().replace("sequence", "action  ", 1))
        _say(result.summary())
    _say(f"protocol 1 MPJPE {results[1].means['mpjpe']:.2f} mm, protocol 2 PA-MPJPE "
         f"{results[2].means['pa_mpjpe']:.2f} mm (input: {results[1].extra['input']})")
    _say(f"results: {out / 'eval.json'}, {out / 'eval_p1.json'}, {out / 'eval_p2.json'} (and their CSVs)")
    return 0


def _mupots(args: argparse.Namespace, cfg) -> int:
    from hap3d.engine.mupots_eval import format_pck_table
    from hap3d.engine.run import evaluate_mupots

    out = Path(args.out) if args.out else eval_out_dir(args.ckpt, False, suffix=f"_mupots_{args.input}")
    check_output_dir(out)
    table, result = evaluate_mupots(cfg, args.ckpt, out, args.input)
    _say(format_pck_table(table))
    _say(f"MuPoTS-3D 3DPCK@150mm ({args.input} input; joints: {result.extra['joints_from']}): all people "
         f"{table['overall']['all']:.1f}, matched people {table['overall']['matched']:.1f}")
    _say(f"results: {out / 'mupots.json'}, {out / 'mupots_per_sequence.csv'}, {out / 'eval.json'}")
    return 0


def _sweep(args: argparse.Namespace, cfg) -> int:
    from hap3d.engine.run import evaluate
    from hap3d.engine.sweep import format_table, run_sweep, sweep_out_dir

    out = Path(args.out) if args.out else sweep_out_dir(args.sweep, args.valset, cfg.data.crowd)
    check_output_dir(out)
    rows = run_sweep(cfg, args.sweep, out, evaluate, validation=args.valset, write=main_process(), report=_say)
    _say(format_table(rows))
    _say(f"results: {out / 'sweep.csv'}, {out / 'sweep.json'}, {out / 'sweep.png'} (each epoch in "
          f"{out / 'epoch_N'}/)")
    skipped = [r for r in rows if r.error]
    if skipped:
        _say(f"{len(skipped)} of {len(rows)} checkpoints could not be read and are not in the table (exit code 1)")
    return 1 if skipped else 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``eval`` subcommand."""
    e = sub.add_parser("eval", help="evaluate a checkpoint on the test set, 3DPW by default (MPJPE, PA-MPJPE, MPVPE)",
                       description="Evaluate a checkpoint. KEY=VALUE config overrides may come anywhere on the "
                                   "command line.")
    which = e.add_mutually_exclusive_group(required=True)
    which.add_argument("--ckpt",
                       help="hap3d .safetensors, a training state (<run>/checkpoints/last.pt) or a reference "
                            "snapshot_N.pth.tar")
    which.add_argument("--sweep", metavar="RUN_DIR",
                       help="evaluate every checkpoints/epoch_N.safetensors of a run into one table and plot "
                            "(<run>/sweep[_val|_crowd]/); an interrupted sweep continues where it stopped")
    e.add_argument("--cfg", help="YAML config for data paths and batch size (default: <run>/config.yaml when --ckpt "
                                 "lies in <run>/checkpoints/, else the built-in defaults)")
    e.add_argument("--testset", help="test set: PW3D (3DPW), Human36M (protocols 1 and 2) or MuPoTS (3DPCK) "
                                     "(default: the config's data.testset)")
    e.add_argument("--keypoints", metavar="FILE",
                   help="Human3.6M input 2D poses: COCO keypoint results by image id (default: the ground-truth 2D "
                        "joints, an oracle input, so labelled in every output)")
    e.add_argument("--input", choices=("hhrnet", "openpose"), default="hhrnet",
                   help="MuPoTS-3D input 2D poses: HigherHRNet or OpenPose (default: hhrnet)")
    e.add_argument("--crowd", action="store_true", help="3DPW-Crowd (validation split, HigherHRNet input)")
    e.add_argument("--valset", action="store_true",
                   help="evaluate the validation split (model selection) instead of the test set: the config's "
                        "data.valset, else PW3D (3DPW validation, OpenPose input); results in eval_<ckpt name>_val")
    e.add_argument("--out", help="output folder (default: <ckpt folder>/eval_<ckpt name>, with _crowd for 3DPW-Crowd)")
    e.add_argument("--data-root", help="data root holding the test set, e.g. PW3D/data/ (default: the config's "
                                       "data.root)")
    e.add_argument("--body-model-dir", help="folder with smpl/ (neutral, male, female) and "
                                            "J_regressor_h36m_correct.npy (default: the config's data.body_model_dir)")
    e.add_argument("--device", help="cpu, cuda, cuda:N or auto (default: the config's eval.device, itself auto)")
    e.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. eval.test_batch_size=32 (default: none)")
    e.set_defaults(func=_cmd_eval)
