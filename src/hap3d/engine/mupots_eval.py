"""MuPoTS-3D evaluation (``hap3d eval --testset MuPoTS``): 3DPCK at 150 mm, per sequence and overall, for all
people and for the matched ones, in Python (the dataset's own evaluation is MATLAB code).

Definition (Mehta et al., 3DV 2018): a joint is correct when its root-relative 3D position (root: the pelvis) is
within 150 mm of the ground truth's; 3DPCK is the percentage of correct joints over the 14 joints head top,
thorax, shoulders, elbows, wrists, hips, knees and ankles. "Matched people" counts only the people the 2D
detector found (their input pose exists); "all people" counts every annotated person, the missed ones with no
correct joint. A sequence's value pools its people's joints; the overall value is the mean over sequences.
Predicted joints: ``J_regressor_mi_smpl.npy`` (its first 17 rows, as the reference) from the body-model folder
on the predicted mesh, else the H36M regressor's rows by joint name (labelled in the output).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hap3d.body.joints import H36M17
from hap3d.body.regressors import find_regressor, load_regressor
from hap3d.config import Config
from hap3d.data import dataset_root
from hap3d.data.mupots import MUPOTS17, MuPoTS
from hap3d.engine.distributed import DistInfo
from hap3d.engine.evaluate import EvalResult, Evaluator, write_csv
from hap3d.model.hap import HapModel
from hap3d.utils import atomic_write

PCK_JOINTS = tuple(range(14))  # MUPOTS17[:14]: head top .. left ankle
ROOT = MUPOTS17.index("Pelvis")
THRESHOLD_MM = 150.0
MI_REGRESSOR = "J_regressor_mi_smpl.npy"
H36M_NAME = {"Thorax": "Neck", "Spine": "Torso", "Head": "Nose"}  # MuPoTS names the H36M regressor spells so


def mupots_regressor(body_model_dir: str | Path) -> tuple[np.ndarray, str]:
    """(17, V) rows in MUPOTS17 order and where they come from."""
    path = Path(body_model_dir) / MI_REGRESSOR
    if path.is_file():
        return load_regressor(path)[:17], str(path)
    h36m = load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct"))
    rows = [h36m[H36M17.index(H36M_NAME.get(n, n))] for n in MUPOTS17]
    return np.stack(rows), f"J_regressor_h36m_correct rows by joint name ({MI_REGRESSOR} not in {body_model_dir})"


def correct_joints(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(B,) number of the 14 PCK joints less than 150 mm off, for (B, 17, 3) joints in mm (any root)."""
    p = pred - pred[:, ROOT : ROOT + 1]
    g = gt - gt[:, ROOT : ROOT + 1]
    err = np.linalg.norm((p - g)[:, list(PCK_JOINTS)], axis=-1)
    return (err < THRESHOLD_MM).sum(-1)


class MuPoTSEvaluator(Evaluator):
    def __init__(self, body_model_dir: str | Path, device: object = "cpu") -> None:  # no gendered SMPL here
        import torch

        self.device = torch.device(device)
        self.regressor, self.joints_from = mupots_regressor(body_model_dir)

    def score(self, pred: np.ndarray, targets: dict) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        pj = np.einsum("jv,bvc->bjc", self.regressor, pred.astype(np.float64)) * 1000
        gj = targets["joint_cam"].cpu().numpy().astype(np.float64)
        correct = correct_joints(pj, gj)
        p, g = pj - pj[:, ROOT : ROOT + 1], gj - gj[:, ROOT : ROOT + 1]
        sel = list(PCK_JOINTS)
        return ({"pck3d": correct / len(PCK_JOINTS) * 100, "mpjpe": np.linalg.norm(p - g, axis=-1)[:, sel].mean(-1)},
                p[:, sel] / 1000, g[:, sel] / 1000)


def pck_table(result: EvalResult, dataset: MuPoTS) -> dict[str, dict[str, float]]:
    """Per sequence: 3DPCK of all and of matched people, their counts; and 'overall' (mean over sequences)."""
    correct = dict(zip(result.aids, result.per_sample["pck3d"] / 100 * len(PCK_JOINTS)))
    table = {}
    for seq in sorted({p.sequence for p in dataset.people}, key=lambda s: (len(s), s)):
        people = [p for p in dataset.people if p.sequence == seq]
        matched = [correct[p.aid] for p in people if p.aid in correct]
        hits = float(sum(matched))
        table[seq] = {"all": 100 * hits / (len(PCK_JOINTS) * len(people)),
                      "matched": 100 * hits / (len(PCK_JOINTS) * len(matched)) if matched else 0.0,
                      "people": len(people), "matched_people": len(matched)}
    table["overall"] = {k: float(np.mean([v[k] for v in table.values()])) for k in ("all", "matched")} | {
        k: sum(v[k] for v in table.values()) for k in ("people", "matched_people")}
    return table


def format_pck_table(table: dict[str, dict[str, float]]) -> str:
    lines = [f"{'sequence':<8} {'people':>6} {'matched':>7} {'3DPCK all':>9} {'matched':>8}"]
    lines += [f"{s:<8} {v['people']:>6} {v['matched_people']:>7} {v['all']:>9.1f} {v['matched']:>8.1f}"
              for s, v in table.items()]
    return "\n".join(lines)


def evaluate_mupots(
    cfg: Config, model: HapModel, out_dir: str | Path, info: DistInfo, detector: str = "hhrnet",
    progress: bool = True,
) -> tuple[dict[str, dict[str, float]], EvalResult]:
    """3DPCK of a model on MuPoTS-3D; ``mupots.json`` and ``mupots_per_sequence.csv`` (and the per-person
    ``eval_*`` files) written by rank 0."""
    dataset = MuPoTS(dataset_root(cfg.data.root, "MuPoTS"), detector)
    evaluator = MuPoTSEvaluator(cfg.data.body_model_dir, info.device)
    result = evaluator.run(model, dataset, cfg.eval.test_batch_size, cfg.data.num_workers, cfg.eval.amp,
                           progress and info.is_main, cfg.eval.runtime, info=info)
    result.label = f"MuPoTS-3D, {detector} input"
    table = pck_table(result, dataset)
    if info.is_main:
        out = Path(out_dir)
        result.extra |= {"input": detector, "joints_from": evaluator.joints_from}
        result.write(out, "eval")
        payload = {"threshold_mm": THRESHOLD_MM, "input": detector, "joints_from": evaluator.joints_from,
                   "per_sequence": table}
        atomic_write(out / "mupots.json", lambda p: Path(p).write_text(json.dumps(payload, indent=2)))
        write_csv(out / "mupots_per_sequence.csv", ["sequence", "people", "matched_people", "pck_all", "pck_matched"],
                  [[s, v["people"], v["matched_people"], f"{v['all']:.4f}", f"{v['matched']:.4f}"]
                   for s, v in table.items()])
    return table, result
