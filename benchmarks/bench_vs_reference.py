"""hap3d beside the reference implementation, in ONE process, timed alternately (machine load hits both alike).

Runs inside the reference-bench harness (kept outside this repository: the reference code at its pinned commit, its
pinned CPU dependencies and the golden rule weights; see benchmarks/vs_reference.sh, which sets it up and calls
this script). Both networks carry the same weights and inputs; outputs are compared first. Measured:

- eval forward at batch 1 and 8: the reference; hap3d under ``reference_compat`` (eager); hap3d's default config
  with the default CPU runtime (``fast``) and with ``int8``;
- one training step at batch 4 (SGD, the seven L1 losses): the reference; hap3d (default config) as
  ``hap3d train`` builds its optimizer (fused);
- SMPL skinning at batch 64: the reference's layer, ``smplx.lbs`` when installed, hap3d's ``SMPL``;
- the bound of each network case (``ceiling.py``): the network's FLOPs at this CPU's matrix-product rate on the
  ViT's shapes, measured in the same run, i.e. the largest speed-up over the reference any implementation can get.

Prints a markdown table (``--doc FILE`` also replaces the table between the markers in FILE) and writes JSON with
``--out``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

BEGIN, END = "<!-- vs-reference:begin -->", "<!-- vs-reference:end -->"


def alternate(fns: list, reps: int, warm: int) -> list[float]:
    """Median seconds of each function, called in turn ``reps`` times after ``warm`` rounds."""
    for _ in range(warm):
        for f in fns:
            f()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(reps):
        for f, acc in zip(fns, times):
            t = time.perf_counter()
            f()
            acc.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


def ours(torch, arrays, extra, vposer, snapshot, **over):
    """hap3d's network with the reference snapshot's weights (body model and VPoser from the golden files)."""
    from hap3d.body.regressors import smpl30_regressor
    from hap3d.body.smpl import SMPL
    from hap3d.config import ModelConfig
    from hap3d.model.hap import HapModel

    model = HapModel(ModelConfig(backbone="vit_b", depth=12, **over), SMPL(arrays),
                     smpl30_regressor(arrays["J_regressor"], extra))
    state = {k[len("module."):]: v for k, v in snapshot.items()
             if not k[len("module."):].startswith(("human_model_layer.", "vposer."))}
    state.update({"vposer." + k: torch.from_numpy(v) for k, v in vposer.items()})
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith(("smpl.", "joint_regressor", "pixel_")) for k in missing)
    return model.eval()


def bench_eval(torch, ref_net, nets: dict, B, reps: int, res: dict) -> None:
    for b in (1, 8):
        x = B.model_inputs(torch, b)
        fns = [lambda: ref_net(x, {}, {}, "test")] + [
            (lambda n=n: n(x["img"], x["joints"], x["joints_mask"])) for n in nets.values()]
        with torch.inference_mode():
            med = alternate(fns, reps, warm=2)
        res[f"eval fp32 batch {b}"] = dict(zip(["reference", *nets], [m * 1000 / b for m in med]))
        print(f"eval batch {b}", res[f"eval fp32 batch {b}"], flush=True)


def bench_train(torch, ref_net, snapshot, model, G, B, reps: int, res: dict) -> None:
    from base import Trainer  # the reference's trainer (its optimizer settings)

    from hap3d.model.losses import loss_terms, reduce_losses

    t, m = G.case_b_targets(4, 12)
    x = B.model_inputs(torch, 4, train=True)
    targets = {k: torch.from_numpy(v) for k, v in t.items()}
    meta = {k: torch.from_numpy(v) for k, v in m.items()}
    ref_net.load_state_dict(snapshot, strict=False)
    trainer = Trainer()
    trainer.model = ref_net
    trainer.optimizer = trainer.get_optimizer(ref_net)
    trainer.set_lr(0)
    ref_net.train()

    def ref_step() -> None:
        trainer.optimizer.zero_grad()
        loss = trainer.model(x, targets, meta, "train")
        sum(v.mean() for v in loss.values()).backward()
        trainer.optimizer.step()

    model.train()
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=1e-5, fused=True)

    def our_step() -> None:
        opt.zero_grad(set_to_none=True)
        pred = model(x["img"], x["joints"], x["joints_mask"])
        total, _ = reduce_losses(loss_terms(pred, targets, meta, model.graph_index))
        total.backward()
        opt.step()

    med = alternate([ref_step, our_step], max(3, reps // 2), warm=1)
    res["train step fp32 batch 4"] = {"reference": med[0] * 1000 / 4, "default, fused SGD": med[1] * 1000 / 4}
    print("train", res["train step fp32 batch 4"], flush=True)


def bench_smpl(torch, ref_layer, arrays, reps: int, res: dict) -> None:
    from hap3d.body.smpl import SMPL

    smpl = SMPL(arrays)
    g = torch.Generator().manual_seed(0)
    b = 64
    pose, betas = 0.5 * torch.randn(b, 72, generator=g), torch.randn(b, 10, generator=g)
    trans = torch.randn(b, 3, generator=g)
    fns = {"reference": lambda: ref_layer(pose, betas, trans)[0], "hap3d": lambda: smpl(pose, betas, trans).vertices}
    try:
        from smplx.lbs import lbs

        posedirs = smpl.th_posedirs.reshape(-1, smpl.th_posedirs.shape[-1]).T.contiguous()
        fns["smplx"] = lambda: lbs(betas, pose, smpl.th_v_template, smpl.th_shapedirs, posedirs,
                                   smpl.th_J_regressor, smpl.parents.long(), smpl.th_weights)[0] + trans[:, None]
    except ImportError:
        pass
    with torch.inference_mode():
        outs = {k: f() for k, f in fns.items()}
        med = alternate(list(fns.values()), reps, warm=2)
    res["SMPL batch 64"] = {k: m * 1000 / b for k, m in zip(fns, med)}
    res["SMPL batch 64 max |verts - reference| m"] = {
        k: float((o - outs["reference"]).abs().max()) for k, o in outs.items()}
    print("smpl", res["SMPL batch 64"], res["SMPL batch 64 max |verts - reference| m"], flush=True)


def bench_ceiling(torch, model, B, reps: int, res: dict) -> None:
    import ceiling

    for b, case in ((1, "eval fp32 batch 1"), (8, "eval fp32 batch 8"), (4, "train step fp32 batch 4")):
        x = B.model_inputs(torch, b)
        bound = ceiling.measure(model, {k: x[k] for k in ("img", "joints", "joints_mask")}, reps)
        res[case + " | bound"] = ({"fp32": bound.train_ms} if case.startswith("train") else
                                  {"fp32": bound.fp32_ms, "int8": bound.int8_ms})
        print("bound", bound.line(), flush=True)


def markdown(res: dict) -> str:
    """The results as the table of docs/benchmarks.md (ms per image or sample, and speed-ups vs the reference)."""
    info = res["machine"]
    rows = [f"Measured {info['date']} on {info['cpu']} ({info['logical_cpus']} logical CPUs, "
            f"{', '.join(info['isa']) or 'no AVX2'}), torch {info['torch']}, {info['threads']} threads, "
            f"median of {info['reps']} alternating repeats; load average {info['load'][0]:.1f} at the start and "
            f"{info['load_end'][0]:.1f} at the end.", "",
            "| case | reference, ms per image or sample | hap3d, ms per image or sample (speed-up vs reference) "
            "| bound on this CPU (largest possible speed-up) |",
            "|---|---|---|---|"]
    for case, times in res.items():
        if case in ("machine", "parity") or "|" in case:
            continue
        ref = times["reference"]
        ours_ = ", ".join(f"{k} {v:.1f} ({ref / v:.2f}x)" for k, v in times.items() if k != "reference")
        bound = ", ".join(f"{k} {v:.1f} ({ref / v:.2f}x)" for k, v in res.get(case + " | bound", {}).items())
        rows.append(f"| {case} | {ref:.1f} | {ours_} | {bound or '-'} |")
    rows += ["", "Outputs against the reference (max |difference|, same weights and inputs): " + "; ".join(
        f"{k}: mesh {v['smpl_mesh_cam']:.1e} m, joint_img {v['joint_img']:.1e}" for k, v in res["parity"].items())
        + "; SMPL vertices: " + ", ".join(
        f"{k} {v:.1e} m" for k, v in res["SMPL batch 64 max |verts - reference| m"].items() if k != "reference")
        + "."]
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ref", required=True, help="the extracted reference 3DCrowdNet_RELEASE folder")
    ap.add_argument("--harness", required=True, help="the reference-bench harness folder")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--doc", type=Path, help="markdown file whose vs-reference table to replace")
    a = ap.parse_args()
    sys.path.insert(0, a.harness)
    import bench_reference as B  # the harness: reference set-up, golden weights and inputs
    import numpy as np

    from hap3d.body.smpl import load_smpl_arrays
    from hap3d.model.runtime import prepare_for_inference

    torch, _, V = B.setup_reference(os.path.abspath(a.ref), a.threads)
    ref_net, snapshot = B.build_model(torch, V)
    ref_net.eval()
    info = B.machine_info(torch)
    res: dict = {"machine": {"cpu": info["cpu"], "logical_cpus": info["logical_cpus"], "isa": info["isa"],
                             "torch": torch.__version__, "threads": a.threads, "reps": a.reps,
                             "python": platform.python_version(), "load": os.getloadavg(),
                             "date": time.strftime("%Y-%m-%d")}}
    arrays = load_smpl_arrays(os.path.join(B.GOLD_DIR, "body", "smpl_neutral.npz"))
    extra = np.load(os.path.join(B.GOLD_DIR, "body", "regressors.npz"))["J_regressor_extra"]
    vposer = dict(np.load(os.path.join(B.GOLD_DIR, "vposer_decoder.npz")))
    build = functools.partial(ours, torch, arrays, extra, vposer, snapshot)
    nets = {"compat eager": build(reference_compat=True), "default fast": prepare_for_inference(build(), "fast")}
    nets["default int8"] = prepare_for_inference(build(), "int8")
    x = B.model_inputs(torch, 4)
    with torch.inference_mode():
        r = ref_net(x, {}, {}, "test")
        res["parity"] = {name: {k: float((net(x["img"], x["joints"], x["joints_mask"])[k] - r[k]).abs().max())
                                for k in ("smpl_mesh_cam", "joint_img")} for name, net in nets.items()}
    print("parity", res["parity"], flush=True)
    bench_eval(torch, ref_net, nets, B, a.reps, res)
    bench_smpl(torch, ref_net.module.human_model_layer, arrays, a.reps * 3, res)
    bench_train(torch, ref_net, snapshot, build(), B.G, B, a.reps, res)
    bench_ceiling(torch, build().eval(), B, a.reps, res)
    res["machine"]["load_end"] = os.getloadavg()
    table = markdown(res)
    print(table)
    caller = Path(os.environ.get("HAP3D_CALLER_DIR", "."))  # vs_reference.sh runs this from the harness folder
    a.out, a.doc = (caller / p if p else None for p in (a.out, a.doc))
    if a.out:
        a.out.write_text(json.dumps(res, indent=1) + "\n")
    if a.doc:
        text = a.doc.read_text(encoding="utf-8")
        head, rest = text.split(BEGIN, 1)
        a.doc.write_text(head + BEGIN + "\n" + table + "\n" + END + rest.split(END, 1)[1], encoding="utf-8")


if __name__ == "__main__":
    main()
