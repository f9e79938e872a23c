"""Clips for training and evaluation: sampled frames, motion maps and flow stacks of one
video, all under the same random crop. Tensors stay uint8 until they reach the device
(`normalize_batch`), which keeps DataLoader traffic and host memory four times smaller."""
from __future__ import annotations

import random
import threading
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fpar_models.data.gtea61 import Video
from fpar_models.data.transforms import (
    FLOW_MEAN,
    FLOW_STD,
    RGB_MEAN,
    RGB_STD,
    Crop,
    apply_crop,
    frame_indices,
    load_image,
    resize_map,
    scale_shorter,
    scaled_side,
    stack_indices,
    stack_starts,
    train_stack_start,
)


class ImageCache:
    """Decoded, scaled images by path, so later epochs skip PNG decoding. Fills up to a
    byte budget and then stops adding (random access makes eviction buy nothing)."""

    def __init__(self, budget_bytes: int = 1 << 30):
        self.budget = budget_bytes
        self.used = 0
        self._images: dict[tuple[Path, str, int], Image.Image] = {}
        self._lock = threading.Lock()

    def get(self, path: Path, mode: str, side: int) -> Image.Image:
        key = (path, mode, side)
        img = self._images.get(key)
        if img is None:
            img = scale_shorter(load_image(path, mode), side)
            size = img.width * img.height * len(img.getbands())
            with self._lock:
                if self.used + size <= self.budget:
                    self._images[key] = img
                    self.used += size
        return img


class ClipDataset(torch.utils.data.Dataset):
    def __init__(self, videos: list[Video], *, image_size: int, train: bool, frames: int = 16,
                 rgb: bool = True, map_grid: int | None = None, flow_stack: int | None = None,
                 eval_stacks: int = 5, seed: int = 0, cache: ImageCache | None = None, sampling: str = "reference"):
        self.videos = videos
        self.image_size, self.train, self.frames = image_size, train, frames
        self.rgb, self.map_grid = rgb, map_grid
        self.flow_stack, self.eval_stacks = flow_stack, eval_stacks
        self.seed, self.epoch, self.sampling = seed, 0, sampling
        self.side = scaled_side(image_size)
        self.cache = cache if cache is not None else ImageCache()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.videos)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """`key` is an index, or (epoch, index) as EpochSampler yields. Crops depend on
        (seed, epoch, index) only: a resumed run sees the same clips."""
        epoch, idx = key if isinstance(key, tuple) else (self.epoch, key)
        video = self.videos[idx]
        rng = random.Random(f"{self.seed}/{epoch}/{idx}")
        crop = Crop.random(self.image_size, rng) if self.train else Crop.center(self.image_size)
        item: dict[str, torch.Tensor] = {"label": torch.tensor(video.label)}
        picked = frame_indices(len(video.frames), self.frames, self.sampling) if video.frames else []
        if self.rgb:
            rgb = np.stack([self._crop(video.frames[i], "RGB", crop) for i in picked])
            item["rgb"] = to_channels_first(rgb)  # (T, 3, S, S)
        if self.map_grid:
            maps = [resize_map(self._crop(video.map_for(i), "L", crop), self.map_grid) for i in picked]
            item["maps"] = torch.from_numpy(np.stack(maps))  # (T, g, g) in [0, 1]
        if self.flow_stack:
            item["flow"] = torch.from_numpy(self._flow(video, crop, rng))  # (K, 2*stack, S, S)
        return item

    def _crop(self, path: Path, mode: str, crop: Crop, invert_on_flip: bool = False) -> np.ndarray:
        return apply_crop(self.cache.get(path, mode, self.side), crop, invert_on_flip=invert_on_flip)

    def _flow(self, video: Video, crop: Crop, rng: random.Random) -> np.ndarray:
        n, stack = len(video.flow_x), self.flow_stack
        if self.train:
            starts = [train_stack_start(n, stack, rng, self.sampling)]
        else:
            starts = stack_starts(n, stack, self.eval_stacks, self.sampling)
        stacks = []
        for start in starts:
            planes = []
            for i in stack_indices(n, stack, start):  # x and y interleaved, as the flow net expects
                planes.append(self._crop(video.flow_x[i], "L", crop, invert_on_flip=True))
                planes.append(self._crop(video.flow_y[i], "L", crop))
            stacks.append(np.stack(planes))
        return np.stack(stacks)


class EpochSampler(torch.utils.data.Sampler):
    """Yields (epoch, index): DataLoader workers that persist across epochs (and keep
    their decoded-frame caches) still draw each epoch's own crops and order."""

    def __init__(self, size: int, *, shuffle: bool, seed: int = 0):
        self.size, self.shuffle, self.seed, self.epoch = size, shuffle, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        order = range(self.size)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
            order = torch.randperm(self.size, generator=generator).tolist()
        return ((self.epoch, i) for i in order)


_RGB_MEAN = torch.tensor(RGB_MEAN).view(1, 1, 3, 1, 1) * 255
_RGB_STD = torch.tensor(RGB_STD).view(1, 1, 3, 1, 1) * 255


def to_channels_first(frames: np.ndarray) -> torch.Tensor:
    """(..., S, S, 3) uint8 -> a contiguous (..., 3, S, S) tensor. A mere permuted view
    would keep channels-last strides through collation and normalisation, and the CPU
    convolutions run 2.5x slower on them (measured: docs/benchmarks.md)."""
    return torch.from_numpy(np.ascontiguousarray(np.moveaxis(frames, -1, -3)))


def normalize_rgb(rgb: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, 3, S, S) -> ImageNet-normalised contiguous float, on rgb's device."""
    return ((rgb.float() - _RGB_MEAN.to(rgb.device)) / _RGB_STD.to(rgb.device)).contiguous()


def normalize_flow(flow: torch.Tensor) -> torch.Tensor:
    return ((flow.float() / 255.0 - FLOW_MEAN) / FLOW_STD).contiguous()


def normalize_batch(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a collated batch to the device and turn uint8 pixels into model inputs."""
    out = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if "rgb" in out:
        out["rgb"] = normalize_rgb(out["rgb"])
    if "flow" in out:
        out["flow"] = normalize_flow(out["flow"])
    return out
