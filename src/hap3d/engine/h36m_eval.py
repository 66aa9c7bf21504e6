"""Human3.6M evaluation (``hap3d eval --testset Human36M``): protocol 1, MPJPE over every test frame of subjects
9 and 11 (all cameras), and protocol 2, PA-MPJPE on the frontal camera (4), both every 64th frame as the
reference's test split; per action.

Joints: the H36M regressor on the predicted mesh, minus its pelvis, against the dataset's 3D joints (camera
frame) minus theirs, on the 14 evaluation joints of the 3DPW protocol. The input 2D pose comes from a COCO
keypoint-results file or, labelled as an oracle in every output, from the ground truth (data/h36m_test.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from hap3d.body.joints import H36M_EVAL14
from hap3d.body.regressors import find_regressor, load_regressor
from hap3d.config import Config
from hap3d.data import dataset_root
from hap3d.data.h36m_test import Human36MTest
from hap3d.engine.distributed import DistInfo
from hap3d.engine.evaluate import EvalResult, Evaluator
from hap3d.engine.metrics import h36m_eval_joints, joint_errors
from hap3d.model.hap import HapModel
from hap3d.utils import atomic_write

# the number each protocol reports
PROTOCOL_METRIC = {1: "mpjpe", 2: "pa_mpjpe"}


class H36MEvaluator(Evaluator):
    """Scores predicted meshes against the dataset's 3D joints: only the H36M regressor is needed."""

    def __init__(self, body_model_dir: str | Path, device: object = "cpu") -> None:  # no gendered SMPL here
        import torch

        self.device = torch.device(device)
        self.h36m = load_regressor(find_regressor(body_model_dir, "J_regressor_h36m_correct"))

    def score(self, pred: np.ndarray, targets: dict) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
        pj = h36m_eval_joints(pred, self.h36m)
        gt = targets["joint_cam"].cpu().numpy().astype(np.float64) / 1000.0  # mm -> m, as the predictions
        gj = (gt - gt[:, :1])[:, list(H36M_EVAL14)]
        return {k: v * 1000 for k, v in joint_errors(pj, gj).items()}, pj, gj


def evaluate_h36m(
    cfg: Config, model: HapModel, out_dir: str | Path, info: DistInfo, keypoints: str | Path | None = None,
    progress: bool = True,
) -> dict[int, EvalResult]:
    """Both protocols: ``eval_p1.*`` and ``eval_p2.*`` (per sample, per action) and ``eval.json`` with the
    reported numbers, written by rank 0. Returns {protocol: result}."""
    root = dataset_root(cfg.data.root, "Human36M")
    evaluator = H36MEvaluator(cfg.data.body_model_dir, info.device)
    results = {}
    for protocol in (1, 2):
        dataset = Human36MTest(root, protocol, keypoints)
        result = evaluator.run(model, dataset, cfg.eval.test_batch_size, cfg.data.num_workers, cfg.eval.amp,
                               progress and info.is_main, cfg.eval.runtime, info=info)
        result.label = f"Human3.6M protocol {protocol}, input: {dataset.input}"
        result.extra |= {"protocol": protocol, "input": dataset.input, "without_input": dataset.without_input}
        results[protocol] = result
    if info.is_main:
        out = Path(out_dir)
        for protocol, result in results.items():
            result.write(out, f"eval_p{protocol}")
        summary = {f"protocol_{p}": {"metric": PROTOCOL_METRIC[p], "value_mm": r.means[PROTOCOL_METRIC[p]],
                                     "num_samples": len(r.aids)} for p, r in results.items()}
        summary["input"] = results[1].extra["input"]
        atomic_write(out / "eval.json", lambda p: Path(p).write_text(json.dumps(summary, indent=2)))
    return results
