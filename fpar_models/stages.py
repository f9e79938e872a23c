"""What a stage trains: every parameter frozen but its parts' (a part is a named group of
parameters: the models' `parts()`), an optimiser over exactly those, each at the
learning rate its part is given, and frozen modules in eval mode, so that a frozen
BatchNorm keeps its running statistics and frozen dropout is off."""
from __future__ import annotations

import torch
from torch import nn

from fpar_models.config import StageConfig


def configure_stage(model: nn.Module, stage: StageConfig) -> tuple[list[dict], list[nn.Module]]:
    """Freeze everything, unfreeze the stage's parts. Returns the optimiser's parameter
    groups (each parameter once) and the modules that train in train mode."""
    for p in model.parameters():
        p.requires_grad_(False)
    parts = model.parts()
    groups, seen, train_modules = [], set(), []
    for name in stage.train:
        part = parts[name]
        params = [p for p in part.params if id(p) not in seen]
        seen.update(id(p) for p in params)
        for p in params:
            p.requires_grad_(True)
        if params:
            groups.append({"params": params, "lr": stage.part_lr.get(name, stage.lr), "name": name})
        train_modules += part.modules
    return groups, train_modules


def make_optimizer(stage: StageConfig, groups: list[dict]):
    if stage.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)
    else:
        opt = torch.optim.Adam(groups, lr=stage.lr, weight_decay=stage.weight_decay, eps=stage.eps)
    if stage.schedule == "exponential":
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=stage.gamma)
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=stage.milestones, gamma=stage.gamma)
    return opt, sched


def set_train_mode(model: nn.Module, train_modules: list[nn.Module]) -> None:
    model.eval()  # frozen BatchNorm keeps its running statistics, dropout of frozen parts is off
    for m in train_modules:
        m.train()
