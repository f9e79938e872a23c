"""Timeline throughput: windows per second through the service (POST /timelines) against
the raw runtime on the same windows in the same run (goal >= 0.8), and what annotating one
hour of 30 fps video takes on this machine.

(a) raw, in this process: `window_inputs` over the whole video (decode + sampling: every
    window's arrays, made as the worker makes them, from the job's own plan: its windows,
    frame rate and training-data options), then the model alone on those arrays through
    `Predictor.run` in batches of the worker's batch size (FPAR_PREDICT_MAX_BATCH), on the
    runtime the service reports for the model (GET /models/{id} `inference`), or on each of
    --runtimes, the fastest taken (random weights of the service model's config, as in
    bench_predict: speed does not depend on them). "decode+model" is both, one after the
    other, in one process: what a worker does, without the service around it;
(b) the service: the video uploaded to POST /timelines, the job polled until it ends;
    windows/s over the job's own started_at -> finished_at, and over submit -> end (wall:
    the upload and the queue too). With its own stack, the CPU time of every process of
    the stack (and of their children) and of this process during the job, from /proc, as
    CPU-ms per window per process, with the machine's other load beside it.

Then the ratios, and last these lines:

    raw model windows/s: <x>
    raw decode+model windows/s: <y>
    service windows/s: <z>
    ratio service/raw model: <z/x>
    ratio service/raw decode+model: <z/y>
    one hour of 30 fps video: <minutes> min (service)

(the hour: 3600 s of video at the seconds of video per second the service's job measured,
at the window and stride printed above those lines).

The model: a throwaway 1-epoch `--preset` (egornn-attention) trained through the API on the
synthetic set the stack holds, at --frames/--size (16 frames at 112 px, bench_predict's
defaults), served with FPAR_INFERENCE as the stack has it (auto: the fastest verified
runtime). Before the measured job, a short timeline warms the worker (the model loaded,
compiled and verified).

The video: the synthetic set's clips, every user and action, one after another with still
frames between, each frame upscaled to --video-size (342x256: the ingest's 256 px shorter
side) and held --hold output frames (a clip of 10-18 frames then lasts 1-2 s, as an action
does), with sensor noise, at 30 fps; H.264 at CRF 20 with a key frame every 2 s, about the
bits per pixel of a camera's file. --video uses a recording of your own instead.

    python -m benchmarks.bench_timeline                      # starts its own stack
    python -m benchmarks.bench_timeline --minutes 0.5 --frames 8 --size 64   # a quick check
    python -m benchmarks.bench_timeline --url http://host:8000 --dataset gtea61 --video P01.mp4
"""
from __future__ import annotations

import argparse
import json
import mimetypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np
import torch

from fpar_models import checkpoint
from fpar_models.config import TrainConfig
from fpar_models.data.recordings import codec
from fpar_models.data.synthetic import ACTIONS, USERS, render
from fpar_models.ingest.video import probe
from fpar_models.models import build_model
from fpar_models.serving import Clip
from fpar_models.serving.predictor import Predictor
from fpar_models.serving.runtimes import installed
from fpar_models.timeline.options import TimelineJob, plan_windows
from fpar_models.timeline.sampler import ModelInputs, window_inputs
from launcher import Stack, Worker

FPS = 30
ENDED = ("succeeded", "failed", "cancelled")
POLL_S = 0.5  # a client watching the job: GET /jobs/{id} between these


# -- the video ---------------------------------------------------------------------------

