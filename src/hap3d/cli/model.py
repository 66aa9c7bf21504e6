"""``hap3d convert`` and ``hap3d inspect``: checkpoints of any supported layout to the hap3d format, and a look
inside one."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from hap3d.files import check_output_dir
from hap3d.utils import Hap3dError


def _cmd_convert(args: argparse.Namespace) -> int:
    from hap3d.config import parse_override
    from hap3d.model import build_model
    from hap3d.model.checkpoint import infer_model_config, load_model_checkpoint, read_checkpoint, save_model_checkpoint

    output = Path(args.output)
    if output.exists() and not args.overwrite:  # before any work: a user's file is never replaced silently
        raise Hap3dError(f"{output} exists; pass --overwrite to replace it, or choose another output path")
    if os.path.abspath(output) == os.path.abspath(args.input):
        raise Hap3dError(f"the output {output} is the input checkpoint; choose another output path")
    check_output_dir(output.parent, "the output's folder")
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


def add_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``convert`` and ``inspect`` subcommands."""
    c = sub.add_parser("convert", help="convert a reference snapshot / demo checkpoint to the hap3d format")
    c.add_argument("input", help="snapshot_N.pth.tar, demo_checkpoint.pth.tar or a hap3d .safetensors")
    c.add_argument("output", help="output .safetensors path")
    c.add_argument("--overwrite", action="store_true", help="replace the output file if it exists")
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
