"""3DCrowdNet heads: pose-guided feature fusion, 3D joint localisation and the graph rotation regressor."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class Pose2Feat(nn.Module):
    """Fuse the image feature with the input-pose heatmaps: concat -> conv3x3 -> BN -> ReLU."""

    def __init__(self, feat_dim: int, num_joints: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv2d(feat_dim + num_joints, feat_dim, 3, padding=1),
            nn.BatchNorm2d(feat_dim),
            nn.ReLU(inplace=True),
        )

    def forward(self, feat: torch.Tensor, heatmaps: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([feat, heatmaps.to(feat.dtype)], dim=1))


def soft_argmax_3d(volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, J, D, H, W) logits -> (B, J, 3) expected (x, y, z) indices and the (B, J, D, H, W) probabilities."""
    b, j, d, h, w = volume.shape
    prob = F.softmax(volume.reshape(b, j, -1).float(), dim=2).reshape(b, j, d, h, w)
    x = (prob.sum(dim=(2, 3)) * torch.arange(w, device=prob.device, dtype=prob.dtype)).sum(-1)
    y = (prob.sum(dim=(2, 4)) * torch.arange(h, device=prob.device, dtype=prob.dtype)).sum(-1)
    z = (prob.sum(dim=(3, 4)) * torch.arange(d, device=prob.device, dtype=prob.dtype)).sum(-1)
    return torch.stack([x, y, z], dim=-1), prob


class PositionNet(nn.Module):
    """1x1 conv to a per-joint depth-binned volume, 3D soft-argmax, and a confidence read off the volume."""

    def __init__(self, in_channels: int, num_joints: int = 15, depth_bins: int = 8) -> None:
        super().__init__()
        self.num_joints = num_joints
        self.depth_bins = depth_bins
        self.conv = nn.Sequential(nn.Conv2d(in_channels, num_joints * depth_bins, 1))

    def forward(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """-> joint coordinates (B, J, 3) in grid units [0, size-1] and scores (B, J, 1)."""
        b, _, h, w = feat.shape
        volume = self.conv(feat).reshape(b, self.num_joints, self.depth_bins, h, w)
        coord, prob = soft_argmax_3d(volume)
        # Score = trilinear sample of the probability volume at the soft-argmax point.
        size = coord.new_tensor([w - 1, h - 1, self.depth_bins - 1])
        grid = (coord / size * 2 - 1).reshape(b * self.num_joints, 1, 1, 1, 3)
        score = F.grid_sample(
            prob.reshape(b * self.num_joints, 1, self.depth_bins, h, w), grid, mode="bilinear", align_corners=True
        )
        return coord, score.reshape(b, self.num_joints, 1)


class GraphConvBlock(nn.Module):
    """Per-vertex Linear+BN (separate weights per joint), then mixing by the fixed normalised adjacency."""

    def __init__(self, adj: torch.Tensor, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.register_buffer("adj", adj.clone(), persistent=False)
        self.fcbn_list = nn.ModuleList(
            nn.Sequential(nn.Linear(in_dim, out_dim), nn.BatchNorm1d(out_dim)) for _ in range(adj.shape[0])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:  # batch statistics and running-stat updates need each joint's own BatchNorm
            feat = torch.stack([m(x[:, v]) for v, m in enumerate(self.fcbn_list)], dim=1)
        else:
            feat = self._folded(x)
        return F.relu(torch.matmul(self.adj.to(feat.dtype), feat))

    def _folded(self, x: torch.Tensor) -> torch.Tensor:
        """Eval: every joint's Linear and BatchNorm folded into one batched matmul plus a per-joint affine.

        The same function as the per-joint modules (up to summation order), without one small matmul, weight cast
        and normalisation per joint: at batch 1 those ~135 tiny ops cost as much as a quarter of the ViT.
        """
        linears = [m[0] for m in self.fcbn_list]
        norms = [m[1] for m in self.fcbn_list]
        weight = torch.stack([lin.weight for lin in linears])  # (J, out, in)
        bias = torch.stack([lin.bias for lin in linears])
        mean = torch.stack([bn.running_mean for bn in norms])
        var = torch.stack([bn.running_var for bn in norms])
        gamma = torch.stack([bn.weight for bn in norms])
        beta = torch.stack([bn.bias for bn in norms])
        scale = gamma * torch.rsqrt(var + norms[0].eps)
        shift = beta + (bias - mean) * scale
        feat = torch.einsum("bji,joi->bjo", x, weight)
        return feat * scale.to(feat.dtype) + shift.to(feat.dtype)


class GraphResBlock(nn.Module):
    def __init__(self, adj: torch.Tensor, dim: int) -> None:
        super().__init__()
        self.graph_block1 = GraphConvBlock(adj, dim, dim)
        self.graph_block2 = GraphConvBlock(adj, dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.graph_block2(self.graph_block1(x)) + x


class RotationNet(nn.Module):
    """Sample the feature at each 2D joint, run a graph network, regress root 6D, VPoser code, betas, camera."""

    def __init__(
        self,
        adj: torch.Tensor,
        in_channels: int = 2048,
        hidden: int = 128,
        num_res_blocks: int = 4,
        latent_dim: int = 32,
        num_betas: int = 10,
    ) -> None:
        super().__init__()
        n = adj.shape[0]
        self.graph_block = nn.Sequential(
            GraphConvBlock(adj, in_channels + 4, hidden), *[GraphResBlock(adj, hidden) for _ in range(num_res_blocks)]
        )
        flat = n * hidden
        self.root_pose_out = nn.Sequential(nn.Linear(flat, 6))
        self.pose_out = nn.Sequential(nn.Linear(flat, latent_dim))
        self.shape_out = nn.Sequential(nn.Linear(flat, num_betas))
        self.cam_out = nn.Sequential(nn.Linear(flat, 3))

    @staticmethod
    def sample_features(feat: torch.Tensor, coord: torch.Tensor) -> torch.Tensor:
        """Bilinear feature (B, C, H, W) at grid points (B, J, >=2) -> (B, J, C); coordinates in grid units."""
        _, _, h, w = feat.shape
        size = coord.new_tensor([w - 1, h - 1])
        grid = (coord[..., :2] / size * 2 - 1).unsqueeze(2)  # (B, J, 1, 2)
        out = F.grid_sample(feat.float(), grid.float(), mode="bilinear", align_corners=True)
        return out[..., 0].transpose(1, 2)

    def forward(
        self, feat: torch.Tensor, coord: torch.Tensor, score: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        sampled = self.sample_features(feat, coord.detach())
        x = torch.cat([sampled, coord.detach().float(), score.detach().float()], dim=2)
        gcn = self.graph_block(x)
        flat = gcn.flatten(1)
        return {
            "sampled_feat": sampled,
            "gcn_out": gcn,
            "root6d": self.root_pose_out(flat),
            "vposer_z": self.pose_out(flat),
            "betas": self.shape_out(flat),
            "cam": self.cam_out(flat),
        }


def init_head_weights(module: nn.Module) -> None:
    """3DCrowdNet's head init (exact types only): conv N(0, 1e-3), linear N(0, 1e-2), zero bias, BN2d (1, 0)."""
    if type(module) is nn.Conv2d:
        nn.init.normal_(module.weight, std=0.001)
        nn.init.zeros_(module.bias)
    elif type(module) is nn.BatchNorm2d:
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif type(module) is nn.Linear:
        nn.init.normal_(module.weight, std=0.01)
        nn.init.zeros_(module.bias)