def synthetic_frames(count: int, width: int, height: int, hold: int, gap: int = 15, seed: int = 0):
    """`count` RGB frames: the synthetic clips of every user and action in turn, `gap` still
    frames of the user's table between clips, each picture upscaled and held `hold` frames,
    with fresh noise on every output frame (a camera's sensor: no two frames alike)."""
    rng = np.random.default_rng(seed)
    noise = [rng.normal(0, 2.5, (height, width, 3)).astype(np.float32) for _ in range(7)]
    clips = [(u, a, i) for i in range(3) for u in range(len(USERS)) for a in ACTIONS]
    made = 0
    while True:
        for u, a, i in clips:
            pictures = render(u, a, i, seed).frames
            pictures = [pictures[0]] * max(1, gap // hold) + pictures  # the table before the action
            for picture in pictures:
                up = cv2.resize(np.clip(picture, 0, 255).astype(np.float32), (width, height),
                                interpolation=cv2.INTER_LINEAR)
                for _ in range(hold):
                    yield np.clip(up + noise[made % len(noise)], 0, 255).astype(np.uint8)
                    made += 1
                    if made >= count:
                        return


def encode(path: Path, frames, fps: int = FPS, crf: int = 20, gop: int = 2 * FPS) -> str:
    """H.264 (MPEG-4 part 2 without it) as a camera writes it: `recordings.write_mp4` encodes
    near-losslessly (CRF 8, a key frame every 12), ~7x the bits per pixel of a real file."""
    name = codec()
    with av.open(str(path), "w") as container:
        stream = container.add_stream(name, rate=Fraction(fps))
        stream.pix_fmt = "yuv420p"
        for n, rgb in enumerate(frames):
            if n == 0:
                stream.height, stream.width = rgb.shape[:2]
                if name == "libx264":
                    stream.options = {"crf": str(crf), "preset": "veryfast", "g": str(gop)}
                else:
                    stream.bit_rate, stream.options = 1_500_000, {"g": str(gop)}
            container.mux(stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
        container.mux(stream.encode())
    return f"{name} crf {crf} gop {gop}" if name == "libx264" else f"{name} gop {gop}"


def make_video(path: Path, seconds: float, size: tuple[int, int], hold: int) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return encode(path, synthetic_frames(max(1, round(seconds * FPS)), *size, hold))


# -- the model ---------------------------------------------------------------------------

def train_throwaway(client: httpx.Client, preset: str, dataset: str, frames: int, size: int) -> str:
    """As bench_predict: one epoch of stage 1 through the API."""
    body = {"preset": preset, "dataset": dataset, "pretrained": "none", "frames": frames,
            "image_size": size, "batch_size": 8, "stages": [{"epochs": 1}, None]}
    r = client.post("/train", json=body)
    r.raise_for_status()
    job = wait(client, r.json()["id"], every_s=1)
    if job["status"] != "succeeded":
        raise SystemExit(f"training the throwaway model failed: {job['error']}")
    return job["result"]["model"]


def raw_predictors(config: dict, classes: int, runtimes: list[str], folder: Path) -> dict[str, Predictor]:
    """The service model's config with random weights, on each runtime that serves it here."""
    cfg = TrainConfig.model_validate({**config, "pretrained": "none"})
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint.save_atomic(checkpoint.model_file(build_model(cfg, classes), cfg, [str(i) for i in range(classes)]),
                           folder / "model.pt")
    predictors = {}
    for name in runtimes:
        predictor = Predictor(folder / "model.pt", inference=name)
        if predictor.choice.backend == name:
            predictors[name] = predictor
        else:
            print(f"# raw {name}: not measured ({predictor.choice.reason})")
    return predictors


# -- the service -------------------------------------------------------------------------

def wait(client: httpx.Client, job_id: str, every_s: float = 0.5, polls: list | None = None) -> dict:
    """Poll GET /jobs/{id} until the job ends; each poll's latency into `polls`."""
    while True:
        start = time.perf_counter()
        job = client.get(f"/jobs/{job_id}").json()
        if polls is not None:
            polls.append(time.perf_counter() - start)
        if job["status"] in ENDED:
            return job
        time.sleep(every_s)


def post_timeline(client: httpx.Client, video: Path, model: str, window: float, stride: float, top_k: int) -> str:
    with open(video, "rb") as f:
        kind = mimetypes.guess_type(video.name)[0] or "application/octet-stream"
        r = client.post("/timelines", files={"video": (video.name, f, kind)},
                        data={"model": model, "window": str(window), "stride": str(stride), "top_k": str(top_k)})
    if r.status_code != 202:
        raise SystemExit(f"POST /timelines: {r.status_code} {r.text[:500]}")
    return r.json()["id"]


def served_runtime(client: httpx.Client, model: str, timeout_s: float = 30) -> dict:
    """The runtime the predict worker serves the model on (its heartbeat carries it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        served = next(iter(client.get(f"/models/{model}").json().get("inference") or []), None)
        if served:
            return served
        time.sleep(0.5)
    return {}


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


# -- CPU accounting ----------------------------------------------------------------------

def _stat(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        p = todo.pop()
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                kids = [int(k) for k in (task / "children").read_text().split()]
                found += kids
                todo += kids
        except OSError:
            continue
    return found


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process, its reaped children and its live descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    try:
        f = _stat(pid)
    except OSError:
        return 0.0
    total = sum(int(x) for x in f[11:15])  # utime stime cutime cstime
    for kid in _descendants(pid):
        try:
            total += sum(int(x) for x in _stat(kid)[11:13])
        except OSError:
            pass
    return total / tick


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy so far (every core)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class CpuClock:
    """CPU seconds per stack process (and this one) between start() and stop()."""

    def __init__(self, procs: dict[str, int]):
        self.procs = procs

    def read(self) -> dict[str, float]:
        now = {name: tree_cpu_s(pid) for name, pid in self.procs.items()}
        return {**now, "benchmark (client)": time.process_time(), "_machine": machine_busy_s()}

    def start(self) -> None:
        self.before = self.read()

    def stop(self) -> dict[str, float]:
        after = self.read()
        return {k: after[k] - self.before[k] for k in after}


# -- the measurements --------------------------------------------------------------------

def measure_service(client: httpx.Client, video: Path, model: str, window: float, stride: float, top_k: int,
                    clock: CpuClock | None, profile: Path | None, predict_pid: int | None) -> dict:
    spy = None
    if clock:
        clock.start()
    wall = time.perf_counter()
    job_id = post_timeline(client, video, model, window, stride, top_k)
    uploaded = time.perf_counter() - wall
    if profile and predict_pid:
        profile.mkdir(parents=True, exist_ok=True)
        py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        spy = subprocess.Popen([py_spy, "record", "--nonblocking", "--format", "raw", "-r", "50",
                                "--pid", str(predict_pid), "-o", str(profile / "worker-predict.txt")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    polls = []
    job = wait(client, job_id, every_s=POLL_S, polls=polls)
    wall = time.perf_counter() - wall
    cpu = clock.stop() if clock else None
    if spy:
        spy.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        spy.wait(timeout=60)
    if job["status"] != "succeeded":
        raise SystemExit(f"the timeline job {job['status']}: {job.get('error')}")
    start = time.perf_counter()
    r = client.get(f"/jobs/{job_id}")
    get_ms = 1000 * (time.perf_counter() - start)
    windows = job["progress"]["windows"]
    job_s = _seconds(job["finished_at"]) - _seconds(job["started_at"])
    return {"job_id": job_id, "job": job, "windows": windows, "duration_s": job["result"]["duration_s"],
            "job_s": job_s, "wall_s": wall, "upload_s": uploaded, "queued_s":
            _seconds(job["started_at"]) - _seconds(job["created_at"]), "cpu": cpu,
            "get_job_ms": get_ms, "get_job_kb": len(r.content) / 1024, "polls": len(polls),
            "poll_ms_mean": 1000 * sum(polls) / len(polls), "poll_ms_last": 1000 * polls[-2 if len(polls) > 1 else -1]}


def measure_raw(video: Path, plan: TimelineJob, predictors: dict[str, Predictor], batch: int, top_k: int) -> dict:
    """Every window's arrays (decode + sampling), then each runtime on them in batches."""
    some = next(iter(predictors.values()))
    inputs = ModelInputs.of(some.config)
    spans = [(i, *span) for i, span in enumerate(plan.spans)]
    busy, cpu, start = machine_busy_s(), time.process_time(), time.perf_counter()
    arrays = [a for _, a in window_inputs(video, spans, plan.fps, inputs, plan.data)]
    decode = {"s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}
    decode["other_cores"] = (machine_busy_s() - busy - decode["cpu_s"]) / decode["s"]
    clips = [Clip(a.get("rgb"), a.get("flow"), top_k) for a in arrays]
    batches = [clips[i:i + batch] for i in range(0, len(clips), batch)]
    models = {}
    for name, predictor in predictors.items():
        predictor.run(batches[0])  # warm-up
        busy, cpu, start = machine_busy_s(), time.process_time(), time.perf_counter()
        for b in batches:
            probs, _ = predictor.run(b)
            for p in probs:
                predictor.ranked(p, top_k)
        models[name] = {"s": time.perf_counter() - start, "cpu_s": time.process_time() - cpu}
        models[name]["other_cores"] = (machine_busy_s() - busy - models[name]["cpu_s"]) / models[name]["s"]
    return {"windows": len(arrays), "decode": decode, "models": models}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--url", help="a running stack; default: start one (then the CPU table too)")
    parser.add_argument("--dataset", default="synthetic", help="dataset to train the throwaway model on")
    parser.add_argument("--preset", default="egornn-attention")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--minutes", type=float, default=3,
                        help="length of the test video at 30 fps (the raw pass keeps every window's arrays: "
                             "~0.6 MB each at 16 frames and 112 px)")
    parser.add_argument("--video", type=Path, help="a recording of your own instead of the synthetic one")
    parser.add_argument("--video-size", default="342x256", help="WxH of the synthetic video")
    parser.add_argument("--hold", type=int, default=3, help="output frames per synthetic picture")
    parser.add_argument("--window", type=float, default=2.0, help="seconds per window")
    parser.add_argument("--stride", type=float, default=1.0, help="seconds between windows")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--batch", type=int, default=int(os.environ.get("FPAR_PREDICT_MAX_BATCH", 8)),
                        help="the predict worker's FPAR_PREDICT_MAX_BATCH (set on the stack this starts)")
    parser.add_argument("--predict-workers", type=int, default=1, help="predict workers of the stack this starts")
    parser.add_argument("--runtimes", nargs="+", default=None,
                        help="raw runtimes to measure, the fastest taken (default: the one the service serves "
                             "the model on; 'installed': every installed one)")
    parser.add_argument("--profile", type=Path, help="py-spy the predict worker during the job into this folder")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-timeline-"))
    stack = None
    if not args.url:
        stack = Stack.on_synthetic_data(root, workers=[Worker("train", "train")] + [
            Worker(f"predict{i or ''}", "predict") for i in range(args.predict_workers)],
            env={"FPAR_PREDICT_MAX_BATCH": str(args.batch)})
        stack.start(timeout_s=120)
        args.url = stack.url
    try:
        report = run(args, stack, root)
    finally:
        if stack:
            stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))


