from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn


class Output(NamedTuple):
    logits: torch.Tensor            # (B, classes)
    aux: dict[str, dict]            # head name -> that head's outputs (and made-up targets)
    features: torch.Tensor          # (B, F): the pooled video feature the classifier read
    cam: torch.Tensor | None = None  # (B, T, s, s) class activation maps, RGB models only


class Part(NamedTuple):
    """A group of parameters a training stage can unfreeze, and the modules that must
    then switch to train mode (dropout, BatchNorm that is meant to learn)."""
    params: list[nn.Parameter]
    modules: list[nn.Module]
