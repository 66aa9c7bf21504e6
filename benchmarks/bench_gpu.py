"""GPU readiness in one short run: training samples/s and model-FLOPs utilisation (MFU) of the HAP ViT-B network in
bf16 (torch.compile on/off, channels-last on/off), eval images/s, and the data loader's samples/s per worker
against what the training step consumes (how many workers one GPU needs).

On a CUDA machine the defaults take a few minutes (``--budget`` seconds caps the whole run; variants left over are
listed as skipped). The same script runs on CPU with a tiny network, which is how the test suite keeps it working:

    python benchmarks/bench_gpu.py                       # CUDA, ViT-B, batch 64, bf16
    python benchmarks/bench_gpu.py --device cpu --tiny --steps 2 --batch 2 --eval-batch 2 --loader-batches 2

MFU = (3 x forward FLOPs per sample, counted by torch.utils.flop_counter) x samples/s / peak dense bf16 FLOP/s of
the device (known GPUs by name, or ``--peak-tflops``).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import torch
from bench_model import fake_targets, person_inputs
from torch.utils.flop_counter import FlopCounterMode

from hap3d.config import ModelConfig, load_config
from hap3d.engine.run import build_train_set
from hap3d.engine.train import ResumableSampler
from hap3d.model import build_model
from hap3d.model.losses import loss_terms, reduce_losses
from hap3d.synth import write_body_model_dir, write_synthetic_datasets

# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched against torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 PCIe": 756.0, "H100": 989.0, "A100": 312.0,
                    "L40S": 362.0, "L40": 181.0, "L4": 121.0, "A10G": 70.0, "A10": 125.0, "4090": 165.0,
                    "3090": 71.0, "A6000": 155.0}
TINY = dict(depth=2, embed_dim=64, num_heads=2, vit_conv_dim=128)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_tflops(device: torch.device, given: float | None) -> float | None:
    if given:
        return given
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def forward_flops(model: torch.nn.Module, device: torch.device) -> float:
    """FLOPs of one eval forward of one sample (matmuls and convolutions, as FlopCounterMode counts them)."""
    inp = {k: v.to(device) for k, v in person_inputs(1).items()}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.eval()(**inp)
    return float(counter.get_total_flops())


def batch_on(b: int, device: torch.device) -> tuple[dict, dict, dict]:
    targets, meta = fake_targets(b)
    inputs = person_inputs(b)
    return tuple({k: v.to(device) for k, v in d.items()} for d in (inputs, targets, meta))


def train_rate(model, device, args, compiled: bool, channels_last: bool) -> float:
    """Samples/s of full training steps (forward, 7 losses, backward, fused AdamW) on a fixed batch."""
    model.train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4, fused=True)
    inp, targets, meta = batch_on(args.batch, device)
    if channels_last:
        inp["img"] = inp["img"].contiguous(memory_format=torch.channels_last)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
            total, _ = reduce_losses(loss_terms(net(**inp), targets, meta, model.graph_index))
        total.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    sync(device)
    t = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    model.to(memory_format=torch.contiguous_format)
    return args.steps * args.batch / (time.perf_counter() - t)


def eval_rate(model, device, args) -> float:
    model.eval()
    inp = {k: v.to(device) for k, v in person_inputs(args.eval_batch).items()}
    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.amp == "bf16"):
        for _ in range(args.warmup):
            model(**inp)
        sync(device)
        t = time.perf_counter()
        for _ in range(args.steps):
            model(**inp)
        sync(device)
    return args.steps * args.eval_batch / (time.perf_counter() - t)


def loader_rate(tmp: Path, body: Path, args) -> float:
    """Samples/s of ONE loader worker process on the default training mix (synthetic files in the real formats)."""
    root = tmp / "data"
    write_synthetic_datasets(root, body, size="tiny", datasets=["Human36M", "MuCo", "MSCOCO", "MPII"])
    cfg = load_config(None, [f"data.root={root}", f"data.body_model_dir={body}", "reference_compat=false"])
    train_set = build_train_set(cfg)
    b = min(args.batch, 16)
    sampler = ResumableSampler(len(train_set), 0, 1, 0, b)
    loader = torch.utils.data.DataLoader(train_set, batch_size=b, sampler=sampler, num_workers=1, drop_last=True,
                                         persistent_workers=False, prefetch_factor=2)
    it = iter(loader)
    next(it)  # the worker's start-up
    t, n = time.perf_counter(), 0
    for _ in range(args.loader_batches):
        try:
            n += len(next(it)["inputs"]["img"])
        except StopIteration:
            it = iter(loader)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="a depth-2, width-64 ViT instead of ViT-B")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--eval-batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--amp", default="bf16", choices=["bf16", "none"])
    ap.add_argument("--compile", default="auto", choices=["auto", "on", "off", "both"],
                    help="auto: both on CUDA, off on CPU (compiling costs minutes there)")
    ap.add_argument("--loader-batches", type=int, default=20)
    ap.add_argument("--peak-tflops", type=float, help="the device's dense bf16 peak, for MFU")
    ap.add_argument("--budget", type=float, default=300.0, help="seconds for the whole run")
    args = ap.parse_args()
    start = time.perf_counter()
    device = torch.device(args.device)
    compile_modes = {"auto": [False, True] if device.type == "cuda" else [False], "on": [True], "off": [False],
                     "both": [False, True]}[args.compile]
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    with tempfile.TemporaryDirectory() as tmp:
        body = write_body_model_dir(Path(tmp) / "body")
        torch.manual_seed(0)
        cfg = ModelConfig(backbone="vit_b", **(TINY if args.tiny else {}))
        model = build_model(cfg, body).to(device)
        flops = forward_flops(model, device)
        peak = peak_tflops(device, args.peak_tflops)
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({torch.get_num_threads()} thr)"
        print(f"{name}, torch {torch.__version__}, {'tiny ViT' if args.tiny else 'ViT-B'}, {args.amp}; "
              f"{flops / 1e9:.2f} GFLOPs per forward per sample; peak {peak or 'unknown'} TFLOP/s")
        consumed = 0.0
        for compiled in compile_modes:
            for channels_last in (False, True):
                label = f"train batch {args.batch}, compile {'on' if compiled else 'off'}, " \
                        f"channels-last {'on' if channels_last else 'off'}"
                if time.perf_counter() - start > args.budget:
                    print(f"{label}: skipped (--budget {args.budget:.0f} s spent)")
                    continue
                rate = train_rate(model, device, args, compiled, channels_last)
                consumed = max(consumed, rate)
                mfu = f"{3 * flops * rate / (peak * 1e12):.1%}" if peak else "n/a"
                print(f"{label}: {rate:9.2f} samples/s  MFU {mfu}")
        rate = eval_rate(model, device, args)
        mfu = f"{flops * rate / (peak * 1e12):.1%}" if peak else "n/a"
        print(f"eval batch {args.eval_batch}: {rate:9.2f} images/s  MFU {mfu}")
        per_worker = loader_rate(Path(tmp), body, args)
        print(f"loader: {per_worker:.1f} samples/s per worker process; the fastest training step consumes "
              f"{consumed:.1f} samples/s -> {max(1, math.ceil(consumed / per_worker))} workers per device")
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
