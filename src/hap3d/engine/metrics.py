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


def is_degenerate(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether no similarity alignment of ``a`` onto ``b`` is defined: non-finite points, or points of ``a`` that
    coincide (zero spread: the reference divides 0 by 0 there and its PA metrics become NaN)."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return True
    va, vb = np.var(a, axis=0).sum(), np.var(b, axis=0).sum()
    return bool(va <= np.finfo(np.float64).eps * max(vb, np.finfo(np.float64).tiny))


def rigid_align(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity transform (scale, rotation, translation) of points ``a`` (N,3) onto ``b`` minimising L2.

    Coincident points of ``a`` are mapped onto the centroid of ``b`` (the limit of the optimum as the scale
    goes to 0) and non-finite input gives NaN, where the reference returns NaN or fails in the SVD;
    :func:`is_degenerate` tells such samples apart so that evaluations can count them."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return np.full(a.shape, np.nan, dtype=np.result_type(a, b))
    n = a.shape[0]
    mu_a, mu_b = a.mean(0), b.mean(0)
    if is_degenerate(a, b):
        return np.broadcast_to(mu_b, a.shape).astype(np.result_type(a, b))
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


def degenerate_alignments(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(B,) True where :func:`rigid_align` of a predicted sample has no proper solution (see :func:`is_degenerate`)."""
    return np.array([is_degenerate(pred[i], gt[i]) for i in range(len(pred))], dtype=bool)


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


def joint_errors(pred_j: np.ndarray, gt_j: np.ndarray) -> dict[str, np.ndarray]:
    """Per-sample MPJPE and PA-MPJPE (the input's unit) of (B, J, 3) root-relative joints."""
    return {"mpjpe": np.sqrt(((pred_j - gt_j) ** 2).sum(-1)).mean(-1),
            "pa_mpjpe": np.sqrt(((_pa(pred_j, gt_j) - gt_j) ** 2).sum(-1)).mean(-1)}
