"""ResNet-50 backbone of the original 3DCrowdNet, split after the stem (torchvision parameter names).

The end of the module maps ImageNet and SimpleBaseline checkpoints onto these names (registered in
hap3d/model/backbones.py).
"""

from __future__ import annotations

import re
from typing import Any, Mapping

import torch
import torch.nn as nn

from hap3d.config import ModelConfig


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        width = planes
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes * self.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * self.expansion),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


LAYERS = {50: (3, 4, 6, 3), 101: (3, 4, 23, 3), 152: (3, 8, 36, 3)}


class ResNet(nn.Module):
    """Early stage: conv1/bn1/relu/maxpool (B,64,H/4,W/4); late stage: layer1..layer4 (B,2048,H/32,W/32)."""

    def __init__(self, depth: int = 50) -> None:
        super().__init__()
        if depth not in LAYERS:
            raise ValueError(f"resnet depth must be one of {sorted(LAYERS)}, got {depth}")
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        inplanes = 64
        for i, (planes, blocks) in enumerate(zip((64, 128, 256, 512), LAYERS[depth])):
            layer = []
            for j in range(blocks):
                layer.append(Bottleneck(inplanes, planes, stride=2 if (j == 0 and i > 0) else 1))
                inplanes = planes * Bottleneck.expansion
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
        self.early_channels = 64  # the stem's map, what Pose2Feat receives
        self.late_channels = inplanes  # layer4's map, what the heads read
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """3DCrowdNet's construction init: conv N(0, 0.001), BN (1, 0)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, std=0.001)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_early(self, img: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(img))))

    def forward_late(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        return self.forward_late(self.forward_early(img))


def build_resnet(cfg: ModelConfig) -> ResNet:
    """The ResNet of ``cfg`` (``resnet_depth`` 50, 101 or 152)."""
    return ResNet(depth=cfg.resnet_depth)


# ------------------------------------------------------------------------------------------------- checkpoints

# The backbone-only checkpoint formats (as hap3d.model.checkpoint identifies them) whose keys map onto a ResNet: an
# ImageNet state dict (torchvision, ``fc.*`` classifier) and a SimpleBaseline 2D-pose network (``deconv_layers.*``,
# ``final_layer.*``). Both use torchvision's names for the trunk.
CHECKPOINT_FORMATS = ("torchvision", "simplebaseline")


def map_checkpoint_keys(
    fmt: str, tensors: Mapping[str, torch.Tensor]
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Tensors of a ``fmt`` checkpoint under this module's names; returns (mapped, ignored key -> reason)."""
    if fmt not in CHECKPOINT_FORMATS:
        raise ValueError(f"a {fmt} checkpoint does not hold a ResNet")
    mapped: dict[str, torch.Tensor] = {}
    ignored: dict[str, str] = {}
    for key, value in tensors.items():
        if key.startswith(("fc.", "deconv_layers.", "final_layer.")):
            ignored[key] = "classification / 2D-pose head"
        else:
            mapped[key] = value
    return mapped, ignored


def config_from_snapshot(keys: Mapping[str, Any]) -> dict[str, Any] | None:
    """ModelConfig values read off the keys of a 3DCrowdNet snapshot (``backbone.layer*`` keys), or None when the
    snapshot holds no ResNet."""
    if "backbone.layer1.0.conv1.weight" not in keys:
        return None
    n3 = 1 + max(int(m.group(1)) for k in keys if (m := re.match(r"backbone\.layer3\.(\d+)\.", k)))
    return {"resnet_depth": {layers[2]: depth for depth, layers in LAYERS.items()}.get(n3, 50)}
