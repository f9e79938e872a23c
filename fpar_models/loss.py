"""The training objective, in one place: cross-entropy on the action plus
alpha_i times each self-supervised head's loss.

Two bugs of the MS code in course forks of the reference are absent by construction:
the classification MS head outputs raw logits laid out as (N, 2, g, g), so cross-entropy
applies the only softmax; and targets are reshaped to that same layout, never
reinterpreted (docs/models.md says where each bug is)."""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from fpar_models.data.transforms import MAP_THRESHOLD
from fpar_models.models.output import Output

Batch = dict[str, torch.Tensor]


def motion_segmentation_loss(out: dict, batch: Batch) -> torch.Tensor:
    """Per-cell cross-entropy against maps binarised at 0.4, or MSE against grey maps."""
    target = batch["maps"]  # (B, T, g, g) in [0, 1]
    if out["mode"] == "classification":
        logits = out["maps"].flatten(0, 1)  # (N, 2, g, g)
        return F.cross_entropy(logits, (target > MAP_THRESHOLD).long().flatten(0, 1))
    return F.mse_loss(out["maps"], target)


def _classify(out: dict, batch: Batch) -> torch.Tensor:
    return F.cross_entropy(out["logits"], out["target"])


def _predict_frame(out: dict, batch: Batch) -> torch.Tensor:
    return F.mse_loss(out["pred"], out["target"])


HEAD_LOSSES: dict[str, Callable[[dict, Batch], torch.Tensor]] = {
    "motion_segmentation": motion_segmentation_loss,
    "feedback": motion_segmentation_loss,
    "order_prediction": _classify,
    "static_dynamic": _classify,
    "dynamic_filter": _predict_frame,
}


def compute_loss(out: Output, batch: Batch, alphas: dict[str, float]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Returns (total loss, each part of it unweighted: `cls` and one entry per head)."""
    parts = {"cls": F.cross_entropy(out.logits.float(), batch["label"])}
    total = parts["cls"]
    for name, head_out in out.aux.items():
        parts[name] = HEAD_LOSSES[name](head_out, batch).float()
        total = total + alphas[name] * parts[name]
    return total, parts
