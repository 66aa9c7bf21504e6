"""Evaluation on the configured test set: batched forward on any device, ground-truth meshes in batches, the
reference's metric protocol (docs/training.md, "Evaluation").

The test set is ``data.testset``, a dataset of the registry (:mod:`hap3d.data`) that this protocol can measure
(:data:`TEST_SETS`; 3DPW by default, and 3DPW-Crowd with ``data.crowd``). Outputs per person-frame (MPJPE,
PA-MPJPE, MPVPE, PA-MPVPE in mm), their means over person-frames (the reference's aggregation), a per-sequence
table, and PCK/AUC on the 14 joints; written as JSON and CSV (per sample, per sequence).
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from hap3d.body.regressors import find_regressor, load_regressor
from hap3d.body.smpl import GenderedSMPL
from hap3d.engine.distributed import DistInfo, all_gather_object, loader_workers
from hap3d.engine.metrics import degenerate_alignments, h36m_eval_joints, mesh_errors, pck_auc
from hap3d.model.runtime import prepare_for_inference, resolve_runtime
from hap3d.precision import autocast, check_amp
from hap3d.utils import atomic_write

# The registered datasets (hap3d.data) this protocol measures: their readers yield, per person, the gendered SMPL
# fit (targets smpl_pose, smpl_shape, smpl_trans, gender) and records with a ``sequence``. A new test set is such a
# reader in the registry, and its name here.
TEST_SETS = ("PW3D",)


METRIC_NAMES = {"mpjpe": "MPJPE", "pa_mpjpe": "PA-MPJPE", "mpvpe": "MPVPE", "pa_mpvpe": "PA-MPVPE"}


@dataclass
class EvalResult:
    per_sample: dict[str, np.ndarray]  # metric -> (N,)
    aids: list[int]
    sequences: list[str]
    pck150: float = 0.0
    auc: float = 0.0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)
    name: str = "eval"  # the files' stem in a run directory: eval_epoch_N, or val_epoch_N for the validation split
    label: str = ""  # the evaluated set for people ("3DPW validation"), leading the summary

    @property
    def means(self) -> dict[str, float]:
        return {k: float(np.mean(v)) for k, v in self.per_sample.items()}

    def per_sequence(self) -> dict[str, dict[str, float]]:
        seqs = np.array(self.sequences)
        return {
            s: {k: float(np.mean(v[seqs == s])) for k, v in self.per_sample.items()} | {"count": int((seqs == s).sum())}
            for s in sorted(set(self.sequences))
        }

    def summary(self) -> str:
        m = self.means
        return (f"{self.label}: " if self.label else "") + " | ".join(
            [f"{METRIC_NAMES.get(k, k)} {v:.2f} mm" for k, v in m.items()]
            + [f"PCK@150 {self.pck150:.3f} | AUC {self.auc:.3f} ({len(self.aids)} person-frames)"]
        ) + (f"; {n} with all predicted joints at one point (PA aligns them to the centroid)"
             if (n := self.extra.get("pa_degenerate_samples")) else "")

    def per_sequence_table(self) -> str:
        """The per-sequence means (mm) as an aligned text table, with the overall means last."""
        keys = list(self.per_sample)
        rows = [(s, v["count"], [v[k] for k in keys]) for s, v in self.per_sequence().items()]
        rows.append(("all", len(self.aids), [self.means[k] for k in keys]))
        width = max(len("sequence"), *(len(r[0]) for r in rows))
        lines = [f"{'sequence':<{width}} {'count':>6} " + " ".join(f"{k:>9}" for k in keys)]
        lines += [f"{s:<{width}} {n:>6} " + " ".join(f"{v:>9.2f}" for v in vals) for s, n, vals in rows]
        return "\n".join(lines)

    def write(self, out_dir: str | Path, name: str = "eval") -> Path:
        """metrics JSON (means, per-sequence, settings), a per-sample CSV and a per-sequence CSV."""
        out = Path(out_dir)
        payload = {"means_mm": self.means, "pck150": self.pck150, "auc": self.auc, "num_samples": len(self.aids),
                   "per_sequence": self.per_sequence(), "seconds": self.seconds,
                   **({"evaluated_on": self.label} if self.label else {}), **self.extra}
        atomic_write(out / f"{name}.json", lambda p: Path(p).write_text(json.dumps(payload, indent=2)))
        keys = list(self.per_sample)
        per_sample = [[aid, self.sequences[i], *(f"{self.per_sample[k][i]:.4f}" for k in keys)]
                      for i, aid in enumerate(self.aids)]
        write_csv(out / f"{name}_per_sample.csv", ["aid", "sequence", *keys], per_sample)
        per_sequence = [[s, v["count"], *(f"{v[k]:.4f}" for k in keys)] for s, v in self.per_sequence().items()]
        write_csv(out / f"{name}_per_sequence.csv", ["sequence", "count", *keys], per_sequence)
        return out / f"{name}.json"


def write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    def write(p: str) -> None:
        with open(p, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)

    atomic_write(path, write)


class Evaluator:
    """Holds what the metric needs besides predictions: gendered SMPL and the H36M / pelvis regressors."""

    def __init__(self, body_model_dir: str | Path, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.gendered = GenderedSMPL.from_dir(body_model_dir).to(self.device)
        self.h36m = load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct"))
        self.root = self.gendered.layers[0].th_J_regressor[0].cpu().numpy()

    @torch.no_grad()
    def gt_meshes(self, targets: dict[str, torch.Tensor]) -> np.ndarray:
        t = {k: torch.as_tensor(v).to(self.device) for k, v in targets.items()}
        mesh = self.gendered(t["smpl_pose"].float(), t["smpl_shape"].float(), t["smpl_trans"].float(), t["gender"])
        return mesh.cpu().numpy()

    def score(self, pred: np.ndarray, targets: dict) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        """Per-sample metrics (mm) of a batch of predicted meshes, and the predicted and ground-truth evaluation
        joints (B, 14, 3, metres) for PCK: here against the gendered SMPL ground-truth meshes (3DPW)."""
        gt = self.gt_meshes(targets)
        return (mesh_errors(pred, gt, self.h36m, self.root), h36m_eval_joints(pred, self.h36m),
                h36m_eval_joints(gt, self.h36m))

    @torch.no_grad()
    def run(
        self,
        model: torch.nn.Module,
        dataset: torch.utils.data.Dataset,
        batch_size: int = 64,
        num_workers: int = 0,
        amp: str = "none",
        progress: bool = True,
        runtime: str = "auto",
        info: DistInfo | None = None,
    ) -> EvalResult:
        """``runtime``: how the network runs (hap3d.model.runtime; 'auto': the fast CPU path, or $HAP3D_RUNTIME).

        Under torchrun (``info.distributed``) every process evaluates every world_size-th batch of the one-process
        order (so each batch holds the samples it would hold in one process) and all get the gathered result,
        in dataset order: the numbers of a one-process evaluation."""
        amp = check_amp(amp, self.device.type, "eval.amp")
        start = time.time()
        was_training = model.training
        runtime = resolve_runtime(runtime, self.device.type)
        net = prepare_for_inference(model, runtime, self.device.type)
        batches = [list(range(i, min(i + batch_size, len(dataset)))) for i in range(0, len(dataset), batch_size)]
        if info is not None and info.distributed:
            batches = batches[info.rank :: info.world_size]
        loader = torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=loader_workers(num_workers))
        metrics: dict[str, list[np.ndarray]] = {}
        joint_errors, aids, seqs, indices = [], [], [], []
        degenerate = 0  # samples whose predicted joints collapse to a point: no Procrustes alignment exists
        records = getattr(dataset, "records", None)
        for batch in tqdm(loader, desc="eval", disable=not progress, unit="batch", dynamic_ncols=True):
            inp = {k: v.to(self.device) for k, v in batch["inputs"].items()}
            with autocast(self.device.type, amp):
                out = net(inp["img"], inp["joints"], inp["joints_mask"])
            pred = out["smpl_mesh_cam"].float().cpu().numpy()
            errs, pj, gj = self.score(pred, batch["targets"])
            for k, v in errs.items():
                metrics.setdefault(k, []).append(v)
            joint_errors.append(np.sqrt(((pj - gj) ** 2).sum(-1)) * 1000)
            degenerate += int(degenerate_alignments(pj, gj).sum())
            idx = batch["meta"]["index"].tolist()
            indices.extend(idx)
            aids.extend(int(a) for a in batch["meta"]["aid"])
            seqs.extend(records[i].sequence if records is not None else "all" for i in idx)
        model.train(was_training)
        part = Shard(indices, aids, seqs, {k: np.concatenate(v) for k, v in metrics.items()},
                     np.concatenate(joint_errors) if joint_errors else np.zeros((0, 14)), degenerate)
        if info is not None and info.distributed:
            part = Shard.merge(all_gather_object(part, info))
        pck, auc = pck_auc(part.joint_errors) if len(part.indices) else (0.0, 0.0)
        return EvalResult(part.metrics, part.aids, part.sequences, pck, auc, time.time() - start,
                          {"pa_degenerate_samples": part.degenerate, "amp": amp, "runtime": runtime})


@dataclass
class Shard:
    """One process's share of an evaluation: per-sample values with their dataset indices."""

    indices: list[int]
    aids: list[int]
    sequences: list[str]
    metrics: dict[str, np.ndarray]  # metric -> (n,)
    joint_errors: np.ndarray  # (n, 14) mm
    degenerate: int

    @staticmethod
    def merge(parts: list[Shard]) -> Shard:
        """The processes' shares as one, in dataset order."""
        indices = [i for p in parts for i in p.indices]
        order = np.argsort(indices, kind="stable")
        keys = next((list(p.metrics) for p in parts if p.metrics), [])

        def cat(arrays: list[np.ndarray]) -> np.ndarray:
            return np.concatenate([a for a in arrays if len(a)] or [np.zeros(0)])[order]

        return Shard(
            [indices[i] for i in order], [[a for p in parts for a in p.aids][i] for i in order],
            [[s for p in parts for s in p.sequences][i] for i in order],
            {k: cat([p.metrics[k] for p in parts if k in p.metrics]) for k in keys},
            np.concatenate([p.joint_errors for p in parts])[order], sum(p.degenerate for p in parts))
