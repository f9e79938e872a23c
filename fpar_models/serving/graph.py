"""A trained model as a serving graph: uint8 frames (and flow stacks) in, class
probabilities and class activation maps out, with the evaluation preprocessing inside.
This one module is what every inference runtime runs: eager PyTorch, the ONNX graph
ONNX Runtime and OpenVINO load, and the exported artefacts serving teams deploy.

    frames  uint8 (B, T, S, S, 3)    T sampled frames, centre-cropped, RGB
    flow    uint8 (B, K, 2L, S, S)   K stacks of L x/y flow pairs, interleaved
    -> probabilities float32 (B, classes), cam float32 (B, T, s, s) (RGB models)

The batch dimension is free in the exported graph (the models keep it symbolic).
"""
from __future__ import annotations

import copy
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fpar_models.config import TrainConfig
from fpar_models.data.dataset import ClipDataset, normalize_flow, normalize_rgb
from fpar_models.data.gtea61 import DatasetError, scan
from fpar_models.data.transforms import FLOW_MEAN, FLOW_STD, RGB_MEAN, RGB_STD
from fpar_models.files import atomic_path
from fpar_models.models import run_model

OPSET = 17


class Servable(nn.Module):
    def __init__(self, model: nn.Module, cfg: TrainConfig):
        super().__init__()
        self.model, self.inputs = model, input_names(cfg)
        self.explains = cfg.uses_rgb

    def forward(self, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
        given = dict(zip(self.inputs, tensors))
        batch = {}
        if "frames" in given:
            batch["rgb"] = normalize_rgb(given["frames"].permute(0, 1, 4, 2, 3))
        if "flow" in given:
            batch["flow"] = normalize_flow(given["flow"])
        out = run_model(self.model, batch, heads=False)
        probabilities = torch.softmax(out.logits.float(), 1)
        return (probabilities, out.cam.float()) if self.explains else (probabilities,)


def input_names(cfg: TrainConfig) -> list[str]:
    return [name for name, used in (("frames", cfg.uses_rgb), ("flow", cfg.uses_flow)) if used]


def output_names(cfg: TrainConfig) -> list[str]:
    return ["probabilities", "cam"] if cfg.uses_rgb else ["probabilities"]


def example_inputs(cfg: TrainConfig, batch: int = 2) -> tuple[torch.Tensor, ...]:
    size, shapes = cfg.image_size, []
    if cfg.uses_rgb:
        shapes.append((batch, cfg.frames, size, size, 3))
    if cfg.uses_flow:
        shapes.append((batch, cfg.model.eval_stacks, 2 * cfg.model.stack_size, size, size))
    g = torch.Generator().manual_seed(0)
    return tuple(torch.randint(0, 256, s, dtype=torch.uint8, generator=g) for s in shapes)


def export_onnx(servable: Servable, cfg: TrainConfig, path: Path) -> Path:
    """The serving graph as ONNX (opset 17), batch size free; written whole or not at all."""
    names, outputs = input_names(cfg), output_names(cfg)
    cpu_copy = copy.deepcopy(servable).cpu().float().eval()  # the served one may live on a GPU
    # the TorchScript-based exporter: it unrolls the ConvLSTM for the model's T and keeps the
    # batch size free; torch warns that it is the legacy one
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(cpu_copy, example_inputs(cfg), str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=names, output_names=outputs,
                          dynamic_axes={n: {0: "batch"} for n in names + outputs})
    return Path(path)


def preprocessing(cfg: TrainConfig, classes: list[str]) -> dict[str, Any]:
    """What a client of an exported graph must send, and what it gets back."""
    size = cfg.image_size
    inputs = {}
    if cfg.uses_rgb:
        inputs["frames"] = {
            "dtype": "uint8", "shape": ["batch", cfg.frames, size, size, 3],
            "how": f"{cfg.frames} frames sampled uniformly over the clip (the centre of {cfg.frames} equal "
                   f"segments), shorter side scaled to {round(size * 256 / 224)} px (bilinear), centre crop "
                   f"{size} x {size}, RGB; the graph normalises with mean {list(RGB_MEAN)}, std {list(RGB_STD)}"}
    if cfg.uses_flow:
        k, stack = cfg.model.eval_stacks, cfg.model.stack_size
        inputs["flow"] = {
            "dtype": "uint8", "shape": ["batch", k, 2 * stack, size, size],
            "how": f"{k} stacks spread over the video, each {stack} consecutive x/y flow images interleaved "
                   f"(x0, y0, x1, y1, ...), grey levels as stored (128 = no motion), same scale and crop; "
                   f"the graph normalises with mean {FLOW_MEAN}, std {FLOW_STD}"}
    outputs = {"probabilities": {"dtype": "float32", "shape": ["batch", len(classes)], "labels": "classes"}}
    if cfg.uses_rgb:
        grid = -(-size // 32)
        outputs["cam"] = {"dtype": "float32", "shape": ["batch", cfg.frames, grid, grid],
                          "how": "class activation map per frame (upsample to the frame to draw it)"}
    return {"classes": list(classes), "inputs": inputs, "outputs": outputs, "preset": cfg.preset,
            "arch": cfg.model.arch}


def dataset_clips(cfg: TrainConfig, classes: list[str], data_dir: Path, users: list[str],
                  count: int) -> tuple[dict[str, np.ndarray], np.ndarray] | None:
    """Up to `count` clips of the users' videos, spread over the list (so over the classes),
    through the evaluation pipeline in the serving layout, with their labels. None when
    the dataset is not at hand."""
    try:
        videos = scan(Path(data_dir) / cfg.dataset, users, rgb=cfg.uses_rgb, flow=cfg.uses_flow, classes=classes)
        videos = videos[::max(1, len(videos) // count)][:count]
        clips = ClipDataset(videos, image_size=cfg.image_size, train=False, frames=cfg.frames, rgb=cfg.uses_rgb,
                            flow_stack=cfg.model.stack_size if cfg.uses_flow else None,
                            eval_stacks=cfg.model.eval_stacks, sampling=cfg.sampling)
        items = [clips[i] for i in range(len(clips))]
    except (DatasetError, OSError):
        return None
    inputs = {}
    if cfg.uses_rgb:
        inputs["frames"] = torch.stack([item["rgb"] for item in items]).permute(0, 1, 3, 4, 2).contiguous().numpy()
    if cfg.uses_flow:
        inputs["flow"] = torch.stack([item["flow"] for item in items]).numpy()
    return inputs, np.array([int(item["label"]) for item in items])


def sample_inputs(cfg: TrainConfig, classes: list[str], data_dir: Path, count: int = 4) -> dict | None:
    """Real clips to check a compiled graph on: validation clips of the model's dataset."""
    found = dataset_clips(cfg, classes, data_dir, cfg.val_users, count)
    return found[0] if found else None
