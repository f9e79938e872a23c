"""A training run's clips: the training users' in random crops and order, a new draw
each epoch, and the validation users' through the evaluation pipeline."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from torch.utils.data import DataLoader

from fpar_models.compute import Compute
from fpar_models.config import TrainConfig
from fpar_models.data.dataset import ClipDataset, EpochSampler, ImageCache
from fpar_models.data.gtea61 import scan
from fpar_models.models import motion_map_grid


class Loaders(NamedTuple):
    train: DataLoader
    val: DataLoader  # every epoch: it picks the best one
    test: DataLoader | None  # the final protocol, where it is not the validation's


def make_loaders(cfg: TrainConfig, root: Path, classes: list[str], compute: Compute) -> Loaders:
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
    options = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                   pin_memory=compute.device.type == "cuda", persistent_workers=cfg.num_workers > 0)

    def evaluation(stacks: int) -> DataLoader:
        clips = ClipDataset(val_videos, train=False, eval_stacks=stacks, **common)
        return DataLoader(clips, sampler=EpochSampler(len(clips), shuffle=False), **options)

    train_set = ClipDataset(train_videos, train=True, **common)
    train = DataLoader(train_set, **options, sampler=EpochSampler(len(train_set), shuffle=True, seed=cfg.seed))
    m = cfg.model
    test = evaluation(m.eval_stacks) if cfg.uses_flow and m.eval_stacks != m.val_stacks else None
    return Loaders(train, evaluation(m.val_stacks), test)
