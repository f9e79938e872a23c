"""Shared helpers of the API tests: request bodies, polling with deadlines, frames."""
from __future__ import annotations

import csv
import time

import httpx
import psutil

from fpar_models.data.recordings import write_recording
from launcher import Stack

# small limits so the tests can reach them cheaply
STACK_ENV = {"FPAR_TORCH_THREADS": "1", "FPAR_HEARTBEAT_TIMEOUT_S": "8", "FPAR_MAX_ATTEMPTS": "2",
             "FPAR_PREDICT_TTL_S": "600", "FPAR_MAX_UPLOAD_MB": "2", "FPAR_MAX_FRAMES": "64",
             "FPAR_MAX_UNPACKED_MB": "2", "FPAR_MAX_VIDEO_S": "2400"}
TINY = {"dataset": "synthetic", "pretrained": "none", "image_size": 64, "frames": 4, "batch_size": 6,
        "model": {"mem_size": 64}}


def tiny_train(preset: str = "egornn-attention", epochs: tuple[int, ...] = (1, 1), **extra) -> dict:
    """A training request at test size: one entry in `epochs` per stage of the preset."""
    return {"preset": preset, **TINY, "stages": [{"epochs": e} for e in epochs], **extra}


def wait_for(client: httpx.Client, job_id: str, statuses=("succeeded", "failed", "cancelled"),
             timeout_s: float = 180) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        job = client.get(f"/jobs/{job_id}").json()
        if job["status"] in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job['status']} after {timeout_s} s: {job}")
        time.sleep(0.2)


def until(predicate, timeout_s: float, what: str, every_s: float = 0.25):
    """predicate()'s first true value, polled; an AssertionError naming `what` after the timeout."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError(f"{what} within {timeout_s} s")


def ranks_of(stack: Stack, worker: str = "worker-train") -> list[psutil.Process]:
    """A worker's training ranks: the processes fpar_models.distributed.launch spawned."""
    return [p for p in psutil.Process(stack.procs[worker].pid).children()
            if "spawn_main" in " ".join(p.cmdline())]


def frames_of(stack: Stack, user="S2", action="lift_cup", video="1", count=None) -> list:
    folder = stack.data_dir / "synthetic" / "processed_frames2" / user / action / video / "rgb"
    paths = sorted(folder.glob("*.png"))[:count]
    return [("frames", (p.name, p.read_bytes(), "image/png")) for p in paths]


def assert_nothing_left_running(s: Stack) -> None:
    with httpx.Client(base_url=s.url, timeout=10) as c:
        for job in c.get("/jobs", params={"status": "running", "limit": 500}).json()["jobs"]:
            c.post(f"/jobs/{job['id']}/cancel")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            active = [j["id"] for status in ("running", "queued")
                      for j in c.get("/jobs", params={"status": status}).json()["jobs"]]
            if not active:
                return
            time.sleep(0.5)
        raise AssertionError(f"jobs still active when the suite ended: {active}")


def write_incoming(stack: Stack, name: str, per_user: dict[str, list[str]], fps: float = 12) -> str:
    """Recordings to ingest, in `incoming/<name>` of the data directory: one mp4 per user of
    the synthetic clips (action, video 1 of each) one after another, and a generic CSV
    `video,label,start,end,user` (seconds) naming each clip. Returns the source folder, as
    POST /datasets takes it."""
    source = f"incoming/{name}"
    root = stack.data_dir / source
    root.mkdir(parents=True, exist_ok=True)
    with open(root / "labels.csv", "w", newline="") as f:
        rows = csv.writer(f)
        rows.writerow(["video", "label", "start", "end", "user"])
        for user, actions in per_user.items():
            rec = write_recording(root / f"{user}.mp4", [(user, a, 0) for a in actions], fps=fps)
            rows.writerows([rec.path.name, c.action, f"{c.start_s:.3f}", f"{c.end_s:.3f}", user] for c in rec.clips)
    return source
