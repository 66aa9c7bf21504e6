"""Rotation conversions against exact references (scipy's rotation-vector maps, float64)."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from hap3d.body.rotations import axis_angle_to_rotmat, rot6d_to_rotmat, rotmat_to_axis_angle


def random_rotvecs(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    axes = rng.standard_normal((n, 3))
    axes /= np.linalg.norm(axes, axis=1, keepdims=True)
    angles = rng.uniform(0, np.pi, (n, 1))
    angles[:5] = [[0.0], [1e-7], [np.pi - 1e-6], [np.pi], [np.pi / 2]]
    return axes * angles


def test_axis_angle_to_rotmat_matches_exact():
    aa = random_rotvecs(2000)
    ours = axis_angle_to_rotmat(torch.from_numpy(aa)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(aa).as_matrix(), atol=1e-7)


def test_rotmat_to_axis_angle_is_exact_log_map():
    aa = random_rotvecs(5000, seed=1)[5:]
    aa = aa[np.linalg.norm(aa, axis=1) < np.pi - 1e-3]  # at pi the sign of the axis is arbitrary
    ours = rotmat_to_axis_angle(torch.from_numpy(Rotation.from_rotvec(aa).as_matrix())).numpy()
    np.testing.assert_allclose(ours, aa, atol=1e-10)


def test_rotmat_to_axis_angle_near_pi_gives_the_same_rotation():
    aa = random_rotvecs(50, seed=2)
    aa = aa / np.linalg.norm(aa, axis=1, keepdims=True).clip(1e-12) * (np.pi - 1e-9)
    back = rotmat_to_axis_angle(torch.from_numpy(Rotation.from_rotvec(aa).as_matrix())).numpy()
    np.testing.assert_allclose(Rotation.from_rotvec(back).as_matrix(), Rotation.from_rotvec(aa).as_matrix(), atol=1e-8)


def test_identity_and_batch_of_three():
    """A batch of exactly 3 broke the reference's cross product; here the result is per sample."""
    x = torch.tensor([[1.0, 0, 0, 1, 0, 0]] * 3)
    r = rot6d_to_rotmat(x)
    torch.testing.assert_close(r, torch.eye(3).expand(3, 3, 3))
    assert torch.equal(rotmat_to_axis_angle(r), torch.zeros(3, 3))


def test_rot6d_gives_proper_rotations():
    x = torch.randn(100, 6, dtype=torch.float64)
    r = rot6d_to_rotmat(x)
    eye = torch.eye(3, dtype=torch.float64).expand(100, 3, 3)
    torch.testing.assert_close(r.transpose(1, 2) @ r, eye)
    torch.testing.assert_close(torch.linalg.det(r), torch.ones(100, dtype=torch.float64))
    # the first column is the normalised first column of the 3x2 (row-major) input
    m = x.reshape(100, 3, 2)
    torch.testing.assert_close(r[..., 0], m[..., 0] / m[..., 0].norm(dim=-1, keepdim=True))
