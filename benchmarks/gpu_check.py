"""The GPU path, end to end: every preset trains one tiny epoch per stage on the synthetic
set through the real trainer (channels_last, cuDNN autotuning, the precision asked for),
then predicts one clip with `explain` (in fp32; after a bf16 training also in opt-in bf16,
whose top-1 agreement with fp32 on validation clips is printed). Two-stream starts from the egornn-attention and
flow models trained just before it, as a user would run it. Prints one row per preset
and precision and exits non-zero if any failed. With `--devices N` (default: every GPU
there) each training runs on N ranks of one torch.distributed group, and a last table
times egornn-attention's training epochs on 1 device and on N.

    python -m benchmarks.gpu_check [--device cuda] [--precision fp32 bf16] [--size 112] [--presets ...]
                                   [--devices N]

Meant for a CUDA machine (`make gpu-check`); `--device cpu` runs the same path on the CPU.
"""
from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from fpar_models import distributed
from fpar_models.compute import Compute
from fpar_models.data import synthetic
from fpar_models.presets import PRESETS, resolve_config
from fpar_models.serving import Clip, Predictor
from fpar_models.serving.graph import dataset_clips
from fpar_models.train import train

# two-stream needs its streams trained first
ORDER = ["egornn-attention", "flow", *(p for p in PRESETS if p not in ("egornn-attention", "flow"))]


def check(preset: str, precision: str, args, data_dir: Path, out: Path, compute: Compute, trained: dict) -> dict:
    request = {"preset": preset, "dataset": "synthetic", "pretrained": "none", "image_size": args.size,
               "frames": args.frames, "batch_size": args.batch * args.devices, "precision": precision,
               # a small lr: this checks the path, and one epoch from scratch at the presets' lr (SGD 1e-2
               # for flow) diverged on a small batch (activations ~1e17 in fp32, NaN in bf16)
               "stages": [{"epochs": 1, "lr": 1e-4} for _ in PRESETS[preset].config.stages]}
    if preset == "two-stream":
        request["model"] = {k: v for k, v in (("rgb_model", trained.get("egornn-attention")),
                                              ("flow_model", trained.get("flow"))) if v}
    cfg = resolve_config(request)
    if compute.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(compute.device)
    started = time.perf_counter()
    result = distributed.launch(train_rank, args.devices, (cfg, data_dir, out / f"{preset}-{precision}", compute),
                                cuda=compute.device.type == "cuda")
    seconds = time.perf_counter() - started
    trained[preset] = str(result.model_path)

    predictor = Predictor(result.model_path, compute=compute)
    size, rng = cfg.image_size, np.random.default_rng(0)
    rgb = rng.integers(0, 256, (cfg.frames, size, size, 3), dtype=np.uint8) if cfg.uses_rgb else None
    flow = rng.integers(0, 256, (cfg.model.eval_stacks, 2 * cfg.model.stack_size, size, size),
                        dtype=np.uint8) if cfg.uses_flow else None
    (answer,) = predictor.predict([Clip(rgb, flow, top_k=3, explain=cfg.uses_rgb)])
    assert len(answer["top_k"]) == 3 and np.isfinite([r["probability"] for r in answer["top_k"]]).all()
    assert not cfg.uses_rgb or len(answer["cams"]) == cfg.frames
    assert all(np.isfinite(row["train_loss"]) for row in result.history), result.history
    agreement = float("nan")
    if precision == "bf16":  # the opt-in serving mode, measured as a worker would
        clips = lambda: dataset_clips(cfg, predictor.classes, data_dir, cfg.val_users, 16)  # noqa: E731
        bf16 = Predictor(result.model_path, compute=compute, precision="bf16", evaluation=clips)
        assert bf16.choice.precision == "bf16", bf16.choice.reason
        (answer,) = bf16.predict([Clip(rgb, flow, top_k=3, explain=cfg.uses_rgb)])
        assert np.isfinite([r["probability"] for r in answer["top_k"]]).all()
        agreement = bf16.choice.cost["top1_agreement"]
    peak = torch.cuda.max_memory_allocated(compute.device) / 2**20 if compute.device.type == "cuda" else float("nan")
    return {"epochs": len(result.history), "s_per_epoch": seconds / len(result.history), "peak_mib": peak,
            "agreement": agreement}


