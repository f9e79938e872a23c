"""Training speed through the service against the trainer's CLI, on the same config, in
one run: clips/s per epoch (median over the epochs after the first, whose frames are
still being decoded into the cache) and the share of step time spent waiting for data,
with DataLoader workers off and on.

    python -m benchmarks.bench_train                      # starts its own stack
    python -m benchmarks.bench_train --url http://host:8000 --data-dir /data --dataset gtea61
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from fpar_models.data.gtea61 import scan
from fpar_models.presets import resolve_config
from launcher import Stack, Worker


def config(args, num_workers: int) -> dict:
    return {"preset": args.preset, "dataset": args.dataset, "pretrained": "none", "frames": args.frames,
            "image_size": args.size, "batch_size": args.batch, "num_workers": num_workers,
            "stages": [{"epochs": args.epochs}, None]}  # stage 1 alone


def summarize(rows: list[dict], clips: int, epochs: int) -> dict:
    """Rows of one or more runs of `epochs` epochs each; the first epoch of a run decodes."""
    first = rows[::epochs]
    later = [r for i, r in enumerate(rows) if i % epochs] or rows
    return {"clips_s": statistics.median(clips / r["train_time_s"] for r in later),
            "data_wait_share": statistics.median(r["data_wait_share"] for r in later),
            "first_epoch_clips_s": statistics.median(clips / r["train_time_s"] for r in first)}


def run_cli(cfg: dict, data_dir: Path) -> list[dict]:
    with tempfile.TemporaryDirectory() as out:
        path = Path(out) / "cfg.json"
        path.write_text(json.dumps(cfg))
        proc = subprocess.run([sys.executable, "-m", "fpar_models.train", "--config", str(path), "--data-dir",
                               str(data_dir), "--out", out], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def run_service(client: httpx.Client, cfg: dict) -> list[dict]:
    job = client.post("/train", json=cfg)
    job.raise_for_status()
    while (state := client.get(f"/jobs/{job.json()['id']}").json())["status"] not in (
            "succeeded", "failed", "cancelled"):
        time.sleep(1)
    if state["status"] != "succeeded":
        raise SystemExit(f"service training failed: {state['error']}")
    return state["metrics"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--data-dir", type=Path, help="FPAR_DATA_DIR of the stack, read locally by the CLI")
    parser.add_argument("--dataset", default="synthetic")
    parser.add_argument("--preset", default="egornn-attention")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--num-workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--rounds", type=int, default=2, help="alternating CLI/service runs per setting")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    stack = None
    if not args.url:
        stack = Stack.on_synthetic_data(Path(tempfile.mkdtemp(prefix="bench-train-")),
                                        workers=[Worker("train", "train")])
        stack.start(timeout_s=120)
        args.url, args.data_dir = stack.url, stack.data_dir
    try:
        cfg0 = resolve_config(config(args, 0))
        clips = len(scan(args.data_dir / args.dataset, cfg0.train_users))
        print(f"# {args.preset}, stage 1, {args.frames} frames at {args.size} px, batch {args.batch}, "
              f"{clips} training clips, {args.epochs} epochs")
        client = httpx.Client(base_url=args.url, timeout=60)
        report = []
        for workers in args.num_workers:
            cfg = config(args, workers)
            cli_rows, service_rows = [], []
            for _ in range(args.rounds):  # alternate, so drifts of a shared machine hit both alike
                cli_rows += run_cli(cfg, args.data_dir)
                service_rows += run_service(client, cfg)
            cli, service = summarize(cli_rows, clips, args.epochs), summarize(service_rows, clips, args.epochs)
            ratio = service["clips_s"] / cli["clips_s"]
            report.append({"num_workers": workers, "cli": cli, "service": service, "ratio": ratio})
            print(f"num_workers={workers}  cli: {cli['clips_s']:.2f} clips/s (data wait {cli['data_wait_share']:.1%})"
                  f"  service: {service['clips_s']:.2f} clips/s (data wait {service['data_wait_share']:.1%})"
                  f"  ratio={ratio:.2f}  first epoch: cli {cli['first_epoch_clips_s']:.2f}, "
                  f"service {service['first_epoch_clips_s']:.2f} clips/s", flush=True)
    finally:
        if stack:
            stack.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
