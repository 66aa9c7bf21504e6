"""A tiny training run used by the engine tests (launched directly or with torchrun)."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from hap3d.config import load_config
from hap3d.engine.distributed import cleanup, init_distributed
from hap3d.engine.evaluate import EvalResult
from hap3d.engine.train import Trainer
from hap3d.model import build_model
from hap3d.utils import Hap3dError


class RandomSamples(torch.utils.data.Dataset):
    """Samples of the training contract with content fixed by the index (no files needed)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        g = torch.Generator().manual_seed(i)
        r = lambda *s: torch.rand(*s, generator=g)  # noqa: E731
        return {
            "inputs": {"img": r(3, 256, 256), "joints": r(30, 2) * 64, "joints_mask": (r(30, 1) > 0.2).float()},
            "targets": {
                "orig_joint_img": r(30, 3) * 64, "fit_joint_img": r(30, 3) * 64,
                "orig_joint_cam": r(30, 3) - 0.5, "fit_joint_cam": r(30, 3) - 0.5,
                "pose_param": (r(72) - 0.5) * 0.6, "shape_param": r(10) - 0.5,
            },
            "meta": {
                "orig_joint_valid": torch.ones(30, 1), "orig_joint_trunc": torch.ones(30, 1),
                "fit_joint_trunc": torch.ones(30, 1), "fit_param_valid": torch.ones(72),
                "is_3D": torch.tensor(float(i % 2)), "is_valid_fit": torch.tensor(1.0),
            },
        }


# No stochastic layers (drop_path_rate 0; reference_compat=false turns VPoser dropout off): every process draws its
# own masks (the Trainer seeds each rank differently), so with them one process and two could not match exactly.
TINY = [
    "model.depth=2", "model.embed_dim=64", "model.num_heads=2", "model.vit_conv_dim=96", "model.drop_path_rate=0.0",
    "model.reference_compat=false", "train.freeze_bn=true", "train.optimizer=sgd", "train.lr=0.01",
    "train.momentum=0.9", "data.num_workers=0", "train.log_every=1",
]


def slow_constant_eval(model: torch.nn.Module) -> EvalResult:
    """Stands in for 3DPW: rank 0 takes a while to evaluate, so the other processes must wait for it."""
    time.sleep(1.0)
    return EvalResult({k: np.array([1.0]) for k in ("mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe")}, [0], ["seq"])


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--body", required=True)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--resume", action="store_true")
    ap.add_argument("--eval", action="store_true", help="evaluate after every epoch (on rank 0)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = load_config(None, TINY + [f"data.body_model_dir={args.body}"] + args.overrides)
    info = init_distributed("cpu")
    torch.manual_seed(0)  # the same initial weights for every world size
    model = build_model(cfg.model, cfg.data.body_model_dir)
    evaluate_fn = slow_constant_eval if args.eval and info.is_main else None
    trainer = Trainer(cfg, model, RandomSamples(args.samples), args.out, info, evaluate_fn, progress=False)
    try:
        if args.resume:
            trainer.load_state()
        trainer.run()
    except Hap3dError as err:  # what the command line does: the message, and the error's exit code
        print(f"hap3d: error: {err}", file=sys.stderr)
        return err.exit_code
    finally:
        cleanup(info)
    return 0


if __name__ == "__main__":
    sys.exit(main())
