"""Ingest speed per flow method: seconds of video turned into the training layout per
CPU-second by `write_video` (decode, flow, homography and warp, second flow pass, motion
maps, PNG writes), against the bare OpenCV flow calls on the same frames in the same run,
with the ratio between the two (the overhead around the flow: goal >= 0.8), and what a
minute of 30 fps video costs. CPU time counts every thread of the process, so "CPU use"
(CPU-seconds per wall-second) says how many cores the run kept busy.

The bare calls are the ones the job cannot avoid: per frame pair the flow, and with warp
flow the second pass on the warped frame (made beforehand, outside the timing).

The video: a textured scene panning 2 px right and 1 px down per frame with an object that
moves against it, 30 fps, written by fpar_models.data.recordings.

    python -m benchmarks.bench_ingest [--size 256] [--seconds 4] [--methods dis tvl1 farneback]
                                      [--no-warp] [--threads N] [--json OUT]
                                      [--service [--videos 4] [--workers 2]]

With --service it also runs the real thing: a stack (Redis, gateway, `--workers` ingest
workers with FPAR_INGEST_THREADS=1, one per core) ingesting `--videos` copies of the video
as one POST /datasets job per method, and divides the seconds of video by the CPU-seconds
of every process of the stack (workers, gateway, Redis) during the job. It prints that
against the bare flow calls measured single-threaded in this process (the job's share of
its CPU that is flow), and the CPU use (CPU-seconds per wall-second: 2 = both cores busy).
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import tempfile
import time
from pathlib import Path

import cv2

from benchmarks.cpu_use import process_cpu_s
from fpar_models.data.recordings import moving_square
from fpar_models.ingest.flow import FLOW_METHODS, FlowEngine, grey
from fpar_models.ingest.layout import VideoDirs, write_video
from fpar_models.ingest.video import read_frames

FPS = 30
DEFAULT_SIDE = 256


def clock(fn) -> tuple[float, float]:
    """(CPU seconds of the whole process, wall seconds) that fn takes."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - cpu, time.perf_counter() - wall


def bench(video: Path, method: str, warp: bool, work: Path, seconds: float) -> dict:
    frames = list(read_frames(video))
    greys = [grey(f) for f in frames]
    engine = FlowEngine(method, warp=warp)
    # the second pass's input, made beforehand: the bare calls are exactly the flow calls of the job
    seconds_in = []
    for a, b, ga, gb in zip(frames, frames[1:], greys, greys[1:]):
        h = engine.pair(a, b).homography if warp else None
        seconds_in.append(None if h is None else engine.warped(ga, gb, h))

    def bare():
        for a, b, w in zip(greys, greys[1:], seconds_in):
            engine.calc(a, b)
            if w is not None:
                engine.calc(a, w)

    def decode():
        for _ in read_frames(video):
            pass

    def job():
        dirs = VideoDirs.of(work, "u1", method, f"{time.monotonic_ns()}")
        write_video(read_frames(video), dirs, engine=FlowEngine(method, warp=warp), maps=True)

    bare_cpu, bare_wall = clock(bare)
    decode_cpu, _ = clock(decode)
    job_cpu, job_wall = clock(job)
    return {"method": method, "warp": warp, "frames": len(frames), "seconds": seconds,
            "bare_video_s_per_cpu_s": seconds / bare_cpu, "job_video_s_per_cpu_s": seconds / job_cpu,
            "ratio": bare_cpu / job_cpu, "decode_share": decode_cpu / job_cpu,
            "bare_cpu_use": bare_cpu / bare_wall, "job_cpu_use": job_cpu / job_wall,
            "cpu_min_per_video_min": job_cpu / seconds, "wall_min_per_video_min": job_wall / seconds}