def train_rank(group: distributed.Group, job: tuple):
    cfg, data_dir, out, compute = job
    return train(cfg, data_dir, out, compute=group.compute(compute), resolve_model=Path, group=group)


def scaling(args, data_dir: Path, out: Path, compute: Compute) -> None:
    """egornn-attention's stage 1 on 1 device and on args.devices: the mean training time
    of its epochs after the first (which warms cuDNN and the caches)."""
    cfg = resolve_config({"preset": "egornn-attention", "dataset": "synthetic", "pretrained": "none",
                          "image_size": args.size, "frames": args.frames, "batch_size": args.batch * args.devices,
                          "stages": [{"epochs": 3, "lr": 1e-4}, None]})
    print(f"# scaling: egornn-attention stage 1, batch {cfg.batch_size}, s per training epoch (after the first)")
    base = None
    for devices in (1, args.devices):
        result = distributed.launch(train_rank, devices, (cfg, data_dir, out / f"scaling-{devices}", compute),
                                    cuda=compute.device.type == "cuda")
        seconds = float(np.mean([row["train_time_s"] for row in result.history[1:]]))
        base = base or seconds
        print(f"devices {devices:<3} {seconds:>8.2f} s/epoch  {base / seconds:>5.2f}x", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default=None, help="default: cuda when present")
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=7)
    parser.add_argument("--batch", type=int, default=8, help="clips per device in a batch")
    parser.add_argument("--presets", nargs="+", default=ORDER, choices=ORDER)
    parser.add_argument("--devices", type=int, default=max(1, torch.cuda.device_count()),
                        help="ranks per training (default: every GPU)")
    args = parser.parse_args()
    compute = Compute.detect(args.device)
    if compute.device.type != "cuda":
        print(f"# no CUDA device: running the same path on {compute.device}", file=sys.stderr)
    gpu = torch.cuda.get_device_name(compute.device) if compute.device.type == "cuda" else platform.processor() or "cpu"
    print(f"# gpu_check: {gpu}, torch {torch.__version__}, channels_last={compute.channels_last}, "
          f"{args.size} px, {args.frames} frames, batch {args.batch}, devices {args.devices}")
    print(f"{'preset':<18} {'precision':<9} {'ok':<4} {'s/epoch':>8} {'peak MiB':>9} {'bf16 agrees':>12}  error")
    failed = 0
    presets = [p for p in ORDER if p in args.presets]
    with tempfile.TemporaryDirectory(prefix="fpar-gpu-check-") as tmp:
        data_dir = Path(tmp) / "data"
        synthetic.generate(data_dir / "synthetic", videos_per_class=2)
        for precision in args.precision:
            trained: dict[str, str] = {}
            for preset in presets:
                try:
                    row = check(preset, precision, args, data_dir, Path(tmp) / "runs", compute, trained)
                    print(f"{preset:<18} {precision:<9} {'yes':<4} {row['s_per_epoch']:>8.2f} "
                          f"{row['peak_mib']:>9.0f} {row['agreement']:>12.2f}", flush=True)
                except Exception as e:  # a failing preset is a row of the report, not the end of it
                    failed += 1
                    message = f"{type(e).__name__}: {e}".splitlines()[0][:100]
                    print(f"{preset:<18} {precision:<9} {'NO':<4} {'':>8} {'':>9} {'':>12}  {message}", flush=True)
                    traceback.print_exc(file=sys.stderr)
        if args.devices > 1:
            scaling(args, data_dir, Path(tmp) / "runs", compute)
    print(f"# {failed} failed" if failed else "# all passed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
