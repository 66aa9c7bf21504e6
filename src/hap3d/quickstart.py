"""The quickstart: the project's main job end to end on its embedded default, with no licensed files.

1. a procedural body model in the SMPL file layout (``hap3d body synth``);
2. synthetic datasets written in the real on-disk formats (``hap3d data synth``);
3. training of a small network through the same path as ``hap3d train``;
4. evaluation of the untrained and the trained network on the synthetic 3DPW test set (``hap3d eval``'s path);
5. a few rendered overlays through the demo's predictor and renderer.

Everything lands in one run directory: metrics JSON/CSV, loss and metric plots, overlays, checkpoints. Running
again into the same ``--out`` reuses its body model and data; its run is continued with ``--resume``, started again
with ``--overwrite``, and otherwise left alone (an error says so). An ``--out`` made with another budget is refused
(its data and network differ in size). The body model and the data are each written under a temporary name and
renamed when complete, so a set-up killed half-way is redone by the next call, never trusted.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from hap3d.config import load_config
from hap3d.engine.rundir import RunExists, describe_run
from hap3d.files import check_output_dir, staged_dir
from hap3d.utils import Hap3dError, atomic_write

# Training work per budget; 'small' (the default) fits in a few minutes on a 2-core laptop CPU.
BUDGETS = {
    "tiny": {"data": "tiny", "epochs": 2, "steps": 8, "batch": 4, "depth": 2, "dim": 64, "heads": 2},
    "small": {"data": "small", "epochs": 3, "steps": 40, "batch": 8, "depth": 3, "dim": 96, "heads": 3},
    "medium": {"data": "medium", "epochs": 8, "steps": 250, "batch": 16, "depth": 4, "dim": 192, "heads": 3},
}
BUDGET_FILE = "budget.json"  # in --out: the budget its data and run were made with


def quickstart_config(out: Path, budget: str, device: str):
    b = BUDGETS[budget]
    overrides = [
        f"output_dir={out / 'run'}",
        f"data.root={out / 'data'}",
        f"data.body_model_dir={out / 'body_model'}",
        "data.num_workers=0",
        "reference_compat=false",
        f"model.depth={b['depth']}", f"model.embed_dim={b['dim']}", f"model.num_heads={b['heads']}",
        f"model.vit_conv_dim={4 * b['dim']}", "model.drop_path_rate=0.0",
        "train.optimizer=adamw", "train.lr=0.001", "train.weight_decay=0.01", "train.schedule=cosine",
        f"train.warmup_steps={b['steps'] // 2}", f"train.end_epoch={b['epochs']}",
        f"train.train_batch_size={b['batch']}",
        f"train.max_steps_per_epoch={b['steps']}", "train.loss_reduction=valid_mean", "train.log_every=5",
        "train.eval_every_epoch=true", "train.grad_clip=5.0",
        f"eval.device={device}", "eval.test_batch_size=16",
    ]
    return load_config(None, overrides)


def previous_budget(out: Path) -> str | None:
    """The budget of the quickstart already in ``out`` (None for a fresh folder)."""
    marker = out / BUDGET_FILE
    if not marker.is_file():
        return None
    try:
        budget = json.loads(marker.read_text(encoding="utf-8"))["budget"]
        if budget not in BUDGETS:
            raise ValueError(f"unknown budget {budget!r}")
    except (ValueError, KeyError, TypeError) as err:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise Hap3dError(
            f"{marker} is malformed ({type(err).__name__}: {err}); it records the budget of the quickstart in {out}. "
            "Choose a fresh --out, or delete that folder to start again"
        ) from None
    return budget


def run_quickstart(
    out: Path, budget: str = "small", device: str = "auto", progress: bool = True, resume: bool = False,
    overwrite: bool = False,
) -> int:
    """Run the whole quickstart into ``out``. A previous run there is continued with ``resume``, replaced with
    ``overwrite``, else refused."""
    from hap3d.engine.distributed import resolve_device
    from hap3d.engine.evaluate import Evaluator
    from hap3d.engine.run import build_test_set, train
    from hap3d.model import build_model
    from hap3d.synth import write_body_model_dir, write_synthetic_datasets

    t0 = time.time()
    out = Path(out)
    before_budget = previous_budget(out)
    if before_budget not in (None, budget):
        raise Hap3dError(
            f"{out} holds a quickstart of budget '{before_budget}' (its data, network size and checkpoints); "
            f"rerun with --budget {before_budget}{' --resume' if resume else ''}, or choose another --out for "
            f"'{budget}'"
        )
    cfg = quickstart_config(out, budget, device)
    run_dir = Path(cfg.output_dir)
    dev = resolve_device(device)
    check_output_dir(out)
    found = describe_run(run_dir) if run_dir.is_dir() else None
    if found and not (resume or overwrite):  # before any work: a finished run is never lost without a word
        raise RunExists(f"{run_dir} already holds {found}; pass --resume to continue it, --overwrite to start it "
                        "again, or choose another --out")
    atomic_write(out / BUDGET_FILE, lambda p: Path(p).write_text(json.dumps({"budget": budget})))
    body = Path(cfg.data.body_model_dir)
    if not body.is_dir():
        write_body_model_dir(body)  # written under a temporary name, renamed when complete
    print(f"[1/5] procedural body model: {body}  ({time.time() - t0:.0f} s)")
    if not Path(cfg.data.root).is_dir():
        with staged_dir(cfg.data.root) as stage:  # all datasets or none: a killed set-up is redone
            counts = write_synthetic_datasets(stage, body, size=BUDGETS[budget]["data"], seed=0)
        print("[2/5] synthetic datasets (real formats): " + ", ".join(f"{k} {v}" for k, v in counts.items())
              + f"  ({time.time() - t0:.0f} s)")
    else:
        print(f"[2/5] synthetic datasets already in {cfg.data.root}")

    torch.manual_seed(cfg.train.seed)  # the network `hap3d train` would build, kept to evaluate it before and after
    model = build_model(cfg.model, body)
    test_set = build_test_set(cfg)
    evaluator = Evaluator(body, dev)
    before = evaluator.run(model.to(dev), test_set, cfg.eval.test_batch_size, progress=False, runtime=cfg.eval.runtime)
    print(f"[3/5] untrained network on synthetic 3DPW: {before.summary()}")

    # `hap3d train`'s path, training `model` in place
    train(cfg, run_dir, resume=resume, progress=progress, model=model, overwrite=overwrite)
    after = evaluator.run(model, test_set, cfg.eval.test_batch_size, progress=False, runtime=cfg.eval.runtime)
    after.write(run_dir, "eval_final")
    before.write(run_dir, "eval_untrained")
    print(f"[4/5] trained network on synthetic 3DPW:   {after.summary()}")

    overlays = render_overlays(model, test_set, run_dir / "overlays", dev)
    print(f"[5/5] {len(overlays)} overlays in {run_dir / 'overlays'}")
    summary = {
        "budget": budget, "device": str(dev), "seconds": time.time() - t0,
        "untrained_mm": before.means, "trained_mm": after.means, "run_dir": str(run_dir),
        "overlays": [str(p) for p in overlays],
    }
    (run_dir / "quickstart.json").write_text(json.dumps(summary, indent=2))
    b, a = before.means["mpjpe"], after.means["mpjpe"]
    print(f"MPJPE untrained {b:.1f} mm -> trained {a:.1f} mm ({1 - a / b:.0%} lower); run in {run_dir}, data and "
          f"body model in {out}  ({time.time() - t0:.0f} s)")
    print("This network has seen a few hundred synthetic people: it shows the pipeline works end to end, not how "
          "HAP does on real photos.")
    return 0 if a < b else 1


def render_overlays(model, test_set, out: Path, device, count: int = 3) -> list[Path]:
    """Run the demo's predictor and renderer on a few synthetic 3DPW images with their OpenPose keypoints."""
    from hap3d.body.joints import convert_joints
    from hap3d.data.io import load_image_rgb
    from hap3d.infer.demo import render_views, write_item
    from hap3d.infer.predictor import Predictor

    predictor = Predictor(model, device)
    by_image: dict[Path, list[np.ndarray]] = {}
    for rec in test_set.records:
        by_image.setdefault(rec.img_path, []).append(convert_joints(rec.input_joints, rec.input_set, "coco17"))
    written = []
    for path, people in list(by_image.items())[:count]:
        image = load_image_rgb(path)
        result = predictor.predict(image, people)
        views = render_views(image, result.people, predictor.faces, "auto")
        write_item(out / path.stem, views, result.people, predictor.faces, ("obj",))
        written.append(out / path.stem / "overlay.png")
    return written
