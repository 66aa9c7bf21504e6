"""The seven L1 training terms of 3DCrowdNet, as per-element tensors, and their reductions.

Targets and masks are those of a training sample (docs/data.md, "The training sample"). Image-space terms are
in 64-space pixels scaled by 1/8 (i.e. in PositionNet grid units), camera-space terms in metres, pose in radians.
"""

from __future__ import annotations

from typing import Literal, Mapping, NamedTuple

import torch

LOSS_NAMES = (
    "body_joint_img",
    "smpl_joint_img",
    "smpl_pose",
    "smpl_shape",
    "body_joint_proj",
    "body_joint_cam",
    "smpl_joint_cam",
)


class LossTerm(NamedTuple):
    value: torch.Tensor  # per-element loss, masked
    mask: torch.Tensor  # same shape: 0 where the element is not supervised


def _per_sample(x: torch.Tensor, ndim: int) -> torch.Tensor:
    """A (B,) per-sample scalar as (B, 1, ...) with ``ndim`` dimensions."""
    return x.float().reshape((-1,) + (1,) * (ndim - 1))


def loss_terms(
    pred: Mapping[str, torch.Tensor],
    targets: Mapping[str, torch.Tensor],
    meta: Mapping[str, torch.Tensor],
    graph_index: torch.Tensor,
) -> dict[str, LossTerm]:
    """Per-element losses with their masks. ``graph_index`` picks the 15 graph joints out of SMPL30."""
    g = graph_index.to(pred["joint_img"].device)
    joint_img = pred["joint_img"].float()
    pose, shape = pred["smpl_pose"].float(), pred["smpl_shape"].float()
    joint_cam, joint_proj = pred["joint_cam"].float(), pred["joint_proj"].float()
    is_3d, valid_fit = meta["is_3D"], meta["is_valid_fit"]

    z_is_3d = torch.ones_like(joint_img)
    z_is_3d[:, :, 2:] = _per_sample(is_3d, 3)
    specs = {
        "body_joint_img": (joint_img, targets["orig_joint_img"][:, g], meta["orig_joint_trunc"][:, g] * z_is_3d, 8),
        "smpl_joint_img": (
            joint_img, targets["fit_joint_img"][:, g], meta["fit_joint_trunc"][:, g] * _per_sample(valid_fit, 3), 8
        ),
        "smpl_pose": (pose, targets["pose_param"], meta["fit_param_valid"] * _per_sample(valid_fit, 2), 1),
        "smpl_shape": (shape, targets["shape_param"], _per_sample(valid_fit, 2), 1),
        "body_joint_proj": (joint_proj, targets["orig_joint_img"][..., :2], meta["orig_joint_trunc"], 8),
        "body_joint_cam": (joint_cam, targets["orig_joint_cam"], meta["orig_joint_valid"] * _per_sample(is_3d, 3), 1),
        "smpl_joint_cam": (joint_cam, targets["fit_joint_cam"], _per_sample(valid_fit, 3), 1),
    }
    out = {}
    for name, (p, t, m, div) in specs.items():
        m = m.float().expand_as(p)
        out[name] = LossTerm((p - t.float()).abs() * m / div, m)
    return out


def reduce_losses(
    terms: Mapping[str, LossTerm],
    mode: Literal["mean", "valid_mean"] = "mean",
    weights: Mapping[str, float] | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Reduce per-element terms to scalars and their weighted sum.

    'mean' is the reference: a plain mean over all elements, masked ones included, so a batch with few valid
    joints gets a small gradient. 'valid_mean' divides by the number of supervised elements instead.
    """
    weights = weights or {}
    means: dict[str, torch.Tensor] = {}
    for name, term in terms.items():
        if mode == "mean":
            means[name] = term.value.mean()
        else:
            means[name] = term.value.sum() / (term.mask != 0).sum().clamp(min=1)
    total = sum(weights.get(k, 1.0) * v for k, v in means.items())
    return total, means
