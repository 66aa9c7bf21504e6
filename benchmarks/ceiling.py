"""The fastest the network can run on this CPU: its FLOPs at the matrix-product rate measured here, on its own shapes.

A speed-up target is only meaningful below this bound. The bound is generous: it charges every FLOP of the network
(attention, convolutions, the heads) at the rate of plain matrix products of the ViT's Linear shapes, and
nothing for memory traffic, element-wise operations or the host. ``int8`` charges the backbone's Linear FLOPs at
the rate of torch's dynamic int8 Linear on the same shapes and the rest at the fp32 rate.

    python benchmarks/ceiling.py [--depth 12] [--batches 1 8]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn


@dataclass
class Ceiling:
    batch: int
    gflops: float  # per image, the whole forward
    linear_gflops: float  # per image, the backbone's Linear layers
    fp32_gflops_per_s: float  # torch.mm on the backbone's Linear shapes
    int8_gops_per_s: float  # torch's dynamic int8 Linear on the same shapes

    @property
    def fp32_ms(self) -> float:
        """Lower bound of fp32 ms per image."""
        return 1000 * self.gflops / self.fp32_gflops_per_s

    @property
    def int8_ms(self) -> float:
        """Lower bound of ms per image with the backbone's Linear layers in int8."""
        rest = self.gflops - self.linear_gflops
        return 1000 * (rest / self.fp32_gflops_per_s + self.linear_gflops / self.int8_gops_per_s)

    @property
    def train_ms(self) -> float:
        """Lower bound of fp32 ms per sample of a training step: the backward costs about twice the forward."""
        return 3 * self.fp32_ms

    def line(self) -> str:
        return (f"batch {self.batch}: {self.gflops:.1f} GFLOPs/image ({self.linear_gflops:.1f} in the ViT's Linear "
                f"layers); matrix products on those shapes {self.fp32_gflops_per_s:.0f} GFLOP/s fp32, "
                f"{self.int8_gops_per_s:.0f} GOP/s int8 -> at least {self.fp32_ms:.0f} ms/image fp32, "
                f"{self.int8_ms:.0f} ms/image int8")


def linear_shapes(model: nn.Module, inputs: dict[str, torch.Tensor]) -> tuple[Counter, float]:
    """(rows, in, out) of every backbone Linear call in one forward, with counts, and the forward's total FLOPs."""
    from torch.utils.flop_counter import FlopCounterMode

    shapes: Counter = Counter()
    backbone = getattr(model, "backbone", model)

    def record(layer: nn.Linear, args: tuple, _out: torch.Tensor) -> None:
        shapes[(args[0].numel() // layer.in_features, layer.in_features, layer.out_features)] += 1

    hooks = [m.register_forward_hook(record) for m in backbone.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.inference_mode(), FlopCounterMode(display=False) as counter:
            model(**inputs)
    finally:
        for h in hooks:
            h.remove()
    return shapes, float(counter.get_total_flops())


def _median_seconds(fn, reps: int) -> float:
    fn()
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def gemm_rates(shapes: Counter, reps: int = 5) -> tuple[float, float]:
    """(fp32 GFLOP/s, int8 GOP/s) over the given Linear shapes, weighted by their counts."""
    from torch.ao.quantization import quantize_dynamic

    flops = sum(2 * r * i * o * n for (r, i, o), n in shapes.items())
    fp32 = int8 = 0.0
    g = torch.Generator().manual_seed(0)
    with torch.inference_mode():
        for (rows, fin, fout), count in shapes.items():
            x, w = torch.randn(rows, fin, generator=g), torch.randn(fin, fout, generator=g)
            fp32 += count * _median_seconds(lambda: torch.mm(x, w), reps)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                q = quantize_dynamic(nn.Sequential(nn.Linear(fin, fout)), {nn.Linear}, dtype=torch.qint8)
            int8 += count * _median_seconds(lambda: q(x), reps)
    return flops / fp32 / 1e9, flops / int8 / 1e9


def measure(model: nn.Module, inputs: dict[str, torch.Tensor], reps: int = 5) -> Ceiling:
    """The bound for ``model`` (eval mode, fp32) on a batch of ``inputs`` (keyword arguments of its forward)."""
    batch = next(iter(inputs.values())).shape[0]
    shapes, total = linear_shapes(model, inputs)
    fp32, int8 = gemm_rates(shapes, reps)
    linear = sum(2 * r * i * o * n for (r, i, o), n in shapes.items())
    return Ceiling(batch, total / batch / 1e9, linear / batch / 1e9, fp32, int8)


def main() -> None:
    from bench_model import person_inputs

    from hap3d.config import ModelConfig
    from hap3d.model import build_model
    from hap3d.synth import write_body_model_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        body = write_body_model_dir(Path(tmp) / "body_model")
        torch.manual_seed(0)
        model = build_model(ModelConfig(backbone="vit_b", depth=a.depth), body).eval()
        for b in a.batches:
            print(measure(model, person_inputs(b), a.reps).line(), flush=True)


if __name__ == "__main__":
    main()
