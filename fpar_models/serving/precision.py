"""Serving in reduced precision, opt-in per model (`PATCH /models/{id}` with
`{"inference_precision": ...}`). fp32 stays the default, and the only mode verified to
match PyTorch; the reduced ones trade exactness for speed, and what they cost is measured,
not assumed:

    bf16  OpenVINO computing in bfloat16, on CPUs with bf16 units (AVX512-BF16, AMX);
          PyTorch under bf16 autocast where the worker runs PyTorch (CUDA, FPAR_INFERENCE=torch)
    int8  the serving graph quantised after training by NNCF (weights and activations),
          calibrated on training clips, run by OpenVINO on the CPU

Reduced OpenVINO graphs run in a child process of their own (fpar_models.serving.isolated), NNCF
in another. When a worker first builds a reduced mode it runs it beside fp32 PyTorch on the model's
validation clips and reports top-1 agreement and the accuracy of each (GET /models/{id});
the int8 graph and the measurement are cached beside the checkpoint, so later loads decode
no clips. A mode that cannot be built or measured on this worker (no bf16 units, no
dataset at hand, no OpenVINO) is refused with the reason and the model is served in fp32.
"""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from fpar_models.files import write_json_atomic
from fpar_models.serving.isolated import IsolatedEngine

PRECISIONS = ("fp32", "bf16", "int8")
EVAL_CLIPS = 64         # validation clips the cost is measured on (all of them when fewer)
CALIBRATION_CLIPS = 32  # training clips NNCF calibrates the activation ranges on
BATCH = 8
# the calibration clips, decoded only when an int8 graph has to be built (None: not at hand)
Calibration = Callable[[], dict[str, np.ndarray] | None]
# the labelled validation clips, decoded only when a cost has to be measured (None: not at hand)
Evaluation = Callable[[], tuple[dict[str, np.ndarray], np.ndarray] | None]


class Unavailable(Exception):
    """This precision cannot be served here; the message says why."""


def bf16_units() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def torch_bf16_units(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


def runtime_for(precision: str, device: torch.device, requested: str) -> str:
    """Which runtime serves `precision` on this worker, "openvino" or "torch" (bf16 autocast
    where the worker runs PyTorch: CUDA, or FPAR_INFERENCE=torch); Unavailable says why none."""
    if requested == "onnxruntime":
        raise Unavailable("reduced precision is served by OpenVINO or PyTorch, and this worker runs "
                          "FPAR_INFERENCE=onnxruntime")
    if device.type != "cpu" or requested == "torch":
        where = "FPAR_INFERENCE=torch" if device.type == "cpu" else device.type
        if precision == "int8":
            raise Unavailable(f"int8 is served by OpenVINO on the CPU, and this worker runs {where}")
        if not torch_bf16_units(device):
            raise Unavailable(f"this {'CPU' if device.type == 'cpu' else 'GPU'} has no bf16 units")
        return "torch"
    if not (importlib.util.find_spec("openvino") and (precision != "int8" or importlib.util.find_spec("nncf"))):
        raise Unavailable("OpenVINO (and NNCF for int8) is not installed")
    if precision == "bf16" and not bf16_units():
        raise Unavailable("this CPU has no bf16 units (OpenVINO would compute in fp32)")
    return "openvino"


def quantise(graph: Path, calibration: dict[str, np.ndarray], out: Path, timeout_s: float = 3600) -> Path:
    """The ONNX serving graph as an int8 OpenVINO model, quantised by NNCF in a child process,
    so the worker never imports NNCF (it imports much, torch's extension machinery included)
    and a failure there is a failed quantisation, not a dead worker."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        clips = Path(tmp) / "calibration.npz"
        np.savez(clips, **calibration)
        run = subprocess.run([sys.executable, "-m", "fpar_models.serving.quantise", str(graph), str(clips), str(out)],
                             capture_output=True, text=True, timeout=timeout_s)
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"NNCF quantisation failed: {run.stderr.strip()[-500:]}")
    return out


def engine(graph: Path, precision: str, threads: int, calibration: Calibration | None):
    """An OpenVINO engine running the ONNX serving graph `graph` in `precision`."""
    if precision == "bf16":
        return IsolatedEngine(graph, threads, hint="bf16")
    if precision == "int8":
        int8 = graph.with_name(f"{graph.stem}-int8.xml")
        if not int8.exists():
            clips = calibration() if calibration else None
            if clips is None:
                raise Unavailable("no training clips at hand to calibrate the int8 graph on")
            quantise(graph, clips, int8)
        return IsolatedEngine(int8, threads)
    raise ValueError(f"precision must be one of {PRECISIONS}, not '{precision}'")


def cost(engine, reference, clips: dict[str, np.ndarray], labels: np.ndarray) -> dict:
    """Top-1 agreement with the fp32 reference and the accuracy of each, on labelled clips."""
    ours, theirs = [], []
    for start in range(0, len(labels), BATCH):
        batch = {name: array[start:start + BATCH] for name, array in clips.items()}
        ours.append(engine.run(batch)[0])
        theirs.append(reference.run(batch)[0])
    got, want = np.concatenate(ours), np.concatenate(theirs)
    return {"clips": int(len(labels)),
            "top1_agreement": float((got.argmax(1) == want.argmax(1)).mean()),
            "accuracy": float((got.argmax(1) == labels).mean()),
            "accuracy_fp32": float((want.argmax(1) == labels).mean()),
            "max_abs_diff": float(np.abs(got - want).max())}


def cost_file(graph: Path, precision: str, runtime: str, device: torch.device) -> Path:
    """Where the cost of `precision` on `runtime` is kept: beside the serving graph's file."""
    return graph.with_name(f"{graph.stem}-{precision}-{runtime}-{device.type}-cost.json")


def runtime_version(runtime: str) -> str:
    if runtime == "openvino":
        import openvino as ov

        return f"openvino {ov.__version__}"
    return f"torch {torch.__version__}"


def known_cost(path: Path, runtime: str) -> dict | None:
    """The cost kept at `path` if this version of the runtime measured it."""
    if path.exists():
        found = json.loads(path.read_text())
        if found.get("runtime") == runtime_version(runtime):
            return found["cost"]
    return None


def keep_cost(path: Path, runtime: str, measured: dict) -> dict:
    write_json_atomic({"runtime": runtime_version(runtime), "cost": measured}, path)  # other workers read it
    return measured
