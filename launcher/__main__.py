"""`make up`: the whole stack in the foreground until Ctrl-C or SIGTERM.

Uses REDIS_URL when set, otherwise a private redis-server (AOF on, under .run/redis).
Data and models default to ./data and ./models; the synthetic dataset is written to
./data/synthetic on first start, so the README's quickstart needs nothing else.
Workers: FPAR_WORKERS="train:train+ingest,predict:predict" (name:queues, comma-separated; a
worker's queues joined by +).
"""
from __future__ import annotations

import logging
import os
import signal
import time
from pathlib import Path

from fpar_models.data import synthetic
from launcher.publish import publish
from launcher.stack import ROOT, Stack, Worker, die_with_parent


def workers_from_env() -> list[Worker]:
    spec = os.environ.get("FPAR_WORKERS", "train:train+ingest,predict:predict")
    workers = [item.split(":", 1) for item in spec.split(",") if ":" in item]
    return [Worker(name, queues.replace("+", ",")) for name, queues in workers] or \
        [Worker("all", "train,predict,ingest")]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    parent = os.getppid()
    die_with_parent(signal.SIGTERM)  # `make` killed: stop the stack as on Ctrl-C
    if os.getppid() != parent:  # the parent died before that took effect
        return
    data_dir = Path(os.environ.get("FPAR_DATA_DIR", "data")).resolve()
    model_dir = Path(os.environ.get("FPAR_MODEL_DIR", "models")).resolve()
    demo = synthetic.generate(data_dir / "synthetic")
    if os.environ.get("FPAR_DATA_STORE"):  # every host finds it in the store
        publish([demo.name], data_dir, only_new=True)
    stack = Stack(data_dir, model_dir, port=int(os.environ.get("FPAR_PORT", "8000")),
                  redis_url=os.environ.get("REDIS_URL") or None, workers=workers_from_env(),
                  run_dir=Path(os.environ.get("FPAR_RUN_DIR", ROOT / ".run")).resolve())
    stopping = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stopping.append(True))
    try:
        stack.start(timeout_s=120)
        print(f"\nfpar-serve is up: {stack.url}  (API docs: {stack.url}/docs)\n"
              f"  redis: {stack.redis_url}{' (private)' if stack.embedded_redis else ''}\n"
              f"  data:  {data_dir} (demo dataset: {demo.name})\n  models: {model_dir}\n"
              f"Ctrl-C stops everything.\n", flush=True)
        while not stopping:
            stack.supervise_once()
            time.sleep(1)
    finally:
        print("stopping...", flush=True)
        stack.stop()


if __name__ == "__main__":
    main()