def service(video: Path, methods: list[str], warp: bool, videos: int, workers: int, seconds: float,
            height: int) -> list[dict]:
    """Each method as one ingest job of `videos` copies of the video through a real stack."""
    import httpx

    from launcher import Stack, Worker, free_port

    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    source = root / "data" / "incoming" / "bench"
    for i in range(videos):
        (source / f"clip{i}").mkdir(parents=True)
        shutil.copyfile(video, source / f"clip{i}" / "video.mp4")
    stack = Stack(root / "data", root / "models", port=free_port(), run_dir=root / "run", log_dir=root / "logs",
                  workers=[Worker(f"ingest{i}", "ingest") for i in range(workers)],
                  env={"FPAR_INGEST_THREADS": "1"})
    rows = []
    try:
        stack.start(timeout_s=120)
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            for method in methods:
                pids = [p.pid for p in stack.procs.values()]
                before, wall = sum(process_cpu_s(p) for p in pids), time.perf_counter()
                r = client.post("/datasets", json={"name": f"bench-{method}", "source": "incoming/bench",
                                                   "format": "folders", "flow": method, "warp": warp,
                                                   "shorter_side": height})
                r.raise_for_status()
                job_id = r.json()["id"]
                while (job := client.get(f"/jobs/{job_id}").json())["status"] in ("queued", "running"):
                    time.sleep(0.05)
                wall = time.perf_counter() - wall
                cpu = sum(process_cpu_s(p) for p in pids) - before
                if job["status"] != "succeeded":
                    raise SystemExit(f"{method}: the ingest job {job['status']}: {job.get('error')}")
                total = seconds * videos
                rows.append({"method": method, "videos": videos, "workers": workers, "cpu_s": cpu, "wall_s": wall,
                             "video_s_per_cpu_s": total / cpu, "cpu_use": cpu / wall,
                             "written_by": job["result"]["workers"]})
    finally:
        stack.stop()
        shutil.rmtree(root, ignore_errors=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size", type=int, default=DEFAULT_SIDE, help="the frames' shorter side (4:3 frames)")
    parser.add_argument("--seconds", type=float, default=4, help="length of the test video at 30 fps")
    parser.add_argument("--methods", nargs="+", choices=FLOW_METHODS, default=list(FLOW_METHODS))
    parser.add_argument("--no-warp", action="store_true", help="plain flow (one pass per pair)")
    parser.add_argument("--threads", type=int, default=None,
                        help="cv2.setNumThreads (default: OpenCV's, all cores); 1 = one process per core")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--service", action="store_true", help="also ingest through a real stack (see above)")
    parser.add_argument("--videos", type=int, default=4, help="--service: copies of the video in the job")
    parser.add_argument("--workers", type=int, default=2, help="--service: ingest worker processes")
    args = parser.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)
    height = args.size - args.size % 2
    width = round(height * 4 / 3 / 2) * 2
    frames = max(2, round(args.seconds * FPS))
    print(f"# opencv={cv2.__version__} threads={cv2.getNumThreads()} cpu={platform.processor() or platform.machine()}"
          f" size={width}x{height} frames={frames} ({frames / FPS:g} s at {FPS} fps) warp={not args.no_warp}")
    scale = (DEFAULT_SIDE / height) ** 2
    note = "" if height == DEFAULT_SIDE else f" (x{scale:.2f} by pixels at {DEFAULT_SIDE} px)"
    print(f"{'method':<10} {'bare video-s/CPU-s':>19} {'job video-s/CPU-s':>18} {'ratio':>6} {'decode':>7} "
          f"{'CPU use':>8} {'CPU-min per min of video' + note:>28}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "pan.mp4"
        square = height // 4
        moving_square(video, frames, velocity=(-2, -1), pan=(2, 1), size=(width, height), square=square, fps=FPS)
        for method in args.methods:
            row = bench(video, method, not args.no_warp, Path(tmp) / "out", frames / FPS)
            row["size"] = [width, height]
            rows.append(row)
            cost = row["cpu_min_per_video_min"] * (scale if note else 1)
            print(f"{method:<10} {row['bare_video_s_per_cpu_s']:>19.3f} {row['job_video_s_per_cpu_s']:>18.3f} "
                  f"{row['ratio']:>5.2f}x {100 * row['decode_share']:>6.1f}% {row['job_cpu_use']:>8.2f} "
                  f"{cost:>28.2f}", flush=True)
        if args.service:
            cv2.setNumThreads(1)  # the bare calls as one ingest worker runs them
            print(f"\n# the service: one POST /datasets of {args.videos} videos per method, {args.workers} ingest "
                  "workers (FPAR_INGEST_THREADS=1); CPU of every process of the stack")
            print(f"{'method':<10} {'bare flow':>10} {'in-process':>11} {'service':>8} {'/in-process':>12} "
                  f"{'/bare flow':>11} {'CPU use':>8} {'wall s':>7}  videos written by   (video-s per CPU-s)")
            for row in service(video, args.methods, not args.no_warp, args.videos, args.workers, frames / FPS,
                               height):
                bare = bench(video, row["method"], not args.no_warp, Path(tmp) / "out1", frames / FPS)
                row["bare_1thread_video_s_per_cpu_s"] = bare["bare_video_s_per_cpu_s"]
                row["in_process_1thread_video_s_per_cpu_s"] = bare["job_video_s_per_cpu_s"]
                row["ratio_to_in_process"] = row["video_s_per_cpu_s"] / bare["job_video_s_per_cpu_s"]
                row["ratio_to_bare_flow"] = row["video_s_per_cpu_s"] / bare["bare_video_s_per_cpu_s"]
                rows.append({"service": row})
                print(f"{row['method']:<10} {bare['bare_video_s_per_cpu_s']:>10.3f} "
                      f"{bare['job_video_s_per_cpu_s']:>11.3f} "
                      f"{row['video_s_per_cpu_s']:>8.3f} {row['ratio_to_in_process']:>11.2f}x "
                      f"{row['ratio_to_bare_flow']:>10.2f}x {row['cpu_use']:>8.2f} {row['wall_s']:>7.1f}  "
                      f"{sorted(row['written_by'].values())}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
