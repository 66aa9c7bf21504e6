"""Procrustes alignment and the degenerate cases the reference turns into NaN."""

from __future__ import annotations

import json

import numpy as np
from scipy.spatial.transform import Rotation

from hap3d.engine.evaluate import EvalResult
from hap3d.engine.metrics import degenerate_alignments, mesh_errors, rigid_align


def test_rigid_align_recovers_a_similarity_transform():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((14, 3))
    b = 1.7 * a @ Rotation.from_rotvec([0.3, -1.2, 0.5]).as_matrix().T + np.array([0.1, 2.0, -3.0])
    np.testing.assert_allclose(rigid_align(a, b), b, atol=1e-12)


def test_coincident_predicted_points_align_to_the_centroid_and_are_counted():
    rng = np.random.default_rng(1)
    gt = rng.standard_normal((2, 14, 3))
    pred = gt.copy()
    pred[1] = 0.25  # a collapsed prediction: every joint at one point
    aligned = rigid_align(pred[1], gt[1])
    assert np.isfinite(aligned).all()
    np.testing.assert_allclose(aligned, np.broadcast_to(gt[1].mean(0), (14, 3)))
    np.testing.assert_array_equal(degenerate_alignments(pred, gt), [False, True])
    assert np.isnan(rigid_align(np.full((14, 3), np.nan), gt[0])).all()  # no LinAlgError from the SVD


def test_mesh_errors_stay_finite_for_a_collapsed_mesh():
    rng = np.random.default_rng(2)
    v = 50
    gt = rng.standard_normal((2, v, 3))
    pred = gt + 0.01 * rng.standard_normal((2, v, 3))
    pred[0] = 0.0
    h36m = np.zeros((17, v))
    h36m[np.arange(17), np.arange(17)] = 1.0
    root = np.zeros(v)
    root[0] = 1.0
    errs = mesh_errors(pred, gt, h36m, root)
    assert all(np.isfinite(e).all() for e in errs.values()), errs


def test_degenerate_count_is_reported(tmp_path):
    per_sample = {k: np.array([10.0, 20.0]) for k in ("mpjpe", "pa_mpjpe", "mpvpe", "pa_mpvpe")}
    result = EvalResult(per_sample, [0, 1], ["s", "s"], extra={"pa_degenerate_samples": 1})
    assert "1 with all predicted joints at one point" in result.summary()
    written = json.loads(result.write(tmp_path).read_text())
    assert written["pa_degenerate_samples"] == 1
