"""3DPW metrics exactly as the reference computes them (MPJPE, PA-MPJPE, MPVPE), plus PA-MPVPE and PCK/AUC.

Per sample, in metres until the final x1000:
* joints = H36M regressor . mesh, minus the H36M pelvis, 14 evaluation joints; MPJPE on those; PA-MPJPE after
  a similarity Procrustes of the prediction onto the ground truth;
* MPVPE over all vertices, each mesh minus its own SMPL pelvis (neutral SMPL regressor row 0).
The H36M regressor's dtype decides the joint arithmetic (float64 for the official .npy), the meshes' dtype the
vertex arithmetic (float32), as in the reference.
"""

from __future__ import annotations

import numpy as np

from hap3d.body.joints import H36M_EVAL14

METRICS = ("mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe")


def rigid_align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity transform (scale, rotation, translation) of points ``a`` (N,3) onto ``b`` minimising L2."""
    n = a.shape[0]
    mu_a, mu_b = a.mean(0), b.mean(0)
    h = (a - mu_a).T @ (b - mu_b) / n
    u, s, vt = np.linalg.svd(h)
    r = vt.T @ u.T
    if np.linalg.det(r) < 0:
        s[-1] = -s[-1]
        vt[2] = -vt[2]
        r = vt.T @ u.T
    c = np.sum(s) / np.var(a, axis=0).sum()
    t = mu_b - (c * r) @ mu_a
    return (c * r @ a.T).T + t


def _pa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.stack([rigid_align(a[i], b[i]) for i in range(len(a))])


def h36m_eval_joints(mesh: np.ndarray, h36m_regressor: np.ndarray) -> np.ndarray:
    """(B, V, 3) meshes -> (B, 14, 3) pelvis-relative H36M evaluation joints."""
    j = np.einsum("jv,bvc->bjc", h36m_regressor, mesh)
    j = j - j[:, :1]
    return j[:, list(H36M_EVAL14)]


def mesh_errors(
    pred_mesh: np.ndarray,
    gt_mesh: np.ndarray,
    h36m_regressor: np.ndarray,
    smpl_root_regressor: np.ndarray,
    with_pa_mpvpe: bool = True,
) -> dict[str, np.ndarray]:
    """Per-sample metrics in mm for (B, V, 3) predicted and ground-truth meshes (any root; both re-rooted)."""
    gt_j = h36m_eval_joints(gt_mesh, h36m_regressor)
    pred_j = h36m_eval_joints(pred_mesh, h36m_regressor)
    pred_j_pa = _pa(pred_j, gt_j)
    root = np.asarray(smpl_root_regressor).reshape(-1)
    gt_v = gt_mesh - np.einsum("v,bvc->bc", root, gt_mesh)[:, None]
    pred_v = pred_mesh - np.einsum("v,bvc->bc", root, pred_mesh)[:, None]
    out = {
        "mpjpe": np.sqrt(((pred_j - gt_j) ** 2).sum(-1)).mean(-1) * 1000,
        "pa_mpjpe": np.sqrt(((pred_j_pa - gt_j) ** 2).sum(-1)).mean(-1) * 1000,
        "mpvpe": np.sqrt(((pred_v - gt_v) ** 2).sum(-1)).mean(-1) * 1000,
    }
    if with_pa_mpvpe:
        pred_v_pa = _pa(pred_v.astype(np.float64), gt_v.astype(np.float64))
        out["pa_mpvpe"] = np.sqrt(((pred_v_pa - gt_v) ** 2).sum(-1)).mean(-1) * 1000
    return out


def pck_auc(errors_mm: np.ndarray, thresholds_mm: np.ndarray | None = None) -> tuple[float, float]:
    """PCK at 150 mm and the area under the PCK curve over 0..150 mm, from per-joint errors (any shape)."""
    thresholds = np.linspace(0, 150, 31) if thresholds_mm is None else thresholds_mm
    e = np.asarray(errors_mm).reshape(-1)
    curve = np.array([(e <= t).mean() for t in thresholds])
    return float((e <= 150).mean()), float(curve.mean())
