"""Scoring: one forward + loss, per-epoch averages, and the validation pass."""
from __future__ import annotations

import math
from collections import defaultdict

import torch
from torch import nn

from fpar_models.compute import Compute
from fpar_models.data.dataset import normalize_batch
from fpar_models.distributed import SINGLE, Group
from fpar_models.loss import compute_loss
from fpar_models.models import Output, run_model


def run_and_score(model: nn.Module, batch: dict[str, torch.Tensor], alphas: dict[str, float], *,
                  heads: bool) -> tuple[torch.Tensor, tuple[Output, dict[str, torch.Tensor]]]:
    out = run_model(model, batch, heads=heads)
    total, parts = compute_loss(out, batch, alphas)
    return total, (out, parts)


class EpochStats:
    """Sample-weighted means of the loss and its parts, and accuracy, over an epoch."""

    def __init__(self) -> None:
        self.n = 0
        self.correct = 0
        self.data_wait_s = 0.0
        self.sums: dict[str, float] = defaultdict(float)

    def add(self, scored: tuple[Output, dict[str, torch.Tensor]], batch: dict[str, torch.Tensor],
            loss: torch.Tensor) -> None:
        out, parts = scored
        b = batch["label"].shape[0]
        self.n += b
        self.correct += int((out.logits.argmax(1) == batch["label"]).sum())
        self.sums["loss"] += loss.item() * b
        for name, value in parts.items():
            if name != "cls":
                self.sums[f"{name}_loss"] += value.item() * b

    @classmethod
    def merged(cls, parts: list[EpochStats]) -> EpochStats:
        """The statistics of the ranks' slices of one epoch, as one process would count them."""
        if len(parts) == 1:
            return parts[0]
        out = cls()
        for part in parts:
            out.n += part.n
            out.correct += part.correct
            for k, v in part.sums.items():
                out.sums[k] += v
        out.data_wait_s = sum(p.data_wait_s for p in parts) / len(parts)  # a rank's, on average
        return out

    def summary(self, prefix: str) -> dict[str, float]:
        if not self.n:
            return {f"{prefix}loss": math.nan, f"{prefix}acc": math.nan}
        out = {f"{prefix}{k}": v / self.n for k, v in self.sums.items()}
        out[f"{prefix}acc"] = self.correct / self.n
        return out


@torch.no_grad()
def evaluate(model: nn.Module, loader, compute: Compute, alphas: dict[str, float], *,
             heads: bool = True, group: Group = SINGLE) -> dict[str, float]:
    """Validation loss (with each head's), and accuracy as a fraction in [0, 1]; of the
    whole loader's clips also when each rank of `group` scores its slice of them."""
    was_training = {m: m.training for m in model.modules()}
    model.eval()
    stats = EpochStats()
    for batch in loader:
        batch = normalize_batch(batch, compute.device)
        with compute.autocast():
            loss, scored = run_and_score(model, batch, alphas, heads=heads)
        stats.add(scored, batch, loss)
    for m, mode in was_training.items():
        m.training = mode
    return EpochStats.merged(group.gather(stats)).summary("val_")
