"""`build_model(cfg, num_classes)`: the network a TrainConfig describes, from parts."""
from __future__ import annotations

import torch
from torch import nn

from fpar_models.config import MOTION_MAP_HEADS, TrainConfig
from fpar_models.models.backbone import imagenet_state
from fpar_models.models.egornn import EgoRNN
from fpar_models.models.flow import FlowResNet
from fpar_models.models.heads import build_head, map_grid
from fpar_models.models.output import Output, Part
from fpar_models.models.two_stream import TwoStream
from fpar_models.weights import find_imagenet_weights, missing_weights_message

__all__ = ["EgoRNN", "FlowResNet", "TwoStream", "Output", "Part", "build_model", "run_model",
           "motion_map_grid"]


def build_model(cfg: TrainConfig, num_classes: int, *, weights_dir: str | None = None) -> nn.Module:
    m = cfg.model
    if m.arch == "flow":
        model: nn.Module = FlowResNet(num_classes, 2 * m.stack_size)
    elif m.arch == "two-stream":
        model = TwoStream(num_classes, attention=m.attention, mem_size=m.mem_size,
                          flow_channels=2 * m.stack_size)
    else:
        heads = {h.kind: build_head(h, image_size=cfg.image_size, mem_size=m.mem_size)
                 for h in m.heads}
        model = EgoRNN(num_classes, attention=m.attention, mem_size=m.mem_size, heads=heads)
    if cfg.pretrained == "imagenet":
        path = find_imagenet_weights(weights_dir)
        if path is None:
            raise FileNotFoundError(missing_weights_message(weights_dir))
        load_imagenet(model, imagenet_state(str(path)))
    return model


def load_imagenet(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    if isinstance(model, TwoStream):
        load_imagenet(model.rgb, state)
        load_imagenet(model.flow, state)
    elif isinstance(model, FlowResNet):
        model.load_imagenet(state)
    else:
        model.backbone.load_state_dict(state)


def run_model(model: nn.Module, batch: dict[str, torch.Tensor], *, heads: bool = True) -> Output:
    """One forward pass on a normalised batch, whatever the architecture (`model` may be
    wrapped in DistributedDataParallel, which is called as the model is)."""
    arch = getattr(model, "module", model)
    if isinstance(arch, FlowResNet):
        return model(batch["flow"])
    if isinstance(arch, TwoStream):
        return model(batch["rgb"], batch["flow"])
    return model(batch["rgb"], heads=heads)


def motion_map_grid(cfg: TrainConfig) -> int | None:
    """Side of the motion maps the config's MS head predicts (None without one)."""
    for h in cfg.model.heads:
        if h.kind in MOTION_MAP_HEADS:
            return map_grid(h.attach, cfg.image_size)
    return None
