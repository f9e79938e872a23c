"""The ConvLSTM of Ego-RNN: 3x3 convolutions for every gate on input and hidden
state, no peepholes, zero initial state (so step 0 needs no hidden convolution).

The four gates' convolutions are fused into one convolution over the input and one
over the hidden state (4*hidden output channels): the same function as four separate
convolutions per operand, in fewer, larger kernels; the input convolution runs once
for all time steps.
"""
from __future__ import annotations

import torch
from torch import nn


class ConvLSTMCell(nn.Module):
    def __init__(self, in_channels: int, hidden: int, kernel_size: int = 3):
        super().__init__()
        self.hidden = hidden
        pad = kernel_size // 2
        self.x2gates = nn.Conv2d(in_channels, 4 * hidden, kernel_size, padding=pad)
        self.h2gates = nn.Conv2d(hidden, 4 * hidden, kernel_size, padding=pad, bias=False)
        for conv in (self.x2gates, self.h2gates):  # the reference's initialisation
            for gate in conv.weight.chunk(4, dim=0):
                nn.init.xavier_normal_(gate)
        nn.init.zeros_(self.x2gates.bias)

    def forward(self, seq: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T, C, s, s) -> (hidden states (B, T, hidden, s, s), final cell state (B, hidden, s, s))."""
        t = seq.shape[1]
        # the input's contribution does not depend on the state: one batched conv for all steps
        # (-1: the batch size stays free in an exported graph)
        x_gates = self.x2gates(seq.flatten(0, 1)).unflatten(0, (-1, t))
        # the state starts at zero, so the hidden convolution (no bias) adds exactly nothing at step 0
        i, _, g, o = x_gates[:, 0].chunk(4, dim=1)
        c = torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        hs = [h]
        for step in range(1, t):
            i, f, g, o = (x_gates[:, step] + self.h2gates(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        return torch.stack(hs, 1), c
