"""ViT-B/16 backbone split into an early stage (patch embedding + first blocks) and a late stage.

3DCrowdNet injects the input-pose heatmaps between the two stages. Parameter names follow timm / ViTPose
(``patch_embed.proj``, ``pos_embed``, ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``) with
ViTPose's ``last_norm`` for the final LayerNorm, so 2D-pose and HAP checkpoints map one-to-one.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


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
