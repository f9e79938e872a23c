"""A training run's clips: the training users' in random crops and order, a new draw
each epoch, and the validation users' through the evaluation pipeline. In a run over
several processes each rank loads its slice of every batch one process would load."""
from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch.utils.data import DataLoader

from fpar_models.compute import Compute
from fpar_models.config import TrainConfig
from fpar_models.data.dataset import ClipDataset, EpochSampler, ImageCache
from fpar_models.data.gtea61 import scan
from fpar_models.distributed import SINGLE, Group
from fpar_models.models import motion_map_grid


class RankBatches(torch.utils.data.Sampler):
    """A rank's share of each global batch. The global batches are the ones a single
    process draws (the sampler's order cut every `batch_size` clips); rank r takes the
    r-th of `world` equal slices of each, so the ranks' batches of a step together are
    that step's global batch, whatever the number of ranks. Only the last, partial
    global batch can leave the higher ranks nothing. In training such a rank still takes
    the step with the others (DistributedDataParallel exchanges gradients at every step,
    and its optimiser must step too): `stand_ins` gives it the batch's first clip, which
    the trainer weighs 0 (`loss_weights`)."""

    def __init__(self, sampler: EpochSampler, batch_size: int, group: Group, *, stand_ins: bool = False):
        self.sampler, self.batch_size, self.group, self.stand_ins = sampler, batch_size, group, stand_ins
        self.share = batch_size // group.world

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    @property
    def steps(self) -> int:
        """The global batches of an epoch."""
        return math.ceil(len(self.sampler) / self.batch_size)

    def global_size(self, step: int) -> int:
        return min(self.batch_size, len(self.sampler) - step * self.batch_size)

    def mine(self, step: int) -> int:
        return min(self.share, max(0, self.global_size(step) - self.group.rank * self.share))

    def loss_weights(self) -> list[float]:
        """Per step, the weight of the rank's mean loss that makes DistributedDataParallel's
        mean of the ranks' gradients the gradient of the global batch's mean loss, also
        where the slices differ in size (the last batch; a stand-in weighs 0)."""
        return [self.group.world * self.mine(step) / self.global_size(step) for step in range(self.steps)]

    def __len__(self) -> int:
        return sum(self.stand_ins or self.mine(step) > 0 for step in range(self.steps))

    def __iter__(self):
        items, first = list(self.sampler), self.group.rank * self.share
        for start in range(0, len(items), self.batch_size):
            whole = items[start:start + self.batch_size]
            mine = whole[first:first + self.share] or (whole[:1] if self.stand_ins else [])
            if mine:
                yield mine


class Loaders(NamedTuple):
    train: DataLoader  # its batch_sampler is a RankBatches
    val: DataLoader  # every epoch: it picks the best one
    test: DataLoader | None  # the final protocol, where it is not the validation's
    calibration: DataLoader  # the training clips in global batches, the same on every rank


def make_loaders(cfg: TrainConfig, root: Path, classes: list[str], compute: Compute,
                 group: Group = SINGLE) -> Loaders:
    """Training, validation and test loaders. The test clips are the validation users'
    under the final protocol, which differs only for flow: the reference validates on the
    centre stack and tests on the mean of 5 (None otherwise)."""
    grid = motion_map_grid(cfg)
    streams = dict(rgb=cfg.uses_rgb, maps=grid is not None, flow=cfg.uses_flow)
    common = dict(image_size=cfg.image_size, frames=cfg.frames, rgb=cfg.uses_rgb, map_grid=grid,
                  flow_stack=cfg.model.stack_size if cfg.uses_flow else None,
                  seed=cfg.seed, cache=ImageCache(compute.cache_bytes), sampling=cfg.sampling)
    train_videos = scan(root, cfg.train_users, classes=classes, **streams)
    val_videos = scan(root, cfg.val_users, classes=classes, **streams)
    # persistent workers keep their frame caches from one epoch to the next
    options = dict(num_workers=cfg.num_workers, pin_memory=compute.device.type == "cuda",
                   persistent_workers=cfg.num_workers > 0)

    def batches(clips: ClipDataset, shuffle: bool, of: Group = group) -> DataLoader:
        order = EpochSampler(len(clips), shuffle=shuffle, seed=cfg.seed)
        return DataLoader(clips, batch_sampler=RankBatches(order, cfg.batch_size, of, stand_ins=shuffle), **options)

    def evaluation(stacks: int) -> DataLoader:
        return batches(ClipDataset(val_videos, train=False, eval_stacks=stacks, **common), shuffle=False)

    train_set = ClipDataset(train_videos, train=True, **common)
    train = batches(train_set, shuffle=True)
    m = cfg.model
    test = evaluation(m.eval_stacks) if cfg.uses_flow and m.eval_stacks != m.val_stacks else None
    calibration = train if group.world == 1 else batches(train_set, shuffle=True, of=SINGLE)
    return Loaders(train, evaluation(m.val_stacks), test, calibration)
