"""The HAP / 3DCrowdNet network: image + input 2D pose -> SMPL parameters, camera, mesh and joints.

Data flow (ViT-B, 256x256 input): early ViT stage (16x16x768) + Gaussian heatmaps of the 30 input joints ->
Pose2Feat -> late ViT stage -> 8x8 -> vit_conv_layer (1x1 conv to 2048) -> PositionNet (15 joints, 8x8x8
soft-argmax) -> RotationNet (root 6D, VPoser code, betas, camera) -> VPoser decode -> SMPL -> 30 regressed joints,
projected with a fixed virtual camera (f = 5000 px, t_z = 48.83 * sigmoid(c)). The backbone comes from the
registry in hap3d/model/backbones.py.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from hap3d.body.joints import get_joint_set, graph_adjacency, joint_mapping
from hap3d.body.rotations import rot6d_to_axis_angle
from hap3d.body.smpl import SMPL
from hap3d.body.vposer import VPoserDecoder
from hap3d.config import ModelConfig
from hap3d.model.backbones import backbone_spec
from hap3d.model.heads import Pose2Feat, PositionNet, RotationNet, init_head_weights

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class HapModel(nn.Module):
    """3DCrowdNet on a registered backbone: ViT-B (HAP) or ResNet-50 (original).

    The body model (neutral SMPL and its 30-joint regressor) is held as non-persistent buffers: it comes from
    the body-model files, never from a network checkpoint.
    """

    def __init__(self, cfg: ModelConfig, smpl: SMPL, joint_regressor: np.ndarray) -> None:
        super().__init__()
        self.cfg = cfg
        self.graph_index = torch.from_numpy(joint_mapping("smpl30", "graph15")[0])
        num_graph = len(self.graph_index)
        adj = torch.from_numpy(graph_adjacency("graph15"))
        spec = backbone_spec(cfg.backbone)
        self.backbone: nn.Module = spec.build(cfg)
        late_dim = self.backbone.late_channels
        # The 1x1 conv between a ViT and the heads; its parameter names (vit_conv_layer.*) are fixed by the released
        # HAP checkpoints. Under reference_compat it stays at its random init (docs/reference-differences.md R1).
        self.vit_conv_layer: nn.Conv2d | None = None
        if spec.vit_conv_layer:
            self.vit_conv_layer = nn.Conv2d(late_dim, cfg.vit_conv_dim, 1)
            self.vit_conv_layer.requires_grad_(bool(cfg.vit_conv_trainable))
            late_dim = cfg.vit_conv_dim
        self.pose2feat = Pose2Feat(self.backbone.early_channels, cfg.num_input_joints)
        self.position_net = PositionNet(late_dim, num_graph, cfg.heatmap_size // 8)
        self.rotation_net = RotationNet(adj, late_dim, cfg.gcn_hidden, cfg.gcn_res_blocks)
        self.vposer = VPoserDecoder()
        self.smpl = smpl
        for buf in self.smpl.buffers():
            buf.requires_grad_(False)
        regressor = torch.from_numpy(np.asarray(joint_regressor, np.float32))
        self.register_buffer("joint_regressor", regressor, persistent=False)
        self.register_buffer("pixel_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.root_joint = get_joint_set("smpl30").root
        self.init_heads()

    # ------------------------------------------------------------------ set-up
    def init_heads(self) -> None:
        """Re-initialise the heads as 3DCrowdNet does before training (the backbone is loaded separately)."""
        for head in (self.pose2feat, self.position_net, self.rotation_net):
            head.apply(init_head_weights)

    def train(self, mode: bool = True) -> "HapModel":
        super().train(mode)
        if not self.cfg.vposer_dropout:
            self.vposer.eval()  # a frozen prior should be deterministic; the reference left dropout on
        return self

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ pieces
    def make_heatmaps(self, joints: torch.Tensor, mask: torch.Tensor, size: int) -> torch.Tensor:
        """Unnormalised Gaussians (peak 1) of the input joints on the heatmap grid, masked, resized to ``size``."""
        n = self.cfg.heatmap_size
        with torch.no_grad():
            grid = torch.arange(n, device=joints.device, dtype=torch.float32)
            x = joints[..., 0].float()[..., None, None]
            y = joints[..., 1].float()[..., None, None]
            s = self.cfg.heatmap_sigma
            hm = torch.exp(-(((grid[None, :] - x) / s) ** 2) / 2 - (((grid[:, None] - y) / s) ** 2) / 2)
            hm = hm * mask.float()[..., None]
            if size != n:
                hm = _downsample(hm, size, self.cfg.heatmap_downsample)
        return hm

    def camera_translation(self, cam: torch.Tensor) -> torch.Tensor:
        """(c0, c1, c2) -> (t_x, t_y, k * sigmoid(c2)) in metres."""
        return torch.cat([cam[:, :2], self.cfg.camera_depth_scale * torch.sigmoid(cam[:, 2:])], dim=1)

    def project(self, joint_cam: torch.Tensor) -> torch.Tensor:
        """Camera-frame joints (B, J, 3) -> heatmap-space 2D (B, J, 2) through the virtual crop camera."""
        c = self.cfg.img_size / 2
        xy = joint_cam[..., :2] / (joint_cam[..., 2:] + 1e-4) * self.cfg.focal + c
        return xy * (self.cfg.heatmap_size / self.cfg.img_size)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        img: torch.Tensor,
        joints: torch.Tensor,
        joints_mask: torch.Tensor,
        return_intermediates: bool = False,
    ) -> dict[str, torch.Tensor]:
        """Predict for a batch. Returns the reference's test-output keys (64-space, metres, radians), plus
        ``joint_cam`` (root-relative 30 joints) and ``cam_trans``; intermediates on request."""
        mid: dict[str, torch.Tensor] = {}
        if self.cfg.input_norm == "imagenet":
            img = (img - self.pixel_mean) / self.pixel_std
        early = self.backbone.forward_early(img)
        heatmaps = self.make_heatmaps(joints, joints_mask, early.shape[-1])
        fused = self.pose2feat(early, heatmaps)
        late = self.backbone.forward_late(fused)
        if self.vit_conv_layer is not None:
            down = _downsample(late, self.cfg.heatmap_size // 8, self.cfg.feature_downsample)
            feat = self.vit_conv_layer(down)
        else:
            feat = late
        coord, score = self.position_net(feat)
        rot = self.rotation_net(feat, coord, score)
        # Rotations, the body model and the projection stay in fp32 under autocast: they are cheap and
        # half precision would visibly distort the mesh.
        with torch.autocast(img.device.type, enabled=False):
            root_aa = rot6d_to_axis_angle(rot["root6d"].float())
            body_aa = self.vposer(rot["vposer_z"].float())
            b = img.shape[0]
            hands = body_aa.new_zeros(b, 2 * 3)
            pose = torch.cat([root_aa, body_aa.reshape(b, -1), hands], dim=1)
            cam_trans = self.camera_translation(rot["cam"].float())
            smpl_out = self.smpl(pose, rot["betas"].float(), cam_trans)
            mesh = smpl_out.vertices
            joint_cam_abs = torch.matmul(self.joint_regressor, mesh)
            joint_proj = self.project(joint_cam_abs)
        root = joint_cam_abs[:, self.root_joint : self.root_joint + 1]
        out = {
            "cam_param": rot["cam"],
            "joint_img": coord * (self.cfg.heatmap_size / self.position_net.depth_bins),
            "joint_proj": joint_proj,
            "joint_score": score,
            "smpl_mesh_cam": mesh - root,
            "smpl_pose": pose,
            "smpl_shape": rot["betas"],
            "mesh_cam_render": mesh,
            "joint_cam": joint_cam_abs - root,
            "cam_trans": cam_trans,
        }
        if return_intermediates:
            mid = {
                "heatmaps": heatmaps,
                "early_feat": early,
                "pose2feat_out": fused,
                "late_feat": late,
                "lift_out": feat,
                "position_joint_coord": coord,
                "position_joint_score": score,
                "rotation_sampled_feat": rot["sampled_feat"],
                "rotation_gcn_out": rot["gcn_out"],
                "rotation_root6d": rot["root6d"],
                "rotation_vposer_z": rot["vposer_z"],
                "rotation_betas": rot["betas"],
                "rotation_cam": rot["cam"],
                "root_pose_aa": root_aa,
                "vposer_body_pose_aa": body_aa,
                "smpl_joints24_abs": smpl_out.joints,
            }
            out.update({f"mid/{k}": v for k, v in mid.items()})
        return out


def _downsample(x: torch.Tensor, size: int, mode: str) -> torch.Tensor:
    """Shrink (B, C, H, W) maps to size x size: 'nearest' keeps every k-th pixel (reference), 'area' averages."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    if mode == "nearest":
        return F.interpolate(x, size=(size, size), mode="nearest")
    return F.adaptive_avg_pool2d(x, (size, size))
