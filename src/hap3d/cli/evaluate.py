"""``hap3d eval``: evaluate a checkpoint on a test set."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hap3d.cli.common import load_cfg
from hap3d.files import check_output_dir


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
        cfg = load_cfg(args, path)
    elif path:
        print(f"config: {path} (the checkpoint's run; --cfg and the flags override it)")
        if not args.device:  # the run's training device (say cuda:1) need not exist where it is evaluated
            args.overrides.append("eval.device=auto")
        try:
            cfg = load_cfg(args, path)
        except ConfigError as err:  # e.g. written by another hap3d version: the defaults still evaluate it
            print(f"hap3d: warning: {path} does not load ({err}); using the built-in defaults (pass --cfg to choose)",
                  file=sys.stderr)
            cfg = load_cfg(args, None)
    else:
        print("config: built-in defaults (no --cfg, and no <run>/config.yaml beside the checkpoint's folder)")
        cfg = load_cfg(args, None)
    out = Path(args.out) if args.out else eval_out_dir(args.ckpt, cfg.data.crowd)
    check_output_dir(out)  # a folder that cannot be written fails now, not after the whole evaluation
    result = evaluate(cfg, args.ckpt, out)
    print(result.per_sequence_table())
    print(result.summary())
    print(f"results: {out / 'eval.json'}, {out / 'eval_per_sample.csv'}, {out / 'eval_per_sequence.csv'}")
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``eval`` subcommand."""
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
