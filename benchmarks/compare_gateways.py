"""Two gateways' cost per served clip on one stack: this checkout's and another's (an
earlier commit, say), in alternating rounds against the same Redis, predict worker and
model. Between two stacks started one after the other, this machine's CPU cost per clip
moves by ±1 ms (where the processes land, what the neighbours do); within one stack, by
a few tenths. A change to the gateway is measured here, not by two bench_predict runs.

    git worktree add /tmp/before HEAD~3
    python -m benchmarks.compare_gateways /tmp/before --precision int8

Prints each round's clips/s and CPU-ms per clip at c=32 (the gateway's, and the service's
outside the model), then each side's medians and its c=1 latency and gateway CPU per
request, the two sides' requests interleaved.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.bench_predict import encoded, measure_service, post, request_files, switch_precision, train_throwaway
from benchmarks.cpu_use import CpuUse, process_cpu_s
from fpar_models.processes import free_port
from launcher import Stack, Worker


def other_gateway(stack: Stack, checkout: Path) -> tuple[subprocess.Popen, str]:
    """A gateway run from `checkout`'s code, with the stack's settings, on a port of its own."""
    port = free_port()
    env = {**stack.child_env(), "PYTHONPATH": str(checkout), "FPAR_PORT": str(port)}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning"], cwd=checkout, env=env,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit(f"the gateway from {checkout} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("other", type=Path, help="another checkout of this project (its own code, this venv)")
    parser.add_argument("--precision", default="int8", choices=["fp32", "int8", "bf16"])
    parser.add_argument("--rounds", type=int, default=6, help="c=32 runs, alternating which side goes first")
    parser.add_argument("--requests", type=int, default=400, help="per c=32 run")
    parser.add_argument("--sequential", type=int, default=200, help="c=1 requests per side")
    args = parser.parse_args()

    stack = Stack.on_synthetic_data(Path(tempfile.mkdtemp(prefix="compare-gateways-")),
                                    workers=[Worker("train", "train"), Worker("predict", "predict")])
    stack.start(timeout_s=120)
    other = None
    try:
        client = httpx.Client(base_url=stack.url, timeout=300)
        model = train_throwaway(client, "synthetic", 16, 112)
        bodies = encoded(model, request_files(None, 8, 16))
        if args.precision != "fp32" and not switch_precision(client, stack.url, model, bodies[0], args.precision):
            raise SystemExit(f"the worker did not serve {args.precision}")
        other, other_url = other_gateway(stack, args.other.resolve())
        sides = {"this": (stack.url, stack.procs["gateway"].pid), "other": (other_url, other.pid)}
        for url, _ in sides.values():
            measure_service(url, bodies, 4, 16)  # warm both paths
        rounds = {name: [] for name in sides}
        for r in range(args.rounds):
            for name in (list(sides) if r % 2 == 0 else list(reversed(sides))):
                url = sides[name][0]
                s = measure_service(url, bodies, 32, args.requests, CpuUse(url, stack.redis_url, local=True))
                gateway = sum(v for k, v in s["cpu_ms"].items() if k.startswith("gateway"))
                outside = s["cpu_ms"]["service outside the model"]
                rounds[name].append((s["clips_s"], gateway, outside))
                print(f"{name:>5}: c=32 {s['clips_s']:6.2f} clips/s; CPU-ms per clip: gateway {gateway:5.2f}, "
                      f"service outside the model {outside:5.2f}", flush=True)
        latency, cpu = {name: [] for name in sides}, dict.fromkeys(sides, 0.0)
        for i in range(args.sequential):
            for name, (url, pid) in sides.items():
                before = process_cpu_s(pid)
                latency[name].append(post(url, bodies[i % len(bodies)]))
                cpu[name] += process_cpu_s(pid) - before
        for name in sides:
            med = [statistics.median(x[j] for x in rounds[name]) for j in range(3)]
            print(f"== {name} ({args.other if name == 'other' else 'this checkout'}), {args.precision}: c=32 "
                  f"{med[0]:.2f} clips/s, gateway {med[1]:.2f} and outside the model {med[2]:.2f} CPU-ms per clip "
                  f"(medians of {args.rounds}); c=1 p50 {1000 * statistics.median(latency[name]):.1f} ms, "
                  f"gateway {1000 * cpu[name] / args.sequential:.2f} CPU-ms per request")
    finally:
        if other is not None:
            other.terminate()
            other.wait(10)
        stack.stop()


if __name__ == "__main__":
    main()
