"""CAM spatial attention (Ego-RNN): the top-1 ImageNet class of each frame names a
weight vector; its dot product with the feature map is the class activation map,
a softmax over the s*s cells makes it an attention map, and the features are
reweighted by it."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def class_activation_map(fc: nn.Linear, features: torch.Tensor) -> torch.Tensor:
    """(N, C, s, s) -> (N, s, s): activation map of each frame's top-1 class under fc."""
    logits = fc(features.mean((2, 3)))
    top1 = logits.argmax(1)  # a choice, not a differentiable quantity: no grad to fc.bias
    return torch.einsum("nc,nchw->nhw", fc.weight[top1], features)


class CamAttention(nn.Module):
    def __init__(self, fc: nn.Linear):
        super().__init__()
        self.fc = fc  # shared with the backbone: stage 2 fine-tunes it through this path

    def forward(self, features: torch.Tensor, to_attend: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns (attended features (N, C, s, s), CAM (N, s, s))."""
        cam = class_activation_map(self.fc, features)
        n, h, w = cam.shape
        attention = F.softmax(cam.reshape(n, h * w), dim=1).reshape(n, 1, h, w)
        return to_attend * attention, cam
