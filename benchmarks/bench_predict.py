"""Predict throughput and latency: the raw model on every inference runtime against the
running service, in one run.

(a) the raw model, in this process, frames already decoded, on each runtime installed
    (eager PyTorch, OpenVINO, ONNX Runtime: the same serving graph): a batched pass at
    batch 1 and at the batch sizes the worker's batcher uses, plus the cost of decoding
    one request's frames;
(b) the service end to end over HTTP (multipart upload, gateway decode, queue, worker,
    answer) at concurrency 1, 8 and 32: p50/p95/p99 latency and clips/s;
then one line per concurrency with the ratio service/best raw runtime, the predict
worker's memory before and after many predictions, and last these four lines:

    raw torch clips/s: <x>
    raw best clips/s: <y> (<runtime>)
    service c=32 clips/s: <z>
    ratio service/raw_best c=32: <z/y>

    python -m benchmarks.bench_predict                      # starts its own stack
    python -m benchmarks.bench_predict --url http://host:8000 --dataset gtea61

With --url it trains a throwaway 1-epoch model on DATASET through the API first.
"""
from __future__ import annotations

import argparse
import http.client
import io
import json
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import torch
from PIL import Image

from benchmarks import cpu_use
from benchmarks.cpu_use import CpuUse
from fpar_models import checkpoint
from fpar_models.config import TrainConfig
from fpar_models.models import build_model
from fpar_models.serving.precision import bf16_units
from fpar_models.serving.predictor import Predictor, random_clips
from fpar_models.serving.runtimes import installed
from launcher import Stack, Worker
from service.uploads import rgb_from_images


def train_throwaway(client: httpx.Client, dataset: str, frames: int, size: int) -> str:
    body = {"preset": "egornn-attention", "dataset": dataset, "pretrained": "none", "frames": frames,
            "image_size": size, "batch_size": 8, "stages": [{"epochs": 1}, None]}
    job = client.post("/train", json=body)
    job.raise_for_status()
    job_id = job.json()["id"]
    while (state := client.get(f"/jobs/{job_id}").json())["status"] not in ("succeeded", "failed", "cancelled"):
        time.sleep(1)
    if state["status"] != "succeeded":
        raise SystemExit(f"training the throwaway model failed: {state['error']}")
    return state["result"]["model"]


def request_files(data_dir: Path | None, count: int, frames_per_clip: int) -> list[list[tuple]]:
    """Frames as a client would send them: PNG files of the dataset's S2 videos, or noise."""
    clips = []
    videos = sorted((data_dir / "processed_frames2" / "S2").glob("*/*/rgb")) if data_dir else []
    for i in range(count):
        if videos:
            paths = sorted(videos[i % len(videos)].glob("*.png"))
            blobs = [p.read_bytes() for p in paths]
        else:
            rng = np.random.default_rng(i)
            blobs = []
            for _ in range(frames_per_clip):
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)).save(buf, format="PNG")
                blobs.append(buf.getvalue())
        clips.append([("frames", (f"{j:04d}.png", b, "image/png")) for j, b in enumerate(blobs)])
    return clips


def default_reduced() -> list[str]:
    if not installed("nncf"):
        return []
    return ["int8", "bf16"] if bf16_units() else ["int8"]


def timed(fn, min_s: float = 2.0, min_reps: int = 3) -> float:
    fn()  # warm-up
    reps, start = 0, time.perf_counter()
    while reps < min_reps or time.perf_counter() - start < min_s:
        fn()
        reps += 1
    return (time.perf_counter() - start) / reps


