"""Raw model speed, per preset, at 7 and 16 frames: training clips/s (forward, backward
and optimiser step over the parameters of the preset's last stage) and inference clips/s
(the serving graph: uint8 clips in, probabilities and CAMs out) on eager PyTorch and on
every compiled runtime installed (OpenVINO, ONNX Runtime), with its ratio to PyTorch in
the same run. No data loading: the ceiling the service is measured against.

    python -m benchmarks.bench_models [--size 112] [--batch 4] [--frames 7 16] [--presets ...] [--precision fp32]
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import torch

from fpar_models.compute import Compute
from fpar_models.loss import compute_loss
from fpar_models.models import build_model, motion_map_grid, run_model
from fpar_models.presets import PRESETS, resolve_config
from fpar_models.serving.predictor import random_clips
from fpar_models.serving.runtimes import COMPILED, installed, serve
from fpar_models.stages import configure_stage, make_optimizer, set_train_mode


def timed(fn, repeat: int, warmup: int = 1, sync=lambda: None) -> float:
    for _ in range(warmup):
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    sync()
    return (time.perf_counter() - start) / repeat


def bench(preset: str, frames: int, size: int, batch: int, repeat: int, compute: Compute, precision: str = "fp32",
          runtimes: tuple[str, ...] = ("torch",), classes: int = 61) -> dict:
    cfg = resolve_config({"preset": preset, "pretrained": "none", "frames": frames, "image_size": size,
                          "batch_size": batch})
    model = compute.prepare(build_model(cfg, classes))
    grid = motion_map_grid(cfg) or 1
    data = {"rgb": torch.randn(batch, frames, 3, size, size), "flow": torch.randn(batch, 1, 10, size, size),
            "maps": torch.rand(batch, frames, grid, grid), "label": torch.randint(classes, (batch,))}
    data = {k: v.to(compute.device) for k, v in data.items()}
    stage = cfg.stages[-1]
    groups, modules = configure_stage(model, stage)
    optimizer, _ = make_optimizer(stage, groups)
    alphas = {h.kind: h.alpha for h in cfg.model.heads}
    heads = "heads" in stage.train
    sync = torch.cuda.synchronize if compute.device.type == "cuda" else (lambda: None)
    train_compute = compute.for_training(precision)

    def step():
        set_train_mode(model, modules)
        with train_compute.autocast():
            loss, _ = compute_loss(run_model(model, data, heads=heads), data, alphas)
        optimizer.zero_grad(set_to_none=True)
        train_compute.step(loss, optimizer)

    train_s = timed(step, repeat, sync=sync)
    model.eval()
    inputs = random_clips(cfg, batch)  # uint8, as the predict worker feeds them
    row = {"preset": preset, "frames": frames, "train_clips_s": batch / train_s}
    with tempfile.TemporaryDirectory() as cache:
        for name in runtimes:
            engine, choice = serve(model, cfg, compute, requested=name, cache_dir=Path(cache),
                                   samples=random_clips(cfg))
            if choice.backend != name:
                print(f"# {preset}: {name} not measured ({choice.reason})", flush=True)
                continue
            row[f"{name}_clips_s"] = batch / timed(lambda engine=engine: engine.run(inputs), repeat, sync=sync)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--frames", type=int, nargs="+", default=[7, 16])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--presets", nargs="+", default=list(PRESETS))
    parser.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32",
                        help="training precision (predictions run in fp32)")
    parser.add_argument("--json", help="also write the rows to this file")
    args = parser.parse_args()
    compute = Compute.detect()
    torch.manual_seed(0)
    print(f"# device={compute.device} train={args.precision} predict=fp32 threads={torch.get_num_threads()} "
          f"cpu={platform.processor() or platform.machine()} size={args.size} batch={args.batch}")
    runtimes = ("torch", *(name for name in COMPILED if installed(name) and compute.device.type == "cpu"))
    print(f"{'preset':<18} {'frames':>6} {'train clips/s':>14} " + " ".join(f"{n + ' infer':>18}" for n in runtimes))
    rows = []
    for preset in args.presets:
        for frames in args.frames:
            row = bench(preset, frames, args.size, args.batch, args.repeat, compute, args.precision, runtimes)
            rows.append(row)
            cells = [f"{row[f'{n}_clips_s']:>9.2f} ({row[f'{n}_clips_s'] / row['torch_clips_s']:.2f}x)"
                     if f"{n}_clips_s" in row else f"{'-':>18}" for n in runtimes]
            print(f"{preset:<18} {frames:>6} {row['train_clips_s']:>14.2f} " + " ".join(cells), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
