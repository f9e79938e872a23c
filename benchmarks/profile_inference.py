"""Where a prediction's time goes, per runtime: OpenVINO's per-kernel counters
(PERF_COUNT) and PyTorch's profiler, on the same serving graph and clips. It answers
"how much faster could a runtime still make this model?": what is not convolution is
the most that graph-level work (fusions, layouts) can take.

    python -m benchmarks.profile_inference [--preset egornn-attention] [--size 112] [--frames 16] [--batch 2]
"""
from __future__ import annotations

import argparse
import collections
import tempfile
from pathlib import Path

import torch

from fpar_models.models import build_model
from fpar_models.presets import resolve_config
from fpar_models.serving.graph import Servable, export_onnx
from fpar_models.serving.predictor import random_clips


def shares(times: dict[str, float], top: int) -> list[tuple[str, float]]:
    total = sum(times.values())
    return [(name, seconds / total) for name, seconds in collections.Counter(times).most_common(top)]


def openvino_profile(graph: Path, inputs, threads: int) -> dict[str, float]:
    import openvino as ov

    core = ov.Core()
    compiled = core.compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True,
                                                      "INFERENCE_NUM_THREADS": threads})
    request = compiled.create_infer_request()
    request.infer(inputs)  # the first pass chooses kernels and allocates
    request.infer(inputs)
    times = collections.defaultdict(float)
    for node in request.profiling_info:
        times[f"{node.node_type} ({node.exec_type})"] += node.real_time.total_seconds()
    return times


def torch_profile(servable: Servable, inputs) -> dict[str, float]:
    tensors = [torch.from_numpy(inputs[name]) for name in servable.inputs]
    with torch.inference_mode():
        servable(*tensors)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            servable(*tensors)
    return {event.key: event.self_cpu_time_total / 1e6 for event in prof.key_averages()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--preset", default="egornn-attention")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--top", type=int, default=8)
    args = parser.parse_args()
    cfg = resolve_config({"preset": args.preset, "dataset": "synthetic", "pretrained": "none",
                          "image_size": args.size, "frames": args.frames})
    servable = Servable(build_model(cfg, 61).eval(), cfg)
    inputs = random_clips(cfg, args.batch)
    threads = torch.get_num_threads()
    with tempfile.TemporaryDirectory() as tmp:
        graph = export_onnx(servable, cfg, Path(tmp) / "serving.onnx")
        profiles = {"openvino f32": openvino_profile(graph, inputs, threads),
                    "torch (eager)": torch_profile(servable, inputs)}
    print(f"# {args.preset}, {args.frames} frames at {args.size} px, batch {args.batch}, {threads} threads")
    for runtime, times in profiles.items():
        print(f"{runtime}: {sum(times.values()):.2f} s of kernel time")
        for name, share in shares(times, args.top):
            print(f"  {share:6.1%}  {name}")


if __name__ == "__main__":
    main()
