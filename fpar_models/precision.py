"""Serving in reduced precision, opt-in per model (`PATCH /models/{id}` with
`{"inference_precision": ...}`). fp32 stays the default, and the only mode verified to
match PyTorch; the reduced ones trade exactness for speed, and what they cost is measured,
not assumed:

    bf16  OpenVINO computing in bfloat16, on CPUs with bf16 units (AVX512-BF16, AMX)
    int8  the serving graph quantised after training by NNCF (weights and activations),
          calibrated on training clips, run by OpenVINO

Reduced graphs run in a child process of their own (fpar_models.isolated), NNCF in
another. When a worker first builds a reduced mode it runs it beside fp32 PyTorch on the model's
validation clips and reports top-1 agreement and the accuracy of each (GET /models/{id});
the int8 graph and the measurement are cached beside the checkpoint. A mode that cannot be
built or measured on this worker (no bf16 units, no dataset at hand, no OpenVINO) is
refused with the reason and the model is served in fp32.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

PRECISIONS = ("fp32", "bf16", "int8")
EVAL_CLIPS = 64         # validation clips the cost is measured on (all of them when fewer)
CALIBRATION_CLIPS = 32  # training clips NNCF calibrates the activation ranges on
BATCH = 8
# the calibration clips, decoded only when an int8 graph has to be built (None: not at hand)
Calibration = Callable[[], dict[str, np.ndarray] | None]


class Unavailable(Exception):
    """This precision cannot be served here; the message says why."""


def bf16_units() -> bool:
    import openvino as ov

    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def quantise(graph: Path, calibration: dict[str, np.ndarray], out: Path, timeout_s: float = 3600) -> Path:
    """The ONNX serving graph as an int8 OpenVINO model, quantised by NNCF in a child process,
    so the worker never imports NNCF (it imports much, torch's extension machinery included)
    and a failure there is a failed quantisation, not a dead worker."""
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        clips = Path(tmp) / "calibration.npz"
        np.savez(clips, **calibration)
        run = subprocess.run([sys.executable, "-m", "fpar_models.quantise", str(graph), str(clips), str(out)],
                             capture_output=True, text=True, timeout=timeout_s)
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"NNCF quantisation failed: {run.stderr.strip()[-500:]}")
    return out


def engine(graph: Path, precision: str, threads: int, calibration: Calibration | None):
    """An OpenVINO engine running the ONNX serving graph `graph` in `precision`."""
    from fpar_models.isolated import IsolatedEngine

    if precision == "bf16":
        if not bf16_units():
            raise Unavailable("this CPU has no bf16 units (OpenVINO would compute in fp32)")
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


def measured(graph: Path, precision: str, measure) -> dict:
    """The cost of `precision` for this graph, measured once and kept beside it."""
    import openvino as ov

    cached = graph.with_name(f"{graph.stem}-{precision}-cost.json")
    if cached.exists():
        found = json.loads(cached.read_text())
        if found.get("openvino") == ov.__version__:
            return found["cost"]
    result = measure()
    cached.write_text(json.dumps({"openvino": ov.__version__, "cost": result}))
    return result
