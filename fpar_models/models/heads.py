"""Self-supervised heads. Each reads the taps of one forward pass and returns a dict
of its outputs (with the targets it makes up itself, where it does); the losses are
computed in one place, `fpar_models.loss`."""
from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fpar_models import config as C
from fpar_models.data.transforms import uniform_indices

MS_HIDDEN = 100
TAP_STRIDE = {"layer2": 8, "layer3": 16, "backbone": 32, "attention": 32, "convlstm": 32}


@dataclass
class Taps:
    """Where heads can attach, each (B, T, C, h, w), plus what some heads need besides."""
    frames: torch.Tensor      # normalised input (B, T, 3, S, S)
    layer2: torch.Tensor
    layer3: torch.Tensor
    backbone: torch.Tensor    # layer4 after BN + ReLU
    attention: torch.Tensor   # what enters the ConvLSTM (attended, or layer4 without attention)
    convlstm: torch.Tensor    # ConvLSTM hidden state after each step
    pooled: torch.Tensor      # (B, mem): the video feature the classifier reads
    encode: Callable[[torch.Tensor], torch.Tensor]  # ConvLSTM input sequence -> pooled feature


def tap_channels(attach: str, mem_size: int) -> int:
    return {"layer2": 128, "layer3": 256, "convlstm": mem_size}.get(attach, 512)


