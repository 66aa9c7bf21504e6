"""Inference runtimes (hap3d.model.runtime): speed of eager, fast and int8 on the HAP ViT-B network, and what int8
costs in accuracy on the synthetic 3DPW test set with a trained quickstart network.

Speed: the three runtimes of one set of weights in the same process, timed alternately, with each one's largest
output difference from eager fp32. Accuracy: `hap3d quickstart` (budget ``--budget``, into ``--quickstart`` or a
temporary folder; an existing one is reused) trains a network; its predictions on the synthetic 3DPW test set
under each runtime are compared with eager fp32 (mean / max per-vertex and per-joint distance, mm) and scored
against the ground truth (MPJPE, PA-MPJPE, MPVPE).

    python benchmarks/bench_runtime.py [--depth 12] [--batches 1 8] [--repeats 5] [--budget tiny]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_model import person_inputs

from hap3d.config import ModelConfig
from hap3d.model import build_model
from hap3d.model.runtime import RUNTIME_MODES, prepare_for_inference
from hap3d.synth import write_body_model_dir


def runtimes_of(model: torch.nn.Module) -> dict[str, torch.nn.Module]:
    """Each runtime's network for the same weights ('fast' converts a copy, 'int8' quantises one)."""
    eager = model.eval()
    nets = {"eager": eager, "fast": prepare_for_inference(copy.deepcopy(eager), "fast")}
    nets["int8"] = prepare_for_inference(eager, "int8")
    assert tuple(nets) == RUNTIME_MODES
    return nets


def speed(args: argparse.Namespace, body: Path) -> None:
    torch.manual_seed(0)
    nets = runtimes_of(build_model(ModelConfig(backbone="vit_b", depth=args.depth), body))
    print(f"speed: ViT depth {args.depth}, {args.threads} threads, median of {args.repeats}, alternating runtimes")
    print(f"{'batch':>5s} " + " ".join(f"{m + ' img/s':>12s}" for m in nets) + "   max |mesh - eager| (m)")
    for b in args.batches:
        inp = person_inputs(b)
        times: dict[str, list[float]] = {m: [] for m in nets}
        with torch.inference_mode():
            outs = {m: net(**inp)["smpl_mesh_cam"] for m, net in nets.items()}  # also the warm-up
            for _ in range(args.repeats):
                for m, net in nets.items():
                    t = time.perf_counter()
                    net(**inp)
                    times[m].append(time.perf_counter() - t)
        rate = {m: b / statistics.median(v) for m, v in times.items()}
        diffs = ", ".join(f"{m} {(o - outs['eager']).abs().max().item():.1e}" for m, o in outs.items() if m != "eager")
        speedup = ", ".join(f"{m} {rate[m] / rate['eager']:.2f}x" for m in nets if m != "eager")
        print(f"{b:5d} " + " ".join(f"{v:12.2f}" for v in rate.values()) + f"   {diffs}   (vs eager: {speedup})")


def accuracy(args: argparse.Namespace, folder: Path) -> None:
    from hap3d.engine.evaluate import Evaluator
    from hap3d.engine.metrics import h36m_eval_joints, mesh_errors
    from hap3d.engine.run import build_test_set
    from hap3d.model.checkpoint import load_model_checkpoint
    from hap3d.quickstart import quickstart_config, run_quickstart

    cfg = quickstart_config(folder, args.budget, "cpu")
    checkpoints = sorted((Path(cfg.output_dir) / "checkpoints").glob("epoch_*.safetensors"))
    if not checkpoints:
        run_quickstart(folder, args.budget, "cpu", progress=False)
        checkpoints = sorted((Path(cfg.output_dir) / "checkpoints").glob("epoch_*.safetensors"))
    last = max(checkpoints, key=lambda p: int(p.stem.split("_")[1]))
    model = build_model(cfg.model, cfg.data.body_model_dir, vposer_dir=False)
    load_model_checkpoint(model, last)
    test_set = build_test_set(cfg)
    evaluator = Evaluator(cfg.data.body_model_dir)
    loader = torch.utils.data.DataLoader(test_set, batch_size=16, shuffle=False)
    preds: dict[str, list[np.ndarray]] = {m: [] for m in RUNTIME_MODES}
    gts = []
    nets = runtimes_of(model)
    with torch.inference_mode():
        for batch in loader:
            inp = batch["inputs"]
            for m, net in nets.items():
                preds[m].append(net(inp["img"], inp["joints"], inp["joints_mask"])["smpl_mesh_cam"].numpy())
            gts.append(evaluator.gt_meshes(batch["targets"]))
    gt = np.concatenate(gts)
    ref = np.concatenate(preds["eager"])
    print(f"accuracy: quickstart --budget {args.budget} network ({last.name}), synthetic 3DPW test, {len(gt)} people")
    print(f"{'runtime':8s} {'MPJPE':>8s} {'PA-MPJPE':>9s} {'MPVPE':>8s}   "
          "vs eager fp32: mesh mean/max   joints mean/max (mm)")
    for m, chunks in preds.items():
        pred = np.concatenate(chunks)
        err = {k: float(np.mean(v)) for k, v in mesh_errors(pred, gt, evaluator.h36m, evaluator.root).items()}
        dv = np.linalg.norm(pred - ref, axis=-1) * 1000
        dj = np.linalg.norm(h36m_eval_joints(pred, evaluator.h36m) - h36m_eval_joints(ref, evaluator.h36m), axis=-1)
        dj = dj * 1000
        print(f"{m:8s} {err['mpjpe']:8.2f} {err['pa_mpjpe']:9.2f} {err['mpvpe']:8.2f}   "
              f"{dv.mean():10.3f} / {dv.max():7.3f}   {dj.mean():10.3f} / {dj.max():7.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--depth", type=int, default=12)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", default="tiny", choices=["tiny", "small", "medium"])
    ap.add_argument("--quickstart", type=Path, help="quickstart folder to reuse or create (default: a temporary one)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        body = write_body_model_dir(Path(tmp) / "body")
        speed(args, body)
        accuracy(args, args.quickstart or Path(tmp) / "quickstart")


if __name__ == "__main__":
    main()
