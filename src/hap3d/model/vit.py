"""ViT-B/16 backbone split into an early stage (patch embedding + first blocks) and a late stage.

3DCrowdNet injects the input-pose heatmaps between the two stages. Parameter names follow timm / ViTPose
(``patch_embed.proj``, ``pos_embed``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``) with
ViTPose's ``last_norm`` for the final LayerNorm, so 2D-pose and HAP checkpoints map one-to-one. The end of the
module maps those checkpoints' keys onto these names (registered in hap3d/model/backbones.py).
"""

from __future__ import annotations

import math
import re
from typing import Any, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

from hap3d.config import ModelConfig


class DropPath(nn.Module):
    """Stochastic depth per sample (timm 0.5 semantics: x / keep * Bernoulli(keep))."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = torch.floor(keep + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device))
        return x / keep * mask

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, k, v)
        return self.proj(x.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    """Non-overlapping patches; ViTPose pads by 2 px, which shifts the grid by -2 px (kept for its weights)."""

    def __init__(self, img_size: int, patch_size: int, dim: int, padding: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch_size, stride=patch_size, padding=padding)
        side = (img_size + 2 * padding - patch_size) // patch_size + 1
        self.grid_size = (side, side)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class ViT(nn.Module):
    """ViT without a class token; the class slot of ``pos_embed`` is added to every patch token (ViTPose)."""

    def __init__(
        self,
        *,
        img_size: int = 256,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        drop_path_rate: float = 0.3,
        patch_padding: int = 2,
        early_blocks: int = 1,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.early_blocks = early_blocks
        self.patch_embed = PatchEmbed(img_size, patch_size, embed_dim, patch_padding)
        num_patches = self.patch_embed.grid_size[0] * self.patch_embed.grid_size[1]
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, r) for r in rates)
        self.last_norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.reset_parameters()

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.patch_embed.grid_size

    @property
    def early_channels(self) -> int:
        """Channels of :meth:`forward_early`'s map (what Pose2Feat receives)."""
        return self.embed_dim

    @property
    def late_channels(self) -> int:
        """Channels of :meth:`forward_late`'s map (HapModel lifts them with its ``vit_conv_layer``)."""
        return self.embed_dim

    def reset_parameters(self) -> None:
        """Random init used when no checkpoint is given (truncated normal 0.02, zero bias, LN 1/0)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def to_map(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, N, C) row-major tokens -> (B, C, H, W)."""
        h, w = self.grid_size
        return tokens.transpose(1, 2).reshape(tokens.shape[0], -1, h, w)

    def forward_early(self, img: torch.Tensor) -> torch.Tensor:
        """Image (B, 3, H, W) -> feature map after the early blocks (B, C, h, w)."""
        x = self.patch_embed(img)
        x = x + self.pos_embed[:, 1:] + self.pos_embed[:, :1]
        for blk in self.blocks[: self.early_blocks]:
            x = blk(x)
        return self.to_map(x)

    def forward_late(self, feat: torch.Tensor) -> torch.Tensor:
        """Feature map (B, C, h, w) -> the remaining blocks and the final norm, as a map; no pos-embed re-added."""
        x = feat.flatten(2).transpose(1, 2)
        for blk in self.blocks[self.early_blocks :]:
            x = blk(x)
        return self.to_map(self.last_norm(x))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        """The whole backbone on an image (used by the benchmark's bare-backbone baseline)."""
        return self.forward_late(self.forward_early(img))


def resize_pos_embed(pos_embed: torch.Tensor, src_grid: tuple[int, int], dst_grid: tuple[int, int]) -> torch.Tensor:
    """Bicubic resize of a (1, 1 + Hs*Ws, C) position embedding to (1, 1 + Hd*Wd, C); slot 0 is kept as is."""
    if tuple(src_grid) == tuple(dst_grid):
        return pos_embed
    n_src = pos_embed.shape[1] - 1
    if n_src != src_grid[0] * src_grid[1]:
        raise ValueError(f"pos_embed has {n_src} patch tokens, not a {src_grid[0]}x{src_grid[1]} grid")
    cls, grid = pos_embed[:, :1], pos_embed[:, 1:]
    c = grid.shape[-1]
    grid = grid.reshape(1, src_grid[0], src_grid[1], c).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=tuple(dst_grid), mode="bicubic", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, -1, c).to(pos_embed.dtype)
    return torch.cat([cls, grid], dim=1)


