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
from hap3d.engine.distributed import loader_workers
from hap3d.engine.metrics import degenerate_alignments, h36m_eval_joints, mesh_errors, pck_auc
from hap3d.precision import autocast, check_amp
from hap3d.utils import atomic_write

# The registered datasets (hap3d.data) this protocol measures: their readers yield, per person, the gendered SMPL
# fit (targets smpl_pose, smpl_shape, smpl_trans, gender) and records with a ``sequence``. A new test set is such a
# reader in the registry, and its name here.
TEST_SETS = ("PW3D",)


@dataclass
class EvalResult:
    per_sample: dict[str, np.ndarray]  # metric -> (N,)
    aids: list[int]
    sequences: list[str]
    pck150: float = 0.0
    auc: float = 0.0
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

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
        return (
            f"MPJPE {m['mpjpe']:.2f} mm | PA-MPJPE {m['pa_mpjpe']:.2f} mm | MPVPE {m['mpvpe']:.2f} mm | "
            f"PA-MPVPE {m['pa_mpvpe']:.2f} mm | PCK@150 {self.pck150:.3f} | AUC {self.auc:.3f} "
            f"({len(self.aids)} person-frames)"
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
                   "per_sequence": self.per_sequence(), "seconds": self.seconds, **self.extra}
        atomic_write(out / f"{name}.json", lambda p: Path(p).write_text(json.dumps(payload, indent=2)))
        keys = list(self.per_sample)
        per_sample = [[aid, self.sequences[i], *(f"{self.per_sample[k][i]:.4f}" for k in keys)]
                      for i, aid in enumerate(self.aids)]
        _write_csv(out / f"{name}_per_sample.csv", ["aid", "sequence", *keys], per_sample)
        per_sequence = [[s, v["count"], *(f"{v[k]:.4f}" for k in keys)] for s, v in self.per_sequence().items()]
        _write_csv(out / f"{name}_per_sequence.csv", ["sequence", "count", *keys], per_sequence)
        return out / f"{name}.json"


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
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

    @torch.no_grad()
    def run(
        self,
        model: torch.nn.Module,
        dataset: torch.utils.data.Dataset,
        batch_size: int = 64,
        num_workers: int = 0,
        amp: str = "none",
        progress: bool = True,
    ) -> EvalResult:
        amp = check_amp(amp, self.device.type, "eval.amp")
        start = time.time()
        was_training = model.training
        model.eval()
        loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False,
                                             num_workers=loader_workers(num_workers))
        metrics: dict[str, list[np.ndarray]] = {}
        joint_errors, aids, seqs = [], [], []
        degenerate = 0  # samples whose predicted joints collapse to a point: no Procrustes alignment exists
        records = getattr(dataset, "records", None)
        for batch in tqdm(loader, desc="eval", disable=not progress, unit="batch", dynamic_ncols=True):
            inp = {k: v.to(self.device) for k, v in batch["inputs"].items()}
            with autocast(self.device.type, amp):
                out = model(inp["img"], inp["joints"], inp["joints_mask"])
            pred = out["smpl_mesh_cam"].float().cpu().numpy()
            gt = self.gt_meshes(batch["targets"])
            errs = mesh_errors(pred, gt, self.h36m, self.root)
            for k, v in errs.items():
                metrics.setdefault(k, []).append(v)
            pj, gj = h36m_eval_joints(pred, self.h36m), h36m_eval_joints(gt, self.h36m)
            joint_errors.append(np.sqrt(((pj - gj) ** 2).sum(-1)) * 1000)
            degenerate += int(degenerate_alignments(pj, gj).sum())
            idx = batch["meta"]["index"].tolist()
            aids.extend(int(a) for a in batch["meta"]["aid"])
            seqs.extend(records[i].sequence if records is not None else "all" for i in idx)
        model.train(was_training)
        pck, auc = pck_auc(np.concatenate(joint_errors)) if joint_errors else (0.0, 0.0)
        return EvalResult({k: np.concatenate(v) for k, v in metrics.items()}, aids, seqs, pck, auc, time.time() - start,
                          {"pa_degenerate_samples": degenerate})