def run(args, stack: Stack | None, root: Path) -> dict:
    client = httpx.Client(base_url=args.url, timeout=600)
    width, height = (int(v) for v in args.video_size.lower().split("x"))
    warm_video = root / "videos" / "warm-up.mp4"
    make_video(warm_video, max(8.0, 3 * args.window), (width, height), args.hold)
    if args.video:
        video, encoding = args.video, "as given"
    else:
        video = root / "videos" / "kitchen.mp4"
        start = time.perf_counter()
        encoding = make_video(video, 60 * args.minutes, (width, height), args.hold)
        print(f"# wrote the test video in {time.perf_counter() - start:.1f} s", flush=True)
    info = probe(video)

    model = train_throwaway(client, args.preset, args.dataset, args.frames, args.size)
    meta = client.get(f"/models/{model}").json()
    config = client.get(f"/jobs/{meta['job_id']}").json()["request"]
    warm = wait(client, post_timeline(client, warm_video, model, args.window, args.stride, args.top_k))
    if warm["status"] != "succeeded":
        raise SystemExit(f"the warm-up timeline {warm['status']}: {warm.get('error')}")
    served = served_runtime(client, model)
    backend = served.get("backend", "torch")
    print(f"# model {model}: {args.preset}, {args.frames} frames at {args.size} px, {len(meta['classes'])} classes; "
          f"the service serves it on {backend} (verified {served.get('verified')}, max |dp| "
          f"{served.get('max_abs_diff')}); batch {args.batch}; torch threads {torch.get_num_threads()}")
    print(f"# video: {info.width}x{info.height} at {info.fps:g} fps, {info.duration_s:.1f} s ({info.frames} frames), "
          f"{encoding}, {video.stat().st_size / 2**20:.1f} MB; window {args.window:g} s, stride {args.stride:g} s",
          flush=True)

    clock, predict_pid = None, None
    if stack:
        procs = {name: p.pid for name, p in stack.procs.items()}
        clock = CpuClock(procs)
        predict_pid = procs.get("worker-predict")
    service = measure_service(client, video, model, args.window, args.stride, args.top_k, clock, args.profile,
                              predict_pid)
    plan = TimelineJob.model_validate(service["job"]["request"])

    if args.runtimes is None:
        runtimes = [backend]
    elif args.runtimes == ["installed"]:
        runtimes = [r for r in ("torch", "openvino", "onnxruntime") if installed(r)]
    else:
        runtimes = args.runtimes
    predictors = raw_predictors(config, len(meta["classes"]), runtimes, root / "raw-model")
    raw = measure_raw(video, plan, predictors, args.batch, args.top_k)
    if raw["windows"] != service["windows"]:
        print(f"# WARNING: {raw['windows']} windows raw, {service['windows']} in the service")
    return report(args, raw, service, plan, backend, model)


