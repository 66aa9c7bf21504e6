"""Rotation conversions used by the body model and the network heads.

The formulas follow the reference numerically: the SMPL layer converts axis-angle through a normalised
quaternion with ``1e-8`` added to each component (smplpytorch), and rotation matrices are mapped back to
axis-angle through a Shepperd quaternion (torchgeometry 0.1.2), which equals the exact log map to float
rounding but stays stable near pi.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def axis_angle_to_rotmat(aa: torch.Tensor) -> torch.Tensor:
    """(..., 3) axis-angle -> (..., 3, 3) rotation matrices (smplpytorch's quaternion route, 1e-8 offset)."""
    angle = torch.linalg.vector_norm(aa + 1e-8, dim=-1, keepdim=True)
    axis = aa / angle
    half = angle * 0.5
    quat = torch.cat([torch.cos(half), torch.sin(half) * axis], dim=-1)
    return quat_to_rotmat(quat)


def quat_to_rotmat(quat: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z), normalised here -> (..., 3, 3)."""
    quat = quat / quat.norm(p=2, dim=-1, keepdim=True)
    w, x, y, z = quat.unbind(-1)
    w2, x2, y2, z2 = w * w, x * x, y * y, z * z
    wx, wy, wz = w * x, w * y, w * z
    xy, xz, yz = x * y, x * z, y * z
    rows = [
        w2 + x2 - y2 - z2, 2 * xy - 2 * wz, 2 * wy + 2 * xz,
        2 * wz + 2 * xy, w2 - x2 + y2 - z2, 2 * yz - 2 * wx,
        2 * xz - 2 * wy, 2 * wx + 2 * yz, w2 - x2 - y2 + z2,
    ]
    return torch.stack(rows, dim=-1).reshape(quat.shape[:-1] + (3, 3))


def rot6d_to_rotmat(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) continuous 6D representation -> (..., 3, 3).

    The 6 numbers are a row-major 3x2 matrix; its two columns are Gram-Schmidt orthonormalised and the
    third column is their cross product (the reference took the cross product over the first size-3 axis,
    which broke batches of exactly 3; here it is always the vector axis).
    """
    m = x.reshape(x.shape[:-1] + (3, 2))
    a1, a2 = m[..., 0], m[..., 1]
    b1 = F.normalize(a1, dim=-1)
    b2 = F.normalize(a2 - (b1 * a2).sum(-1, keepdim=True) * b1, dim=-1)
    b3 = torch.cross(b1, b2, dim=-1)
    return torch.stack([b1, b2, b3], dim=-1)


def rotmat_to_quat(rot: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(..., 3, 3) -> (..., 4) quaternion (w, x, y, z) by Shepperd's four-case method (torchgeometry's)."""
    rt = rot.transpose(-1, -2)
    r00, r01, r02 = rt[..., 0, 0], rt[..., 0, 1], rt[..., 0, 2]
    r10, r11, r12 = rt[..., 1, 0], rt[..., 1, 1], rt[..., 1, 2]
    r20, r21, r22 = rt[..., 2, 0], rt[..., 2, 1], rt[..., 2, 2]

    t0 = 1 + r00 - r11 - r22
    q0 = torch.stack([r12 - r21, t0, r01 + r10, r20 + r02], -1)
    t1 = 1 - r00 + r11 - r22
    q1 = torch.stack([r20 - r02, r01 + r10, t1, r12 + r21], -1)
    t2 = 1 - r00 - r11 + r22
    q2 = torch.stack([r01 - r10, r20 + r02, r12 + r21, t2], -1)
    t3 = 1 + r00 + r11 + r22
    q3 = torch.stack([t3, r12 - r21, r20 - r02, r01 - r10], -1)

    small_z = r22 < eps
    c0 = (small_z & (r00 > r11)).unsqueeze(-1)
    c1 = (small_z & ~(r00 > r11)).unsqueeze(-1)
    c2 = (~small_z & (r00 < -r11)).unsqueeze(-1)
    c3 = ~(c0 | c1 | c2)
    q = q0 * c0 + q1 * c1 + q2 * c2 + q3 * c3
    t = t0.unsqueeze(-1) * c0 + t1.unsqueeze(-1) * c1 + t2.unsqueeze(-1) * c2 + t3.unsqueeze(-1) * c3
    return q * (0.5 / torch.sqrt(t))


def quat_to_axis_angle(q: torch.Tensor) -> torch.Tensor:
    """(..., 4) quaternion (w, x, y, z) -> (..., 3) axis-angle, taking the short way round."""
    w, xyz = q[..., :1], q[..., 1:]
    s = torch.linalg.vector_norm(xyz, dim=-1, keepdim=True)
    two_theta = 2 * torch.where(w < 0, torch.atan2(-s, -w), torch.atan2(s, w))
    k = torch.where(s > 0, two_theta / torch.where(s > 0, s, torch.ones_like(s)), torch.full_like(s, 2.0))
    return xyz * k


def rotmat_to_axis_angle(rot: torch.Tensor) -> torch.Tensor:
    """(..., 3, 3) -> (..., 3) axis-angle; NaNs (degenerate inputs) become 0 as in the reference."""
    aa = quat_to_axis_angle(rotmat_to_quat(rot))
    return torch.where(torch.isnan(aa), torch.zeros_like(aa), aa)


def rot6d_to_axis_angle(x: torch.Tensor) -> torch.Tensor:
    """(..., 6) -> (..., 3): the root-orientation head's output as SMPL axis-angle."""
    return rotmat_to_axis_angle(rot6d_to_rotmat(x))
