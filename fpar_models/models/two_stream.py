"""Ego-RNN's joint two-stream model:

    RGB clip -> EgoRNN (attention + ConvLSTM) -> pooled cell state (512) --+
                                                                            +-> concat (1024)
    flow stacks -> FlowResNet ------------------> pooled features (512) ---+
      -> Dropout(0.5) -> Linear(1024, classes)

Both streams usually start from trained models; the stage then fine-tunes the RGB
ConvLSTM, layer4 convolutions and CAM fc, and the flow network's layer4 at a lower lr.
"""
from __future__ import annotations

import torch
from torch import nn

from fpar_models.models.egornn import EgoRNN
from fpar_models.models.flow import FlowResNet
from fpar_models.models.output import Output, Part


class TwoStream(nn.Module):
    def __init__(self, num_classes: int, *, attention: bool = True, mem_size: int = 512,
                 flow_channels: int = 10):
        super().__init__()
        self.rgb = EgoRNN(num_classes, attention=attention, mem_size=mem_size)
        self.flow = FlowResNet(num_classes, flow_channels)
        self.classifier = nn.Sequential(nn.Dropout(0.5), nn.Linear(mem_size + 512, num_classes))

    def forward(self, rgb: torch.Tensor, flow: torch.Tensor, *, heads: bool = True) -> Output:
        rgb_out = self.rgb(rgb, heads=False)
        features = torch.cat([self.flow.encode(flow), rgb_out.features], 1)
        return Output(self.classifier(features), {}, features, rgb_out.cam)

    def parts(self) -> dict[str, Part]:
        rgb, flow = self.rgb.parts(), self.flow.parts()
        return {
            "classifier": Part(list(self.classifier.parameters()), [self.classifier]),
            "convlstm": rgb["convlstm"],
            "layer4": rgb["layer4"],
            "cam": rgb["cam"],
            # as in the reference, the flow layer4 learns with its BatchNorm in train mode
            "flow_layer4": flow["layer4"],
            "flow": Part(list(self.flow.parameters()), [self.flow]),
        }
