"""Inference runtimes behind one interface: the serving graph (`fpar_models.serving.graph`) run
by eager PyTorch, ONNX Runtime or OpenVINO.

    FPAR_INFERENCE=auto | torch | openvino | onnxruntime

`auto` takes, on the CPU, the fastest runtime that is installed and passes verification
(OpenVINO, then ONNX Runtime: docs/benchmarks.md has the measurements); on CUDA, PyTorch.
A compiled graph never serves unchecked: before it does, it runs beside eager PyTorch on
sample clips and must give the same top-k classes with probabilities within a tolerance
(1e-3); otherwise the model is served by PyTorch and the reason is reported.
The ONNX graph is exported once per model, frames, size and torch version, and cached in
the model store beside the checkpoint; OpenVINO keeps its compiled blobs there too.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from fpar_models.compute import Compute
from fpar_models.config import TrainConfig
from fpar_models.serving import precision as reduced_precision
from fpar_models.serving.graph import Servable, export_onnx
from fpar_models.serving.isolated import compile_graph, infer

log = logging.getLogger("fpar.inference")
COMPILED = ("openvino", "onnxruntime")  # fastest first on this project's CPU
TOLERANCE = 1e-3


@dataclass
class Choice:
    """What a model is served with, and why."""
    backend: str
    requested: str
    verified: bool | None = None        # None: eager PyTorch, the reference itself
    max_abs_diff: float | None = None   # largest probability difference to PyTorch on the sample clips
    reason: str = ""
    precision: str = "fp32"
    cost: dict | None = None            # reduced precision: what it costs on the validation clips

    def as_dict(self) -> dict:
        return asdict(self)


class TorchEngine:
    name = "torch"

    def __init__(self, servable: Servable, compute: Compute):
        self.servable, self.compute = servable, compute

    @torch.inference_mode()
    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        tensors = [torch.from_numpy(inputs[name]).to(self.compute.device) for name in self.servable.inputs]
        with self.compute.autocast():
            outputs = self.servable(*tensors)
        return [o.float().cpu().numpy() for o in outputs]


class OnnxRuntimeEngine:
    name = "onnxruntime"

    def __init__(self, graph: Path, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, inputs)


class OpenVinoEngine:
    name = "openvino"

    def __init__(self, graph: Path, threads: int, hint: str = "f32"):
        self.compiled = compile_graph(graph, threads, hint)
        self.request = self.compiled.create_infer_request()

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return infer(self.compiled, self.request, inputs)


ENGINES = {"onnxruntime": OnnxRuntimeEngine, "openvino": OpenVinoEngine}


def installed(name: str) -> bool:
    return name == "torch" or importlib.util.find_spec(name) is not None


def candidates(requested: str, device: torch.device) -> list[str]:
    if requested == "torch":
        return []
    if requested == "auto":
        return [name for name in COMPILED if installed(name)] if device.type == "cpu" else []
    return [requested]


def graph_path(cache_dir: Path, cfg: TrainConfig) -> Path:
    return Path(cache_dir) / f"serving-{cfg.frames}x{cfg.image_size}-torch{torch.__version__.split('+')[0]}.onnx"


def verify(engine, reference: TorchEngine, samples: dict[str, np.ndarray], k: int = 5,
           tolerance: float = TOLERANCE) -> tuple[bool, float, str]:
    """Same top-k classes on every sample clip, probabilities within the tolerance."""
    want, got = reference.run(samples)[0], engine.run(samples)[0]
    diff = float(np.abs(want - got).max())
    k = min(k, want.shape[1])
    same = np.array_equal(np.argsort(-want, 1, kind="stable")[:, :k], np.argsort(-got, 1, kind="stable")[:, :k])
    if not same:
        return False, diff, f"top-{k} classes differ from PyTorch's on the sample clips (max |dp| {diff:.2g})"
    if diff > tolerance:
        return False, diff, f"probabilities differ from PyTorch's by {diff:.2g} > {tolerance:g}"
    return True, diff, ""


def serve(model: torch.nn.Module, cfg: TrainConfig, compute: Compute, *, requested: str = "torch",
          cache_dir: Path | None = None, samples: dict[str, np.ndarray], threads: int | None = None,
          precision: str = "fp32", evaluation: reduced_precision.Evaluation | None = None,
          calibration: reduced_precision.Calibration | None = None):
    """(engine, Choice): the model in the reduced `precision` asked for when it can be built
    and measured here (on the labelled `evaluation` clips), otherwise the fastest fp32
    runtime that verifies on `samples`, otherwise eager PyTorch."""
    reference = TorchEngine(Servable(model, cfg), compute)
    threads = threads or torch.get_num_threads()
    reasons = []
    if precision != "fp32":
        try:
            return reduced(reference, cfg, compute, requested, precision, cache_dir, threads, evaluation, calibration)
        except reduced_precision.Unavailable as e:
            reasons.append(f"{precision} refused: {e}")
        except Exception as e:
            log.warning("%s serving could not be built", precision, exc_info=True)
            reasons.append(f"{precision} failed: {type(e).__name__}: {e}"[:300])
        log.warning("model served in fp32: %s", reasons[-1])
    for name in candidates(requested, compute.device):
        if not installed(name):
            reasons.append(f"{name} is not installed")
            continue
        try:
            graph = serving_graph(reference, cfg, cache_dir)
            engine = ENGINES[name](graph, threads)
            ok, diff, why = verify(engine, reference, samples)
        except Exception as e:  # an exporter or runtime that cannot take this model: serve it anyway
            log.warning("%s could not build the serving graph", name, exc_info=True)
            reasons.append(f"{name} failed: {type(e).__name__}: {e}"[:300])
            continue
        if ok:
            return engine, Choice(name, requested, True, diff, "; ".join(reasons))
        log.warning("%s refused for this model: %s", name, why)
        reasons.append(f"{name} refused: {why}")
    verified = False if reasons else None
    return reference, Choice("torch", requested, verified, None, "; ".join(reasons))


def serving_graph(reference: TorchEngine, cfg: TrainConfig, cache_dir: Path) -> Path:
    graph = graph_path(cache_dir, cfg)
    if not graph.exists():
        export_onnx(reference.servable, cfg, graph)
    return graph


def reduced(reference: TorchEngine, cfg: TrainConfig, compute: Compute, requested: str, precision: str,
            cache_dir: Path, threads: int, evaluation, calibration):
    """The model in bf16 or int8, with its measured cost; Unavailable says why not."""
    name = reduced_precision.runtime_for(precision, compute.device, requested)
    costs = reduced_precision.cost_file(graph_path(cache_dir, cfg), precision, name, compute.device)
    cost = reduced_precision.known_cost(costs, name)
    clips = None if cost else evaluation() if evaluation else None
    if cost is None and clips is None:
        raise reduced_precision.Unavailable("its cost cannot be measured: the validation clips are not at hand")
    if name == "torch":
        engine = TorchEngine(reference.servable, dataclasses.replace(compute, amp_dtype=torch.bfloat16))
    else:
        engine = reduced_precision.engine(serving_graph(reference, cfg, cache_dir), precision, threads, calibration)
    if cost is None:
        cost = reduced_precision.keep_cost(costs, name, reduced_precision.cost(engine, reference, *clips))
    log.info("model served in %s by %s: %s", precision, name, cost)
    return engine, Choice(name, requested, False, cost["max_abs_diff"], precision=precision, cost=cost,
                          reason=f"{precision}, opted in: not held to the fp32 tolerance; its cost on "
                                 f"{cost['clips']} validation clips is in `cost`")