class RawModel:
    """The model in this process, on each runtime, as the worker runs it, with no service
    around it (random weights of the service model's config: speed does not depend on them)."""

    def __init__(self, config: dict, classes: int, clips: list[list[tuple]], runtimes: list[str],
                 reduced: list[str] = ()):
        self.cfg = TrainConfig.model_validate({**config, "pretrained": "none"})
        folder = Path(tempfile.mkdtemp(prefix="bench-raw-"))
        names = [str(i) for i in range(classes)]
        checkpoint.save_atomic(checkpoint.model_file(build_model(self.cfg, classes), self.cfg, names),
                               folder / "model.pt")
        self.predictors = {}
        for name in runtimes:
            predictor = Predictor(folder / "model.pt", inference=name)
            if predictor.choice.backend == name:
                self.predictors[name] = predictor
            else:
                print(f"# {name}: not measured ({predictor.choice.reason})")
        self.reduced = {}  # opt-in precisions, on OpenVINO: measured apart, never the "raw best"
        inputs = random_clips(self.cfg, 8)
        for precision in reduced:
            predictor = Predictor(folder / "model.pt", inference="openvino", precision=precision,
                                  evaluation=lambda: (inputs, np.zeros(8, int)), calibration=lambda: inputs)
            if predictor.choice.precision == precision:
                self.reduced[precision] = predictor
            else:
                print(f"# openvino {precision}: not measured ({predictor.choice.reason})")
        self.files = [[(name, blob) for _, (name, blob, _) in clip] for clip in clips]
        self.prepared = [self.decode(i) for i in range(len(clips))]

    def decode(self, i: int) -> np.ndarray:
        """What the gateway does to one request's frames."""
        return rgb_from_images(self.files[i % len(self.files)], self.cfg.frames, self.cfg.image_size)

    def forward(self, predictor: Predictor, first: int, batch: int = 1) -> None:
        clips = np.stack([self.prepared[(first + j) % len(self.prepared)] for j in range(batch)])
        predictor.engine.run({"frames": clips})

    def measure(self, batch_sizes: list[int]) -> dict:
        out = {"decode_ms": 1000 * timed(lambda: self.decode(0)), "runtimes": {}, "reduced": {}}
        for group, predictors in (("runtimes", self.predictors), ("reduced", self.reduced)):
            for name, predictor in predictors.items():
                out[group][name] = {}
                for b in batch_sizes:
                    seconds = timed(lambda b=b, p=predictor: self.forward(p, 0, b))
                    out[group][name][b] = {"ms": 1000 * seconds, "clips_s": b / seconds}
        return out

    @staticmethod
    def best(raw: dict, runtime: str) -> dict:
        return max(raw["runtimes"][runtime].values(), key=lambda b: b["clips_s"])

    def around(self, raw: dict, group: str, name: str) -> float:
        """The best batch's clips/s, measured again now and averaged with the first
        measurement: on a shared VM raw speed drifts by a third between minutes, so a
        service run is divided by the raw speed around it, not by one taken earlier."""
        batches = raw[group][name]
        b = max(batches, key=lambda b: batches[b]["clips_s"])
        predictor = (self.predictors if group == "runtimes" else self.reduced)[name]
        again = b / timed(lambda: self.forward(predictor, 0, b))
        batches[b]["clips_s_again"] = again
        print(f"# raw {name} batch={b} again: {again:.2f} clips/s (first {batches[b]['clips_s']:.2f})")
        return (batches[b]["clips_s"] + again) / 2


_clients = threading.local()


def encoded(model: str, clips: list[list[tuple]]) -> list[tuple[bytes, str]]:
    """Each clip's request body, multipart-encoded once: encoding 16 files per request cost
    the load generator CPU the service it loads then lacks (on a 2-core machine)."""
    bodies = []
    for files in clips:
        request = httpx.Request("POST", "http://x/predict", files=files, data={"wait": "60", "model": model})
        bodies.append((request.read(), request.headers["content-type"]))
    return bodies


def post(url: str, body: tuple[bytes, str]) -> float:
    """One request on this thread's kept-alive connection, as a load generator should: a new
    client per request cost ~40 ms of CPU (httpx's TLS context), and httpx's own per-request
    work ~5 ms more than the standard library's, all taken from the service it loads."""
    conn = getattr(_clients, url, None)
    if conn is None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=300)
        setattr(_clients, url, conn)
    start = time.perf_counter()
    for attempt in (1, 2):
        try:
            conn.request("POST", "/predict", body[0], {"content-type": body[1]})
            r = conn.getresponse()
            status, text = r.status, r.read()
            break
        except (ConnectionError, http.client.HTTPException):
            conn.close()  # the gateway closed an idle connection (or restarted): connect again, once
            if attempt == 2:
                raise
    if status != 200 or json.loads(text)["status"] != "succeeded":
        raise RuntimeError(f"predict failed: {status} {text[:300]}")
    return time.perf_counter() - start


def paired_overhead(raw: RawModel, runtime: str, url: str, bodies: list, n: int) -> float:
    """Median of (service latency - (decode + batch-1 pass on the service's runtime)) over
    alternating pairs: drifts of a shared machine hit both sides of each pair alike."""
    diffs = []
    for i in range(n):
        start = time.perf_counter()
        raw.decode(i)
        raw.forward(raw.predictors[runtime], i)
        floor = time.perf_counter() - start
        diffs.append(post(url, bodies[i % len(bodies)]) - floor)
    return 1000 * statistics.median(diffs)


def measure_service(url: str, bodies: list, concurrency: int, requests: int, cpu: CpuUse | None = None) -> dict:
    """Latencies and clips/s at `concurrency`; with `cpu`, where each clip's CPU went."""
    before = cpu.read() if cpu else None
    start = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        latencies = sorted(pool.map(lambda i: post(url, bodies[i % len(bodies)]), range(requests)))
    wall = time.perf_counter() - start
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    out = {"concurrency": concurrency, "requests": requests, "p50_ms": 1000 * q[49], "p95_ms": 1000 * q[94],
           "p99_ms": 1000 * q[98], "clips_s": requests / wall}
    if cpu:
        out["cpu_ms"] = cpu_use.per_clip(before, cpu.read(), requests)
    return out


