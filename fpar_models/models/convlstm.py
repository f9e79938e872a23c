"""The ConvLSTM of Ego-RNN: 3x3 convolutions for every gate on input and hidden
state, no peepholes, zero initial state.

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
        b, t, _, height, width = seq.shape
        # the input's contribution does not depend on the state: one batched conv for all steps
        x_gates = self.x2gates(seq.flatten(0, 1)).unflatten(0, (b, t))
        h = c = seq.new_zeros(b, self.hidden, height, width)
        hs = []
        for step in range(t):
            i, f, g, o = (x_gates[:, step] + self.h2gates(h)).chunk(4, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            hs.append(h)
        return torch.stack(hs, 1), c
