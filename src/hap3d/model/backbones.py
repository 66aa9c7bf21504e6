"""The backbone registry: the image networks 3DCrowdNet's heads can sit on, by the name ``model.backbone`` gives.

A backbone is an ``nn.Module`` in two stages, because 3DCrowdNet injects the input pose between them::

    early = backbone.forward_early(img)    # (B, 3, H, W) -> (B, backbone.early_channels, h, w)
    fused = Pose2Feat(early, heatmaps)      # the input joints' heatmaps, drawn at h x w, joined to the features
    late = backbone.forward_late(fused)     # -> (B, backbone.late_channels, h', w')

``late`` goes to the heads (PositionNet, RotationNet) on the 3D grid of ``heatmap_size / 8`` cells a side. A
backbone whose late map is not on that grid sets ``vit_conv_layer`` in its entry: HapModel then shrinks the map to
the grid (``model.feature_downsample``) and lifts it with its ``vit_conv_layer``, a 1x1 conv to
``model.vit_conv_dim`` channels (HAP's ViT: 768 at 16x16 -> 2048 at 8x8).

Each entry also says how to initialise the backbone from the checkpoints published for it (which backbone-only
formats it reads, how their keys map onto its parameter names) and how to recognise it in a full 3DCrowdNet / HAP
snapshot; hap3d/model/checkpoint.py dispatches to these.

Adding a backbone: a module beside this one with the network (the protocol below), a builder from ModelConfig and
its checkpoint mapping (hap3d/model/vit.py is the model to follow); one entry in BACKBONES; its name in
``hap3d.config.BACKBONE_NAMES`` (and any new settings in ModelConfig).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Protocol

import torch
import torch.nn as nn

from hap3d.config import ConfigError, ModelConfig
from hap3d.model import resnet, vit

KeyMapping = Callable[[str, Mapping[str, torch.Tensor]], tuple[dict[str, torch.Tensor], dict[str, str]]]


class Backbone(Protocol):
    """What HapModel needs of a backbone module (besides being an ``nn.Module``)."""

    @property
    def early_channels(self) -> int:
        """Channels of the early map (Pose2Feat's input)."""

    @property
    def late_channels(self) -> int:
        """Channels of the late map (the heads' input, or vit_conv_layer's when the entry asks for it)."""

    def forward_early(self, img: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) image -> (B, early_channels, h, w)."""

    def forward_late(self, feat: torch.Tensor) -> torch.Tensor:
        """(B, early_channels, h, w) Pose2Feat output -> (B, late_channels, h', w')."""


@dataclass(frozen=True)
class BackboneSpec:
    """One registry entry.

    build                 ModelConfig -> the backbone module (keyword construction from the config's fields)
    module                its class (to find the entry of a backbone given as a module)
    vit_conv_layer        True: HapModel shrinks the late map to the 3D grid and lifts it with ``vit_conv_layer``
    checkpoint_formats    the backbone-only checkpoint formats it can be initialised from
    map_checkpoint_keys   (format, tensors) -> (tensors under the module's names, ignored key -> reason)
    fit_checkpoint_state  (module, mapped state, source patch grid or None) -> the state adapted to the module's
                          shapes; raises ValueError for a checkpoint that cannot fit (None: taken as is)
    config_from_snapshot  a full snapshot's keys -> its ModelConfig values, or None if the backbone is another one
    """

    build: Callable[[ModelConfig], nn.Module]
    module: type[nn.Module]
    vit_conv_layer: bool
    checkpoint_formats: tuple[str, ...]
    map_checkpoint_keys: KeyMapping
    config_from_snapshot: Callable[[Mapping[str, Any]], dict[str, Any] | None]
    fit_checkpoint_state: Callable[..., dict[str, torch.Tensor]] | None = None


BACKBONES: dict[str, BackboneSpec] = {
    "vit_b": BackboneSpec(
        build=vit.build_vit, module=vit.ViT, vit_conv_layer=True,
        checkpoint_formats=vit.CHECKPOINT_FORMATS, map_checkpoint_keys=vit.map_checkpoint_keys,
        config_from_snapshot=vit.config_from_snapshot, fit_checkpoint_state=vit.fit_checkpoint_state,
    ),
    "resnet50": BackboneSpec(
        build=resnet.build_resnet, module=resnet.ResNet, vit_conv_layer=False,
        checkpoint_formats=resnet.CHECKPOINT_FORMATS, map_checkpoint_keys=resnet.map_checkpoint_keys,
        config_from_snapshot=resnet.config_from_snapshot,
    ),
}


def backbone_spec(name: str) -> BackboneSpec:
    """The registry entry of ``name``; a ConfigError lists the registered names."""
    if name not in BACKBONES:
        raise ConfigError(f"unknown backbone {name!r}; registered: {', '.join(BACKBONES)}", "model.backbone")
    return BACKBONES[name]


def build_backbone(cfg: ModelConfig) -> nn.Module:
    """The backbone module ``cfg.backbone`` names, built from ``cfg``."""
    return backbone_spec(cfg.backbone).build(cfg)


def spec_of_module(module: nn.Module) -> BackboneSpec | None:
    """The entry whose class ``module`` is an instance of (None for a module that is no registered backbone)."""
    return next((spec for spec in BACKBONES.values() if isinstance(module, spec.module)), None)


def spec_for_checkpoint_format(fmt: str) -> BackboneSpec | None:
    """The entry that reads backbone-only checkpoints of format ``fmt`` (None if no backbone does)."""
    return next((spec for spec in BACKBONES.values() if fmt in spec.checkpoint_formats), None)