def map_grid(attach: str, image_size: int) -> int:
    """Side of a tap's feature grid: every stride-2 layer of ResNet rounds up."""
    return -(-image_size // TAP_STRIDE[attach])


class MotionSegmentation(nn.Module):
    """ReLU -> Conv 1x1 (C -> 100) -> flatten -> Linear(100 g^2, 2 g^2 | g^2), per frame."""

    def __init__(self, in_channels: int, grid: int, mode: str, attach: str = "backbone"):
        super().__init__()
        self.grid, self.mode, self.attach = grid, mode, attach
        self.reduce = nn.Sequential(nn.ReLU(), nn.Conv2d(in_channels, MS_HIDDEN, 1))
        classes = 2 if mode == "classification" else 1
        self.predict = nn.Linear(MS_HIDDEN * grid * grid, classes * grid * grid)

    def maps(self, hidden: torch.Tensor) -> torch.Tensor:
        """(N, 100, g, g) -> logits (N, 2, g, g), or sigmoid grey levels (N, g, g)."""
        out = self.predict(hidden.flatten(1))
        if self.mode == "classification":
            return out.unflatten(1, (2, self.grid, self.grid))  # softmax belongs to the loss alone
        return torch.sigmoid(out.unflatten(1, (self.grid, self.grid)))

    def forward(self, taps: Taps) -> dict:
        x = getattr(taps, self.attach)
        pred = self.maps(self.reduce(x.flatten(0, 1)))
        return {"maps": pred.unflatten(0, x.shape[:2]), "mode": self.mode}


class OrderPrediction(nn.Module):
    """OPN on 4 frames: fc6 per frame, fc7 per pair, a 12-way permutation classifier.
    A permutation and its reverse are one class, so 4!/2 = 12 classes."""

    PERMUTATIONS = [p for p in itertools.permutations(range(4)) if p[0] < p[-1]]
    PAIRS = list(itertools.combinations(range(4), 2))

    def __init__(self, in_channels: int = 512):
        super().__init__()
        self.fc6 = nn.Sequential(nn.Linear(in_channels, 1024), nn.ReLU())
        self.fc7 = nn.Sequential(nn.Linear(2 * 1024, 512), nn.ReLU())
        self.fc8 = nn.Linear(len(self.PAIRS) * 512, len(self.PERMUTATIONS))
        self.register_buffer("perms", torch.tensor(self.PERMUTATIONS), persistent=False)

    def forward(self, taps: Taps) -> dict:
        feats = taps.backbone.mean((3, 4))  # (B, T, C)
        b, t = feats.shape[:2]
        tuple4 = feats[:, uniform_indices(t, 4)]  # 4 frames in temporal order
        target = torch.randint(len(self.PERMUTATIONS), (b,), device=feats.device)
        order = self.perms[target]  # (B, 4)
        shuffled = tuple4.gather(1, order.unsqueeze(-1).expand_as(tuple4))
        f6 = self.fc6(shuffled)
        f7 = [self.fc7(torch.cat([f6[:, i], f6[:, j]], 1)) for i, j in self.PAIRS]
        return {"logits": self.fc8(torch.cat(f7, 1)), "target": target}


class StaticDynamic(nn.Module):
    """Real clip (class 0) vs. the same clip made of one frame repeated (class 1)."""

    def __init__(self, mem_size: int):
        super().__init__()
        self.classifier = nn.Sequential(nn.Dropout(0.7), nn.Linear(mem_size, 2))

    def forward(self, taps: Taps) -> dict:
        seq = taps.attention
        b, t = seq.shape[:2]
        pick = torch.randint(t, (b,), device=seq.device)
        frozen = seq[torch.arange(b, device=seq.device), pick].unsqueeze(1).expand_as(seq)
        pooled = torch.cat([taps.pooled, taps.encode(frozen)])
        target = torch.cat([seq.new_zeros(b), seq.new_ones(b)]).long()
        return {"logits": self.classifier(pooled), "target": target}


class DynamicFilter(nn.Module):
    """From the features of step t, a k x k filter per sample and colour channel that
    turns frame t into frame t+1 (Dynamic Filter Networks). Filters are softmax-
    normalised, so a prediction is a local weighted average: a learned displacement."""

    def __init__(self, in_channels: int, kernel_size: int, attach: str):
        super().__init__()
        self.k, self.attach = kernel_size, attach
        self.generate = nn.Sequential(nn.Conv2d(in_channels, 512, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(512, 3, 1))

    def forward(self, taps: Taps) -> dict:
        x = getattr(taps, self.attach)[:, :-1].flatten(0, 1)  # steps 0 .. T-2
        # (N, 3, k, k); reshape, not view: on CUDA the convolutions hand back channels_last tensors
        filters = F.adaptive_avg_pool2d(self.generate(x), self.k)
        n = filters.shape[0]
        filters = F.softmax(filters.reshape(n * 3, -1), dim=1).reshape(n * 3, 1, self.k, self.k)
        b, t, _, size, _ = taps.frames.shape
        small = F.interpolate(taps.frames.flatten(0, 1), size=max(size // 4, self.k),
                              mode="bilinear", align_corners=False).unflatten(0, (b, t))
        prev = small[:, :-1].flatten(0, 1)  # (N, 3, r, r)
        r = prev.shape[-1]
        pred = F.conv2d(prev.reshape(1, n * 3, r, r), filters, padding=self.k // 2, groups=n * 3)
        return {"pred": pred.reshape(n, 3, r, r), "target": small[:, 1:].flatten(0, 1)}


class Feedback(nn.Module):
    """A motion-segmentation head on layer4 whose 100-channel map, upsampled to conv1's
    grid, yields beta and gamma (64 channels each): conv1 features become beta*F + gamma.
    The branches start at beta = 1, gamma = 0, so a trained RGB model is unchanged at first."""

    def __init__(self, grid: int, mode: str):
        super().__init__()
        self.ms = MotionSegmentation(512, grid, mode)
        self.beta, self.gamma = self._branch(), self._branch()

    @staticmethod
    def _branch() -> nn.Sequential:
        branch = nn.Sequential(nn.Conv2d(MS_HIDDEN, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 64, 1))
        nn.init.zeros_(branch[-1].weight)
        nn.init.zeros_(branch[-1].bias)
        return branch

    def modulation(self, layer4: torch.Tensor, conv1_size: int):
        """(N, 512, s, s) -> (MS prediction, the function that modulates conv1 features)."""
        hidden = self.ms.reduce(layer4)
        up = F.interpolate(hidden, size=conv1_size, mode="bilinear", align_corners=False)
        beta, gamma = 1 + self.beta(up), self.gamma(up)
        return self.ms.maps(hidden), lambda features: beta * features + gamma


def build_head(head: C.Head, *, image_size: int, mem_size: int) -> nn.Module:
    attach = getattr(head, "attach", "backbone")
    channels = tap_channels(attach, mem_size)
    if isinstance(head, C.MotionSegmentationHead):
        return MotionSegmentation(channels, map_grid(attach, image_size), head.mode, attach)
    if isinstance(head, C.OrderPredictionHead):
        return OrderPrediction(channels)
    if isinstance(head, C.StaticDynamicHead):
        return StaticDynamic(mem_size)
    if isinstance(head, C.DynamicFilterHead):
        return DynamicFilter(channels, head.kernel_size, attach)
    if isinstance(head, C.FeedbackHead):
        return Feedback(map_grid("backbone", image_size), head.mode)
    raise TypeError(f"no head for {head!r}")
