"""Training throughput: samples/s for a tiny config and for ViT-B on this machine (fp32 and bf16), with the share
of time spent waiting for data, in the forward, the backward and the optimizer step.

Data come from synthetic datasets in the real formats, through the real readers and loader.

    python benchmarks/bench_train.py [--steps 6] [--batch 4] [--workers 1] [--skip-vit-b]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import torch

from hap3d.config import load_config
from hap3d.engine.run import build_train_set
from hap3d.engine.train import ResumableSampler, build_optimizer
from hap3d.model import build_model
from hap3d.model.losses import loss_terms, reduce_losses
from hap3d.synth import write_body_model_dir, write_synthetic_datasets

TINY = ["model.depth=2", "model.embed_dim=64", "model.num_heads=2", "model.vit_conv_dim=128"]


def measure(cfg, train_set, steps: int, amp: str) -> tuple[float, dict[str, float]]:
    torch.manual_seed(0)
    model = build_model(cfg.model, cfg.data.body_model_dir).train()
    opt = build_optimizer(model, cfg)
    b = cfg.train.train_batch_size
    sampler = ResumableSampler(len(train_set), 0, 1, 0, b)
    loader = torch.utils.data.DataLoader(train_set, batch_size=b, sampler=sampler, num_workers=cfg.data.num_workers,
                                         drop_last=True)
    ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if amp == "bf16" else torch.enable_grad
    times: dict[str, float] = defaultdict(float)
    it = iter(loader)
    done = 0
    start = time.perf_counter()
    while done < steps:
        t0 = time.perf_counter()
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            batch = next(it)
        t1 = time.perf_counter()
        with ctx():
            pred = model(**batch["inputs"])
            total, _ = reduce_losses(loss_terms(pred, batch["targets"], batch["meta"], model.graph_index))
        t2 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        total.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        if done > 0:  # the first step warms up caches and workers
            for k, v in (("data wait", t1 - t0), ("forward", t2 - t1), ("backward", t3 - t2), ("optimizer", t4 - t3)):
                times[k] += v
        else:
            start = t4
        done += 1
    elapsed = time.perf_counter() - start
    return (steps - 1) * b / elapsed, {k: v / elapsed for k, v in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-vit-b", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        body = write_body_model_dir(Path(tmp) / "body")
        root = Path(tmp) / "data"
        write_synthetic_datasets(root, body, size="tiny", datasets=["Human36M", "MuCo", "MSCOCO", "MPII"])
        base = [f"data.root={root}", f"data.body_model_dir={body}", f"data.num_workers={args.workers}",
                f"train.train_batch_size={args.batch}", "reference_compat=false"]
        print(f"torch {torch.__version__}, {args.threads} threads, {args.workers} loader workers, batch {args.batch}")
        for name, extra in (("tiny", TINY), ("vit-b", [])):
            if name == "vit-b" and args.skip_vit_b:
                continue
            cfg = load_config(None, base + extra)
            train_set = build_train_set(cfg)
            for amp in ("fp32", "bf16"):
                rate, shares = measure(cfg, train_set, args.steps, amp)
                split = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
                print(f"{name:6s} {amp}: {rate:7.2f} samples/s  [{split}]")


if __name__ == "__main__":
    main()