def report(args, raw: dict, service: dict, plan: TimelineJob, backend: str, model: str) -> dict:
    n, duration = service["windows"], service["duration_s"]
    best = min(raw["models"], key=lambda name: raw["models"][name]["s"])  # the fastest runtime
    decode = raw["decode"]
    rows = []
    for name, m in raw["models"].items():
        rows.append((f"raw model ({name}, batch {args.batch})", m["s"], m["cpu_s"]))
    rows.append(("raw decode + sampling", decode["s"], decode["cpu_s"]))
    m = raw["models"][best]
    rows.append((f"raw decode+sampling+model ({best})", decode["s"] + m["s"], decode["cpu_s"] + m["cpu_s"]))
    stack_cpu = None
    if service["cpu"]:
        stack_cpu = sum(v for k, v in service["cpu"].items() if not k.startswith("_"))
    rows.append(("service (job started -> finished)", service["job_s"], None))
    rows.append(("service (submit -> end, wall)", service["wall_s"], stack_cpu))

    print(f"\n{'':<40} {'windows/s':>9} {'video-s/s':>9} {'ms/window':>9} {'CPU-ms/window':>13} "
          f"{'1 h of video':>12}")
    for label, seconds, cpu in rows:
        rate = n / seconds
        print(f"{label:<40} {rate:>9.2f} {duration / seconds:>9.2f} {1000 * seconds / n:>9.1f} "
              f"{'' if cpu is None else f'{1000 * cpu / n:.1f}':>13} {3600 / (duration / seconds) / 60:>10.1f} m")
    loads = [f"raw decode {decode['other_cores']:.2f}"] + [f"raw {k} {v['other_cores']:.2f}"
                                                            for k, v in raw["models"].items()]
    if service["cpu"]:
        other = service["cpu"]["_machine"] - sum(v for k, v in service["cpu"].items() if not k.startswith("_"))
        loads.append(f"service job {other / service['wall_s']:.2f}")
    print(f"# cores busy with other processes meanwhile (a shared machine: compare only alike): {', '.join(loads)}")
    print(f"# the service's job: queued {service['queued_s']:.2f} s (after a {service['upload_s']:.2f} s upload); "
          f"{service['polls']} polls of GET /jobs/{{id}} (every {POLL_S:g} s): {service['poll_ms_mean']:.1f} ms "
          f"mean, the last before the end {service['poll_ms_last']:.1f} ms; of the finished job "
          f"{service['get_job_ms']:.0f} ms, {service['get_job_kb']:.0f} KB")

    if service["cpu"]:
        cpu = service["cpu"]
        machine = cpu.pop("_machine")
        print(f"\n# CPU during the job (submit -> end, {service['wall_s']:.1f} s wall, {n} windows), from /proc")
        print(f"{'process':<28} {'CPU-s':>7} {'CPU-ms/window':>13} {'cores':>6} {'share':>6}")
        for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
            print(f"{name:<28} {seconds:>7.2f} {1000 * seconds / n:>13.1f} {seconds / service['wall_s']:>6.2f} "
                  f"{100 * seconds / max(stack_cpu, 1e-9):>5.1f}%")
        print(f"{'all of the above':<28} {stack_cpu:>7.2f} {1000 * stack_cpu / n:>13.1f} "
              f"{stack_cpu / service['wall_s']:>6.2f}")
        other = machine - stack_cpu
        print(f"{'other processes (machine)':<28} {other:>7.2f} {'':>13} {other / service['wall_s']:>6.2f}  "
              f"(the machine: {machine / service['wall_s']:.2f} of {os.cpu_count()} cores busy)")
        cpu["_machine"] = machine
        raw_cpu_ms = 1000 * (decode["cpu_s"] + m["cpu_s"]) / n
        print(f"# CPU-ms per window: service {1000 * stack_cpu / n:.1f} against raw decode+model {raw_cpu_ms:.1f} "
              f"(x{stack_cpu * 1000 / n / raw_cpu_ms:.2f})")

    x = n / m["s"]
    y = n / (decode["s"] + m["s"])
    z = n / service["job_s"]
    wall = n / service["wall_s"]
    hour = 3600 / (duration / service["job_s"]) / 60
    print(f"\nratio service/raw model, wall (submit -> end): {wall / x:.2f}; service/raw decode+model, wall: "
          f"{wall / y:.2f}")
    print(f"# one hour at window {plan.options.window:g} s, stride {plan.options.stride:g} s: "
          f"{len(plan_windows(3600, plan.options.window, plan.options.stride))} windows; raw decode+model would "
          f"take {3600 / (duration / (decode['s'] + m['s'])) / 60:.1f} min")
    print(f"raw model windows/s: {x:.2f}")
    print(f"raw decode+model windows/s: {y:.2f}")
    print(f"service windows/s: {z:.2f}")
    print(f"ratio service/raw model: {z / x:.2f}")
    print(f"ratio service/raw decode+model: {z / y:.2f}")
    print(f"one hour of 30 fps video: {hour:.1f} min (service)", flush=True)
    service = {k: v for k, v in service.items() if k != "job"}
    return {"model": model, "preset": args.preset, "frames": args.frames, "size": args.size, "batch": args.batch,
            "backend": backend, "window": plan.options.window, "stride": plan.options.stride, "fps": plan.fps,
            "raw": raw, "service": service, "raw_model_windows_s": x, "raw_decode_model_windows_s": y,
            "service_windows_s": z, "service_wall_windows_s": wall, "hour_min": hour}


if __name__ == "__main__":
    main()
