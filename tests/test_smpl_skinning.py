"""SMPL.forward's batched skinning: the per-depth kinematics against a joint-by-joint chain, and a model first run
under inference_mode that must still train afterwards (its cached tree indices are plain tensors)."""

from __future__ import annotations

import torch

from hap3d.body.rotations import axis_angle_to_rotmat
from hap3d.body.smpl import SMPL


def _chain(smpl: SMPL, pose: torch.Tensor, joints: torch.Tensor) -> torch.Tensor:
    """Posed joints composed one joint at a time, in index order (the textbook forward kinematics)."""
    rot = axis_angle_to_rotmat(pose.reshape(pose.shape[0], -1, 3))
    parents = smpl.parents.tolist()
    world_rot, world_pos = [rot[:, 0]], [joints[:, 0]]
    for i in range(1, len(parents)):
        p = parents[i]
        world_pos.append(world_pos[p] + (world_rot[p] @ (joints[:, i] - joints[:, p]).unsqueeze(-1)).squeeze(-1))
        world_rot.append(world_rot[p] @ rot[:, i])
    return torch.stack(world_pos, 1)


def test_kinematics_by_depth_equal_the_joint_chain(body_dir):
    smpl = SMPL.from_dir(body_dir).double()
    g = torch.Generator().manual_seed(0)
    pose = 0.6 * torch.randn(5, 72, generator=g, dtype=torch.float64)
    betas = torch.randn(5, 10, generator=g, dtype=torch.float64)
    out = smpl(pose, betas)
    rest = smpl(torch.zeros_like(pose), betas).joints  # zero pose: the joints stay at their rest positions
    torch.testing.assert_close(out.joints, _chain(smpl, pose, rest), atol=1e-10, rtol=0)


def test_inference_mode_first_then_gradients(body_dir):
    smpl = SMPL.from_dir(body_dir)
    pose, betas = 0.3 * torch.randn(2, 72), torch.randn(2, 10)
    with torch.inference_mode():
        ref = smpl(pose, betas).vertices
    pose.requires_grad_(True)
    out = smpl(pose, betas).vertices
    out.square().sum().backward()
    assert torch.equal(out.detach(), ref)
    assert pose.grad is not None and pose.grad.abs().sum() > 0
