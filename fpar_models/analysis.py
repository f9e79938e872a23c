"""What a trained model does on its own dataset, as pictures and numbers: the confusion
matrix on its validation users, the CAMs over a video's frames, and what its
self-supervised heads predict beside the truth. Clips go through the evaluation
pipeline the trainer validated with (same frames, crop and stacks), so the confusion
matrix reproduces the model's best_val_acc."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from fpar_models import cam, plots
from fpar_models.compute import Compute
from fpar_models.config import MOTION_MAP_HEADS, TrainConfig
from fpar_models.data.dataset import ClipDataset, EpochSampler, ImageCache, normalize_batch
from fpar_models.data.gtea61 import scan
from fpar_models.data.transforms import MAP_THRESHOLD, RGB_MEAN, RGB_STD
from fpar_models.models import motion_map_grid, run_model

MAX_COLUMNS = 8


class NoPicture(LookupError):
    """This model has nothing to show for the request (no CAM, no head with a picture)."""


def _clips(cfg: TrainConfig, videos, *, maps: bool, stacks: int) -> ClipDataset:
    return ClipDataset(videos, image_size=cfg.image_size, train=False, frames=cfg.frames, rgb=cfg.uses_rgb,
                       map_grid=motion_map_grid(cfg) if maps else None,
                       flow_stack=cfg.model.stack_size if cfg.uses_flow else None, eval_stacks=stacks,
                       cache=ImageCache(256 << 20), sampling=cfg.sampling)


@torch.no_grad()
def confusion_matrix(model: nn.Module, cfg: TrainConfig, classes: list[str], data_dir: Path,
                     compute: Compute) -> np.ndarray:
    """Counts (true class, predicted class) over the validation users, as validation ran
    in training: its batches, its flow stacks (val_stacks) and its precision."""
    compute = compute.for_training(cfg.precision)
    videos = scan(Path(data_dir) / cfg.dataset, cfg.val_users, rgb=cfg.uses_rgb, flow=cfg.uses_flow, classes=classes)
    clips = _clips(cfg, videos, maps=False, stacks=cfg.model.val_stacks)
    loader = torch.utils.data.DataLoader(clips, batch_size=cfg.batch_size,
                                         sampler=EpochSampler(len(clips), shuffle=False))
    matrix = np.zeros((len(classes), len(classes)), dtype=np.int64)
    model.eval()
    for batch in loader:
        batch = normalize_batch(batch, compute.device)
        with compute.autocast():
            predicted = run_model(model, batch, heads=False).logits.argmax(1).cpu().numpy()
        np.add.at(matrix, (batch["label"].cpu().numpy(), predicted), 1)
    return matrix


def video_batch(cfg: TrainConfig, classes: list[str], data_dir: Path, video: str, *, maps: bool = False) -> dict:
    """One dataset video ('user/action/n') through the evaluation pipeline, as a batch of one."""
    user, action, name = video.split("/")
    found = [v for v in scan(Path(data_dir) / cfg.dataset, [user], rgb=True, maps=maps, flow=cfg.uses_flow,
                             classes=classes) if (v.action, v.name) == (action, name)]
    if not found:
        raise LookupError(f"video '{video}' not found in dataset '{cfg.dataset}'")
    return torch.utils.data.default_collate([_clips(cfg, found, maps=maps, stacks=cfg.model.eval_stacks)[0]])


def _frames(batch: dict) -> np.ndarray:
    return batch["rgb"][0].permute(0, 2, 3, 1).numpy()  # (T, S, S, 3) uint8


def _verdict(logits: torch.Tensor, classes: list[str], batch: dict) -> str:
    probs = torch.softmax(logits.float(), 1)[0]
    top = int(probs.argmax())
    return f"true: {classes[int(batch['label'][0])]}  |  predicted: {classes[top]} ({100 * float(probs[top]):.0f}%)"


def _in_rows(labels: list[str], kinds: list[tuple[str, list[np.ndarray]]]):
    """Rows of images, one per kind (frames, CAM, ...), titled by kind; sequences longer than
    MAX_COLUMNS wrap, each wrap repeating every kind with the frames it covers. Returns
    (rows, row titles, column titles)."""
    if len(labels) <= MAX_COLUMNS:
        return [series for _, series in kinds], [kind for kind, _ in kinds], labels
    rows, titles = [], []
    for start in range(0, len(labels), MAX_COLUMNS):
        end = min(start + MAX_COLUMNS, len(labels))
        for kind, series in kinds:
            rows.append(series[start:end])
            titles.append(f"{kind}\n{labels[start]}-{labels[end - 1]}")
    return rows, titles, []


@torch.no_grad()
def cam_picture(model: nn.Module, cfg: TrainConfig, classes: list[str], batch: dict, compute: Compute,
                title: str) -> bytes:
    """The sampled frames and the CAM over each (the same overlay `explain` returns)."""
    if not cfg.uses_rgb:
        raise NoPicture("this model sees only optical flow: it has no class activation map")
    model.eval()
    with compute.autocast():
        out = run_model(model, normalize_batch(batch, compute.device), heads=False)
    frames = _frames(batch)
    overlays = cam.overlays(frames, out.cam[0].float().cpu())
    labels = [f"frame {i + 1}" for i in range(len(frames))]
    rows, row_titles, col_titles = _in_rows(labels, [("frames", list(frames)), ("CAM", overlays)])
    return plots.image_grid(rows, row_titles, col_titles, f"{title}\n{_verdict(out.logits, classes, batch)}")


def _rgb(normalised: torch.Tensor) -> np.ndarray:
    """(3, h, w) ImageNet-normalised -> (h, w, 3) uint8."""
    mean, std = torch.tensor(RGB_MEAN).view(3, 1, 1), torch.tensor(RGB_STD).view(3, 1, 1)
    return (normalised.float().cpu() * std + mean).clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).numpy()


@torch.no_grad()
def heads_picture(model: nn.Module, cfg: TrainConfig, classes: list[str], batch: dict, compute: Compute,
                  title: str) -> bytes:
    """Motion maps predicted beside the true ones (seed 001, figure 5); the dynamic-filter
    head's next frame beside the real one and their difference (seed 004, figure 4)."""
    model.eval()
    with compute.autocast():
        out = run_model(model, normalize_batch(batch, compute.device), heads=True)
    sections = []
    frames = list(_frames(batch))
    labels = [f"frame {i + 1}" for i in range(len(frames))]
    grey = lambda m: (m.clamp(0, 1) * 255).round().byte().numpy()  # noqa: E731
    for name in MOTION_MAP_HEADS:
        if name in out.aux:
            maps, mode = out.aux[name]["maps"][0].float().cpu(), out.aux[name]["mode"]
            truth = batch["maps"][0].float()
            if mode == "classification":  # what the head learns: maps binarised, P(moving) per cell
                truth, predicted = (truth > MAP_THRESHOLD).float(), torch.softmax(maps, 1)[:, 1]
            else:
                predicted = maps
            sections.append(_in_rows(labels, [("frames", frames),
                                              (f"motion map\n(truth, {mode})", [grey(m) for m in truth]),
                                              ("predicted", [grey(m) for m in predicted])]))
    if "dynamic_filter" in out.aux:
        pred, real = out.aux["dynamic_filter"]["pred"], out.aux["dynamic_filter"]["target"]
        before = [_rgb(x) for x in normalize_batch(batch, torch.device("cpu"))["rgb"][0, :-1]]
        predicted, actual = [_rgb(x) for x in pred], [_rgb(x) for x in real]
        difference = [np.abs(p.astype(np.int16) - a).astype(np.uint8) for p, a in zip(predicted, actual)]
        steps = [f"frame {i + 1} > {i + 2}" for i in range(len(predicted))]
        sections.append(_in_rows(steps, [("frame t", before), ("predicted t+1", predicted), ("real t+1", actual),
                                         ("|difference|", difference)]))
    rows = [row for section in sections for row in section[0]]
    row_titles = [title for section in sections for title in section[1]]
    if not rows:
        raise NoPicture("no head of this model predicts a picture (motion maps or next frames)")
    col_titles = sections[0][2] if len(sections) == 1 else []
    return plots.image_grid(rows, row_titles, col_titles, f"{title}\n{_verdict(out.logits, classes, batch)}")
