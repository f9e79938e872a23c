"""Ego-RNN, the RGB network every RGB preset is built from:

    frames (B, T, 3, S, S)
      -> ResNet-34 per frame ............ layer4 (B*T, 512, s, s)
      -> CAM spatial attention .......... optional (the `convlstm` preset has none)
      -> ConvLSTM over the T steps ...... final cell state (B, mem, s, s)
      -> average pool -> Dropout(0.7) -> Linear(mem, classes)
    plus any self-supervised heads, reading the taps of the same pass.
"""
from __future__ import annotations

import torch
from torch import nn

from fpar_models.models.attention import CamAttention, class_activation_map
from fpar_models.models.backbone import ResNet34Features
from fpar_models.models.convlstm import ConvLSTMCell
from fpar_models.models.heads import Feedback, Taps
from fpar_models.models.output import Output, Part


class EgoRNN(nn.Module):
    def __init__(self, num_classes: int, *, attention: bool = True, mem_size: int = 512,
                 heads: dict[str, nn.Module] | None = None):
        super().__init__()
        self.backbone = ResNet34Features()
        self.attention = CamAttention(self.backbone.fc) if attention else None
        self.convlstm = ConvLSTMCell(512, mem_size)
        self.classifier = nn.Sequential(nn.Dropout(0.7), nn.Linear(mem_size, num_classes))
        self.heads = nn.ModuleDict(heads or {})

    @property
    def feedback(self) -> Feedback | None:
        return self.heads["feedback"] if "feedback" in self.heads else None

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """ConvLSTM input sequence (B, T, C, s, s) -> pooled final cell state (B, mem)."""
        return self.convlstm(seq)[1].mean((2, 3))

    def forward(self, rgb: torch.Tensor, *, heads: bool = True) -> Output:
        t = rgb.shape[1]  # the batch size stays symbolic (-1): exported graphs take any batch
        frames = rgb.flatten(0, 1)  # every frame through the CNN in one batch
        aux: dict[str, dict] = {}
        if self.feedback is not None:
            first = self.backbone(frames)
            ms_maps, modulate = self.feedback.modulation(first.layer4, first.conv1.shape[-1])
            aux["feedback"] = {"maps": ms_maps.unflatten(0, (-1, t)), "mode": self.feedback.ms.mode}
            feats = self.backbone(frames, modulate)
        else:
            feats = self.backbone(frames)
        if self.attention is not None:
            attended, cam = self.attention(feats.layer4, feats.layer4_pre)
        else:
            attended = feats.layer4
            with torch.no_grad():  # no attention to drive, but the map still explains the answer
                cam = class_activation_map(self.backbone.fc, feats.layer4)
        seq = attended.unflatten(0, (-1, t))
        hidden, cell = self.convlstm(seq)
        pooled = cell.mean((2, 3))
        logits = self.classifier(pooled)
        others = {name: head for name, head in self.heads.items() if name != "feedback"}
        if heads and others:
            taps = Taps(frames=rgb, layer2=feats.layer2.unflatten(0, (-1, t)),
                        layer3=feats.layer3.unflatten(0, (-1, t)),
                        backbone=feats.layer4.unflatten(0, (-1, t)), attention=seq,
                        convlstm=hidden, pooled=pooled, encode=self.encode)
            aux.update({name: head(taps) for name, head in others.items()})
        return Output(logits, aux if heads else {}, pooled, cam.unflatten(0, (-1, t)))

    def parts(self) -> dict[str, Part]:
        backbone = self.backbone
        return {
            "classifier": Part(list(self.classifier.parameters()), [self.classifier]),
            "convlstm": Part(list(self.convlstm.parameters()), []),
            "layer4": Part(backbone.layer4_convs(), []),
            # fc.bias only moves the argmax: it has no gradient path, so it is not trained
            "cam": Part([backbone.fc.weight], []),
            "heads": Part(list(self.heads.parameters()), [self.heads]),
            "layer2": Part(backbone.convs("layer2"), []),
            "layer3": Part(backbone.convs("layer3"), []),
            # the whole CNN, BatchNorm included; its ImageNet fc learns only as the `cam` part
            "backbone": Part([p for name, p in backbone.named_parameters() if not name.startswith("fc.")],
                             [backbone]),
        }
