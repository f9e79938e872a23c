"""ResNet-34 as Ego-RNN uses it: features up to layer4, plus the ImageNet `fc` that
names the class whose activation map becomes the attention.

The last block is run by hand because Ego-RNN needs its output twice: after the final
BN + residual + ReLU (what the CAM is computed on) and before that BN and ReLU
(conv2 + residual: the features that get attended).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import resnet34
from torchvision.models.resnet import BasicBlock

Modulation = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class BackboneFeatures:
    conv1: torch.Tensor    # (N, 64, S/2, S/2), after BN + ReLU (+ feedback modulation)
    layer2: torch.Tensor   # (N, 128, S/8, S/8)
    layer3: torch.Tensor   # (N, 256, S/16, S/16)
    layer4: torch.Tensor   # (N, 512, s, s), s = S/32, after BN + residual + ReLU
    layer4_pre: torch.Tensor  # (N, 512, s, s), conv2 + residual, before BN and ReLU


def _last_block_two_ways(block: BasicBlock, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    identity = x if block.downsample is None else block.downsample(x)
    out = block.relu(block.bn1(block.conv1(x)))
    out = block.conv2(out)
    with_bn = block.relu(block.bn2(out) + identity)
    return with_bn, out + identity


class ResNet34Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        net = resnet34(weights=None)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        self.fc = net.fc  # ImageNet classifier (512 -> 1000): only its weights are used, for the CAM

    def forward(self, x: torch.Tensor, modulate: Modulation | None = None) -> BackboneFeatures:
        c1 = self.relu(self.bn1(self.conv1(x)))
        if modulate is not None:
            c1 = modulate(c1)
        x = self.layer1(self.maxpool(c1))
        l2 = self.layer2(x)
        l3 = self.layer3(l2)
        x = self.layer4[:-1](l3)
        l4, l4_pre = _last_block_two_ways(self.layer4[-1], x)
        return BackboneFeatures(c1, l2, l3, l4, l4_pre)

    def layer4_convs(self) -> list[nn.Parameter]:
        """The convolutions that Ego-RNN's stage 2 fine-tunes (BN stays frozen, and the
        downsample projection is left alone, as in the reference code)."""
        return [p for block in self.layer4 for conv in (block.conv1, block.conv2)
                for p in conv.parameters()]

    def convs(self, layer: str) -> list[nn.Parameter]:
        """Every convolution of a layer, its downsample projection included; BN stays frozen.
        What a head tapping layer2/layer3 trains, so its loss shapes the features it reads."""
        return [p for m in getattr(self, layer).modules() if isinstance(m, nn.Conv2d) for p in m.parameters()]


def imagenet_state(path: str) -> dict[str, torch.Tensor]:
    """torchvision's ResNet-34 ImageNet state dict from a local file."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "fc.weight" not in state or state["fc.weight"].shape != (1000, 512):
        raise ValueError(f"{path}: not a ResNet-34 ImageNet state dict")
    return state
