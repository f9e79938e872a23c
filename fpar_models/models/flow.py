"""The warp-flow network of Ego-RNN: a ResNet-34 whose first convolution takes a stack
of 5 x-flows and 5 y-flows, interleaved (10 channels):

    stacks (B, K, 10, S, S) -> ResNet-34 -> avgpool (B*K, 512) -> mean over K stacks
      -> Dropout(0.5) -> Linear(512, classes)

Training feeds one random stack per clip (K = 1); evaluation averages K = 5 stacks
spread over the video. The classifier is linear, so averaging pooled features equals
averaging the stacks' logits, as the paper does.
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet34

from fpar_models.models.output import Output, Part


class FlowResNet(nn.Module):
    def __init__(self, num_classes: int, channels: int = 10):
        super().__init__()
        net = resnet34(weights=None)
        net.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        net.fc = nn.Identity()
        self.net = net
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(512, num_classes))

    def encode(self, flow: torch.Tensor) -> torch.Tensor:
        """(B, K, C, S, S) -> (B, 512): pooled features averaged over the K stacks."""
        return self.net(flow.flatten(0, 1)).unflatten(0, (-1, flow.shape[1])).mean(1)

    def forward(self, flow: torch.Tensor) -> Output:
        features = self.encode(flow)
        return Output(self.classifier(features), {}, features)

    def load_imagenet(self, state: dict[str, torch.Tensor]) -> None:
        """ImageNet weights; conv1's are averaged over RGB and repeated per flow channel."""
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}
        channels = self.net.conv1.in_channels
        state["conv1.weight"] = state["conv1.weight"].mean(1, keepdim=True).repeat(1, channels, 1, 1)
        self.net.load_state_dict(state)

    def parts(self) -> dict[str, Part]:
        return {
            "classifier": Part(list(self.classifier.parameters()), [self.classifier]),
            "layer4": Part(list(self.net.layer4.parameters()), [self.net.layer4]),
            "backbone": Part(list(self.net.parameters()), [self.net]),
        }