def predict_worker_rss(client: httpx.Client) -> float | None:
    workers = client.get("/readyz").json().get("workers", [])
    sizes = [w.get("rss_mb") for w in workers if "predict" in w["queues"]]
    return sizes[0] if sizes else None


def first_after_restart(stack: Stack, bodies: list) -> dict:
    """The first request a freshly started predict worker serves, against the next ones:
    the worker loads the newest models when it starts, not on the first request."""
    stack.kill("worker-predict")
    stack.supervise_once()
    client = httpx.Client(base_url=stack.url, timeout=60)
    while predict_worker_rss(client) is None or not any(
            w["pid"] == stack.procs["worker-predict"].pid for w in client.get("/readyz").json()["workers"]):
        time.sleep(0.2)
    first = post(stack.url, bodies[0])
    after = statistics.median(post(stack.url, bodies[i % len(bodies)]) for i in range(1, 9))
    print(f"first request after a predict worker restart: {1000 * first:.0f} ms; the next ones: "
          f"{1000 * after:.0f} ms (median of 8)")
    return {"first_ms": 1000 * first, "next_ms": 1000 * after}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", help="a running stack; default: start one")
    parser.add_argument("--dataset", default="synthetic", help="dataset to train the throwaway model on")
    parser.add_argument("--data-dir", type=Path, help="local FPAR_DATA_DIR, to send the dataset's own frames")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--requests", type=int, nargs="+", default=[30, 80, 160], help="per concurrency level")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--memory-requests", type=int, default=1000)
    parser.add_argument("--runtimes", nargs="+", default=[r for r in ("torch", "openvino", "onnxruntime")
                                                          if installed(r)])
    parser.add_argument("--reduced", nargs="*", default=default_reduced(),
                        help="opt-in precisions to measure too, raw and in the service (default: int8, and bf16 "
                             "where the CPU has bf16 units)")
    parser.add_argument("--redis-url", help="the stack's Redis, to count its CPU (default: the stack started here)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    stack = None
    if not args.url:
        stack = Stack.on_synthetic_data(Path(tempfile.mkdtemp(prefix="bench-predict-")),
                                        workers=[Worker("train", "train"), Worker("predict", "predict")])
        stack.start(timeout_s=120)
        args.url, args.data_dir, args.redis_url = stack.url, stack.data_dir, stack.redis_url
    try:
        report = run(args, stack)
    finally:
        if stack:
            stack.stop()
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


def run(args, stack: Stack | None) -> dict:
    client = httpx.Client(base_url=args.url, timeout=300)
    model = train_throwaway(client, args.dataset, args.frames, args.size)
    meta = client.get(f"/models/{model}").json()
    data_dir = args.data_dir / args.dataset if args.data_dir else None
    clips = request_files(data_dir, 8, args.frames)
    bodies = encoded(model, clips)
    cpu = CpuUse(args.url, args.redis_url, local=stack is not None)
    print(f"# model {model}: {args.frames} frames at {args.size} px; torch threads {torch.get_num_threads()}")

    config = client.get(f"/jobs/{meta['job_id']}").json()["request"]
    raw_model = RawModel(config, len(meta["classes"]), clips, args.runtimes, args.reduced)
    raw = raw_model.measure(args.batch_sizes)
    print(f"raw decode of one request's frames: {raw['decode_ms']:.1f} ms")
    for name, batches in [*raw["runtimes"].items(), *((f"openvino-{p}", b) for p, b in raw["reduced"].items())]:
        for b, r in batches.items():
            print(f"raw {name:<14} batch={b:<3} pass={r['ms']:8.1f} ms  clips/s={r['clips_s']:6.2f}")
    best_runtime = max(raw["runtimes"], key=lambda name: RawModel.best(raw, name)["clips_s"])
    best = RawModel.best(raw, best_runtime)
    served = {}
    for _ in range(10):  # the service's runtime, once its predict worker has loaded the model
        client.post("/predict", files=clips[0], data={"wait": "60", "model": model})
        served = next(iter(client.get(f"/models/{model}").json()["inference"]), {})
        if served:
            break
        time.sleep(1)
    service_runtime = served.get("backend", "torch")
    print(f"# the service runs this model on {service_runtime} ({served})")

    measure_service(args.url, bodies, 4, 8)  # warm the path
    service = []
    for c, n in zip(args.concurrency, args.requests):
        s = measure_service(args.url, bodies, c, n, cpu if c == args.concurrency[-1] else None)
        s["raw_clips_s"] = raw_model.around(raw, "runtimes", best_runtime) if c == args.concurrency[-1] \
            else best["clips_s"]
        s["ratio"] = s["clips_s"] / s["raw_clips_s"]
        service.append(s)
        extra = ""
        if c == 1:
            runtime = service_runtime if service_runtime in raw_model.predictors else best_runtime
            s["overhead_ms"] = paired_overhead(raw_model, runtime, args.url, bodies, n)
            extra = f"  p50 overhead over raw {runtime} batch-1 + decode (paired) = {s['overhead_ms']:+.1f} ms"
        print(f"concurrency={c:<3} p50={s['p50_ms']:7.1f} ms p95={s['p95_ms']:7.1f} ms p99={s['p99_ms']:7.1f} ms "
              f"clips/s={s['clips_s']:6.2f} ratio={s['ratio']:.2f}{extra}", flush=True)

    memory = {}
    if args.memory_requests:
        memory["rss_before_mb"] = predict_worker_rss(client)
        measure_service(args.url, bodies, 32, args.memory_requests)
        time.sleep(6)  # the next heartbeat carries the new figure
        memory["rss_after_mb"] = predict_worker_rss(client)
        print(f"predict worker RSS: {memory['rss_before_mb']} MB before, {memory['rss_after_mb']} MB after "
              f"{args.memory_requests} more predictions")
    if stack:
        memory["restart"] = first_after_restart(stack, bodies)
    reduced = {p: measure_reduced(client, args.url, model, bodies, p, raw_model, raw, args.concurrency[-1],
                                  args.requests[-1], cpu) for p in raw["reduced"]}
    c32 = next((s for s in service if s["concurrency"] == 32), service[-1])
    columns = {"fp32": c32["cpu_ms"], **{p: r["service"]["cpu_ms"] for p, r in reduced.items()}}
    print(f"# where a served clip's CPU goes, at c={c32['concurrency']}, from each process's own counters")
    print(cpu_use.table(columns))
    torch_best = RawModel.best(raw, "torch")["clips_s"] if "torch" in raw["runtimes"] else float("nan")
    print(f"raw torch clips/s: {torch_best:.2f}")
    print(f"raw best clips/s: {c32['raw_clips_s']:.2f} ({best_runtime}, around the service run)")
    print(f"service c={c32['concurrency']} clips/s: {c32['clips_s']:.2f}")
    print(f"ratio service/raw_best c={c32['concurrency']}: {c32['ratio']:.2f}", flush=True)
    if "int8" in reduced:
        int8 = reduced["int8"]
        print(f"raw int8 clips/s: {int8['raw_best_clips_s']:.2f}")
        print(f"service int8 c={int8['service']['concurrency']} clips/s: {int8['service']['clips_s']:.2f}")
        print(f"ratio service/raw int8 c={int8['service']['concurrency']}: "
              f"{int8['service']['clips_s'] / int8['raw_best_clips_s']:.2f}", flush=True)
    return {"model": model, "frames": args.frames, "size": args.size, "raw": raw, "service": service,
            "service_runtime": served, "best_runtime": best_runtime, "reduced": reduced, **memory}


def switch_precision(client: httpx.Client, url: str, model: str, body: tuple[bytes, str], precision: str) -> dict:
    """The model switched to `precision`, and predicted on until a worker serves it that way
    (it builds and measures the graph on the first request): how it is served, or {}."""
    client.patch(f"/models/{model}", json={"inference_precision": precision}).raise_for_status()
    for _ in range(120):
        post(url, body)
        served = next((s for s in client.get(f"/models/{model}").json()["inference"]
                       if s.get("precision") == precision), {})
        if served:
            return served
        time.sleep(1)
    return {}


def measure_reduced(client: httpx.Client, url: str, model: str, bodies: list, precision: str, raw_model: RawModel,
                    raw: dict, concurrency: int, requests: int, cpu: CpuUse) -> dict:
    """The service with the model switched to an opt-in precision: speed, and its reported cost."""
    try:
        served = switch_precision(client, url, model, bodies[0], precision)
        measure_service(url, bodies, 4, 8)  # warm the path
        s = measure_service(url, bodies, concurrency, requests, cpu)
    finally:
        client.patch(f"/models/{model}", json={"inference_precision": "fp32"})
    best = raw_model.around(raw, "reduced", precision)
    torch_best = RawModel.best(raw, "torch")["clips_s"] if "torch" in raw["runtimes"] else float("nan")
    print(f"# opt-in {precision}: raw openvino {best:.2f} clips/s ({best / torch_best:.2f}x raw torch); service "
          f"c={concurrency} {s['clips_s']:.2f} clips/s, ratio {s['clips_s'] / best:.2f}, p50 {s['p50_ms']:.0f} ms; "
          f"cost as served: {served.get('cost')}", flush=True)
    return {"raw_best_clips_s": best, "service": s, "served": served}


if __name__ == "__main__":
    main()
