"""Model throughput: the full HAP ViT-B network vs the bare ViT-B backbone, in the same process.

Prints images/s for eval forward at batch 1 and 8 (fp32 and bf16 autocast) and for a training step, and the
heads overhead = full / bare - 1. Uses the procedural body model (no licensed files needed).

    python benchmarks/bench_model.py [--batches 1 8] [--repeats 5] [--threads 2] [--depth 12] [--runtime fast]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import torch

from hap3d.config import ModelConfig
from hap3d.model import build_model
from hap3d.model.losses import loss_terms, reduce_losses
from hap3d.model.runtime import prepare_for_inference
from hap3d.synth import write_body_model_dir


def person_inputs(b: int) -> dict[str, torch.Tensor]:
    """A batch of crops with plausible input joints (all inside the 64-space crop)."""
    g = torch.Generator().manual_seed(0)
    return {
        "img": torch.rand(b, 3, 256, 256, generator=g),
        "joints": 16 + 32 * torch.rand(b, 30, 2, generator=g),
        "joints_mask": torch.ones(b, 30, 1),
    }


def timed_pair(full, bare, repeats: int, warmup: int = 1) -> tuple[float, float]:
    """Median seconds of two functions, measured alternately so that load changes affect both alike."""
    for _ in range(warmup):
        full()
        bare()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, acc in ((full, times[0]), (bare, times[1])):
            t = time.perf_counter()
            fn()
            acc.append(time.perf_counter() - t)
    return statistics.median(times[0]), statistics.median(times[1])


def autocast(dtype: str):
    if dtype == "bf16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def fake_targets(b: int) -> tuple[dict, dict]:
    g = torch.Generator().manual_seed(0)
    t = {
        "orig_joint_img": torch.rand(b, 30, 3, generator=g) * 64,
        "fit_joint_img": torch.rand(b, 30, 3, generator=g) * 64,
        "orig_joint_cam": torch.randn(b, 30, 3, generator=g) * 0.3,
        "fit_joint_cam": torch.randn(b, 30, 3, generator=g) * 0.3,
        "pose_param": torch.randn(b, 72, generator=g) * 0.3,
        "shape_param": torch.randn(b, 10, generator=g),
    }
    m = {
        "orig_joint_valid": torch.ones(b, 30, 1),
        "orig_joint_trunc": torch.ones(b, 30, 1),
        "fit_joint_trunc": torch.ones(b, 30, 1),
        "fit_param_valid": torch.ones(b, 72),
        "is_3D": torch.ones(b),
        "is_valid_fit": torch.ones(b),
    }
    return t, m


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--train-batch", type=int, default=4)
    ap.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--runtime", default="eager", choices=["eager", "fast"],
                    help="inference runtime of both networks (hap3d.model.runtime; training is unaffected)")
    args = ap.parse_args()
    if args.train_batch < 2:
        ap.error("--train-batch must be at least 2: the heads' BatchNorm layers need two samples in training mode")
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        body = Path(tmp) / "body"
        write_body_model_dir(body)
        cfg = ModelConfig(backbone="vit_b", depth=args.depth)
        model = prepare_for_inference(build_model(cfg, body), args.runtime)
    backbone = model.backbone  # converted with the model: both run the same runtime
    print(f"torch {torch.__version__}, {args.threads} threads, ViT depth {args.depth}, runtime {args.runtime}; "
          f"median of {args.repeats}")
    print(f"{'case':34s} {'full img/s':>11s} {'bare img/s':>11s} {'overhead':>9s}")
    for dtype in args.dtypes:
        for b in args.batches:
            inp = person_inputs(b)
            with torch.inference_mode(), autocast(dtype):
                t_full, t_bare = timed_pair(lambda: model(**inp), lambda: backbone(inp["img"]), args.repeats)
            print(f"{f'eval {dtype} batch {b}':34s} {b / t_full:11.2f} {b / t_bare:11.2f} {t_full / t_bare - 1:9.1%}")

    b = args.train_batch
    inp = person_inputs(b)
    targets, meta = fake_targets(b)
    model.train()
    opt = torch.optim.SGD(model.trainable_parameters(), lr=1e-3)
    bare_opt = torch.optim.SGD(backbone.parameters(), lr=1e-3)

    def full_step() -> None:
        opt.zero_grad(set_to_none=True)
        total, _ = reduce_losses(loss_terms(model(**inp), targets, meta, model.graph_index))
        total.backward()
        opt.step()

    def bare_step() -> None:
        bare_opt.zero_grad(set_to_none=True)
        backbone(inp["img"]).abs().mean().backward()
        bare_opt.step()

    for dtype in args.dtypes:
        with autocast(dtype):
            t_full, t_bare = timed_pair(full_step, bare_step, max(2, args.repeats // 2))
        print(f"{f'train step {dtype} batch {b}':34s} {b / t_full:11.2f} {b / t_bare:11.2f} {t_full / t_bare - 1:9.1%}")


if __name__ == "__main__":
    main()
