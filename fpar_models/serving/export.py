"""Artefacts for the engines serving teams already run: the serving graph (uint8 frames in,
probabilities and CAMs out, preprocessing inside) as ONNX, OpenVINO IR or TorchScript, in a
zip with what a client needs to feed it (metadata.json: classes, input layout and the
preprocessing before it), the class labels, and for ONNX a Triton `config.pbtxt`.
docs/serving.md shows how to deploy each."""
from __future__ import annotations

import copy
import json
import tempfile
import zipfile
from pathlib import Path

import torch
from torch import nn

from fpar_models.config import TrainConfig
from fpar_models.files import atomic_path
from fpar_models.serving.graph import Servable, example_inputs, export_onnx, preprocessing

FORMATS = ("onnx", "openvino", "torchscript")
MAX_BATCH = 8  # Triton's dynamic batcher: the graph itself takes any batch size


def build(model: nn.Module, cfg: TrainConfig, classes: list[str], fmt: str, path: Path, name: str) -> Path:
    """Write the `fmt` artefact of the model to `path` (a zip), whole or not at all."""
    servable = Servable(copy.deepcopy(model).cpu().float().eval(), cfg).requires_grad_(False)  # inference only
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        if fmt == "onnx":
            export_onnx(servable, cfg, folder / "model.onnx")
            (folder / "config.pbtxt").write_text(triton_config(cfg, classes, name))
        elif fmt == "openvino":
            import openvino as ov

            export_onnx(servable, cfg, folder / "graph.onnx")
            # full precision: save_model would compress the weights to fp16 by default
            ov.save_model(ov.convert_model(str(folder / "graph.onnx")), str(folder / "model.xml"),
                          compress_to_fp16=False)
            (folder / "graph.onnx").unlink()
        elif fmt == "torchscript":
            with torch.no_grad():
                torch.jit.trace(servable, example_inputs(cfg), check_trace=False).save(str(folder / "model.pt"))
        else:
            raise ValueError(f"format must be one of {FORMATS}, not '{fmt}'")
        (folder / "labels.txt").write_text("\n".join(classes) + "\n")
        files = sorted(p.name for p in folder.iterdir())
        (folder / "metadata.json").write_text(json.dumps(
            {"name": name, "format": fmt, "files": files + ["metadata.json"], **preprocessing(cfg, classes)}, indent=2))
        # stored, not deflated: weights do not compress
        with atomic_path(path) as partial, zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
            for file in sorted(folder.iterdir()):
                archive.write(file, file.name)
    return Path(path)


def triton_config(cfg: TrainConfig, classes: list[str], name: str) -> str:
    """A Triton model configuration for the ONNX graph (onnxruntime backend)."""
    size = cfg.image_size
    grid = -(-size // 32)
    inputs = []
    if cfg.uses_rgb:
        inputs.append(("frames", "TYPE_UINT8", [cfg.frames, size, size, 3]))
    if cfg.uses_flow:
        inputs.append(("flow", "TYPE_UINT8", [cfg.model.eval_stacks, 2 * cfg.model.stack_size, size, size]))
    outputs = [("probabilities", "TYPE_FP32", [len(classes)], ' label_filename: "labels.txt"')]
    if cfg.uses_rgb:
        outputs.append(("cam", "TYPE_FP32", [cfg.frames, grid, grid], ""))

    def tensors(items) -> str:
        return ",\n".join(f'  {{ name: "{n}" data_type: {t} dims: [ {", ".join(map(str, d))} ]{extra} }}'
                          for n, t, d, *rest in items for extra in [rest[0] if rest else ""])

    return (f'name: "{name}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: {MAX_BATCH}\n'
            f"input [\n{tensors(inputs)}\n]\noutput [\n{tensors(outputs)}\n]\ndynamic_batching {{ }}\n")