def infer_grid(num_tokens: int, aspect_hw: tuple[int, int] | None = None) -> tuple[int, int]:
    """Guess the (H, W) patch grid of a pos-embed with ``num_tokens`` patch tokens (square, or a known aspect)."""
    if aspect_hw is not None:
        h = math.isqrt(num_tokens * aspect_hw[0] // aspect_hw[1])
        if h * (num_tokens // max(h, 1)) == num_tokens:
            return h, num_tokens // h
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return side, side
    raise ValueError(f"cannot infer the patch grid of a pos_embed with {num_tokens} patch tokens; pass it explicitly")


def build_vit(cfg: ModelConfig) -> ViT:
    """The ViT of ``cfg`` (ViT-B/16 with the defaults)."""
    return ViT(
        img_size=cfg.img_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim, depth=cfg.depth,
        num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio, drop_path_rate=cfg.drop_path_rate,
        patch_padding=cfg.patch_padding, early_blocks=cfg.early_blocks,
    )


# ------------------------------------------------------------------------------------------------- checkpoints

# The backbone-only checkpoint formats (as hap3d.model.checkpoint identifies them) whose keys map onto a ViT:
# ViTPose / mmpose ``latest.pth`` ({'state_dict': {'backbone.*', 'keypoint_head.*'}}) and a HAP / MAE-style
# pre-trained ViT ({'model': {...}}, with ``norm.*`` for the final LayerNorm and the pre-training decoder).
CHECKPOINT_FORMATS = ("mmcv", "hap_pretrain")
MMCV_SOURCE_GRID = (16, 12)  # ViTPose-B trains at 256x192: a 16x12 patch grid


def map_checkpoint_keys(
    fmt: str, tensors: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors of a ``fmt`` checkpoint under this module's names; returns (mapped, ignored key -> reason)."""
    mapped: dict[str, torch.Tensor] = {}
    ignored: dict[str, str] = {}
    for key, value in tensors.items():
        if fmt == "mmcv":
            if "mlp.experts" in key:
                ignored[key] = "ViTPose+ MoE expert weights (not part of the single-dataset backbone)"
            elif key.startswith("backbone."):
                mapped[key[len("backbone.") :]] = value
            else:
                ignored[key] = "2D keypoint head"
        elif fmt == "hap_pretrain":
            if key.startswith("norm."):
                mapped["last_norm." + key[len("norm.") :]] = value
            elif key.startswith(("patch_embed.", "pos_embed", "blocks.", "last_norm.")):
                mapped[key] = value
            else:
                ignored[key] = "pre-training decoder / token (not used by the backbone)"
        else:
            raise ValueError(f"a {fmt} checkpoint does not hold a ViT")
    return mapped, ignored


def fit_checkpoint_state(
    model: ViT, state: dict[str, torch.Tensor], source_grid: tuple[int, int] | None = None
) -> dict[str, torch.Tensor]:
    """Adapt a mapped state to ``model``: the position embedding is resized bicubically from the checkpoint's patch
    grid (``source_grid``, else ViTPose's 16x12 for 192 tokens, 16x8 for 128, or square) to the model's, keeping the
    class slot. A ViTPose+ mixture-of-experts ``fc2`` is refused (ValueError) with what to do about it."""
    if "pos_embed" in state:
        pe = state["pos_embed"]
        n = pe.shape[1] - 1
        if n != model.grid_size[0] * model.grid_size[1] or source_grid is not None:
            grid = source_grid or (MMCV_SOURCE_GRID if n == 192 else infer_grid(n, (2, 1) if n == 128 else None))
            state["pos_embed"] = resize_pos_embed(pe, grid, model.grid_size)
    own = model.state_dict()
    for k in [k for k in state if k.endswith("mlp.fc2.weight")]:
        if k in own and state[k].shape != own[k].shape:
            raise ValueError(
                f"{k} has shape {tuple(state[k].shape)} but the model needs {tuple(own[k].shape)}. This looks like a "
                "ViTPose+ mixture-of-experts checkpoint: merge the experts into fc2 first "
                "(ViTPose tools/model_split.py)."
            )
    return state


def config_from_snapshot(keys: Mapping[str, Any]) -> dict[str, Any] | None:
    """ModelConfig values read off the keys of a HAP 3D snapshot (``backbone.*`` ViT keys and the
    ``vit_conv_layer``), or None when the snapshot holds no ViT."""
    if "backbone.pos_embed" not in keys:
        return None
    depth = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"backbone\.blocks\.(\d+)\.", k)))
    dim = keys["backbone.pos_embed"].shape[-1]
    # The head count is not visible in the weights; ViTs use 64-d heads (ViT-B: 12). Override if yours differ.
    found: dict[str, Any] = {"depth": depth, "embed_dim": dim, "num_heads": max(dim // 64, 1)}
    if "vit_conv_layer.weight" in keys:
        found["vit_conv_dim"] = keys["vit_conv_layer.weight"].shape[0]
    return found
