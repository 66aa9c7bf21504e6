"""The quickstart: the project's main job on procedural inputs, with no licensed files.

Current stages: procedural body model -> network (tiny or full ViT) -> forward pass on a synthetic person
crop -> outputs written to the run directory (NPZ, OBJ, JSON summary). Training and evaluation stages are
added by the engine (see the README's roadmap); this runner already goes through the same public APIs.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from hap3d.config import ModelConfig, to_dict

BUDGETS = {
    "tiny": {"depth": 2, "embed_dim": 64, "num_heads": 2, "lift_dim": 128, "batch": 2},
    "small": {"depth": 4, "embed_dim": 192, "num_heads": 3, "lift_dim": 512, "batch": 4},
    "medium": {"depth": 12, "embed_dim": 768, "num_heads": 12, "lift_dim": 2048, "batch": 4},
}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def synthetic_person_inputs(model_cfg: ModelConfig, batch: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """A batch of crops with a projected procedural body's joints as the input 2D pose (64-space)."""
    from hap3d.body.joints import get_joint_set

    rng = np.random.default_rng(seed)
    n = model_cfg.img_size
    img = np.full((batch, 3, n, n), 0.5, np.float32) + 0.1 * rng.standard_normal((batch, 3, n, n)).astype(np.float32)
    # A stick figure of SMPL30 joints in a standing pose inside the crop (heatmap space is n/4 wide).
    smpl30 = get_joint_set("smpl30")
    hm = model_cfg.heatmap_size
    base = rng.uniform(0.3 * hm, 0.7 * hm, size=(batch, 1, 2))
    offsets = rng.normal(0, 0.12 * hm, size=(batch, smpl30.num_joints, 2))
    joints = np.clip(base + offsets, 0, hm - 1).astype(np.float32)
    mask = np.ones((batch, smpl30.num_joints, 1), np.float32)
    return {"img": torch.from_numpy(np.clip(img, 0, 1)), "joints": torch.from_numpy(joints), "joints_mask": torch.from_numpy(mask)}


def run_quickstart(out: Path, budget: str = "small", device: str = "auto") -> int:
    from hap3d.body.synth import write_body_model_dir
    from hap3d.model import build_model

    out.mkdir(parents=True, exist_ok=True)
    dev = resolve_device(device)
    b = BUDGETS[budget]
    t0 = time.time()
    body_dir = out / "body_model"
    if not (body_dir / "smpl").is_dir():
        write_body_model_dir(body_dir)
    print(f"[1/3] procedural body model in {body_dir} ({time.time() - t0:.1f} s)")

    cfg = ModelConfig(backbone="vit_b", depth=b["depth"], embed_dim=b["embed_dim"], num_heads=b["num_heads"], lift_dim=b["lift_dim"])
    model = build_model(cfg, body_dir).to(dev).eval()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"[2/3] model: ViT depth {cfg.depth}, width {cfg.embed_dim}, {n_params / 1e6:.1f} M parameters, device {dev}")

    inputs = {k: v.to(dev) for k, v in synthetic_person_inputs(cfg, b["batch"]).items()}
    with torch.no_grad():
        t1 = time.time()
        pred = model(**inputs)
        dt = time.time() - t1
    arrays = {k: v.detach().cpu().numpy() for k, v in pred.items()}
    np.savez_compressed(out / "predictions.npz", **arrays)
    _write_obj(out / "mesh_0.obj", arrays["mesh_cam_render"][0], model.smpl.faces.cpu().numpy())
    summary = {
        "budget": budget,
        "device": str(dev),
        "model_config": to_dict(cfg),
        "batch": b["batch"],
        "forward_seconds": dt,
        "outputs": {k: list(v.shape) for k, v in arrays.items()},
        "finite": bool(all(np.isfinite(v).all() for v in arrays.values())),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"[3/3] forward pass of {b['batch']} crops in {dt:.2f} s -> {out / 'predictions.npz'}, {out / 'mesh_0.obj'}")
    return 0 if summary["finite"] else 1


def _write_obj(path: Path, verts: np.ndarray, faces: np.ndarray) -> None:
    lines = [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"f {a + 1} {b + 1} {c + 1}" for a, b, c in faces]
    path.write_text("\n".join(lines) + "\n")
