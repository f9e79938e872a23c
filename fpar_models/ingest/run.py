"""The work of an ingest, one video folder at a time, on the data directory's disk:

    DATA/.ingest/<job>/<name>/...        the dataset being written (hidden: /train never sees it)
    DATA/.ingest/<job>/items/<i>.json    what video i came to (frames, or why it was skipped)
    DATA/.uploads/<job>/                 an uploaded archive, unpacked (removed when the job ends)
    DATA/<name>/                         the dataset, moved here in one rename once every video is in

Each video folder is rewritten from scratch when its work starts, so a worker that died
half-way leaves nothing a rerun would trust; a folder counts once its item file exists.
Torch-free and Redis-free: the worker task decides who does which item.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import av
import cv2
import numpy as np

from fpar_models.files import write_json_atomic
from fpar_models.ingest.flow import FlowEngine
from fpar_models.ingest.layout import VideoDirs, write_video
from fpar_models.ingest.options import IngestItem, IngestJob
from fpar_models.ingest.plan import named
from fpar_models.ingest.video import VideoError, read_frames

STATE, UPLOADS = ".ingest", ".uploads"
MANIFEST = "manifest.json"


class Workspace:
    """Where one ingest job writes, under the data directory."""

    def __init__(self, data_dir: Path, job_id: str, job: IngestJob):
        self.data_dir, self.job_id, self.job = Path(data_dir), job_id, job
        self.state = self.data_dir / STATE / job_id
        self.partial = self.state / job.request.name
        self.items = self.state / "items"
        self.dest = self.data_dir / job.request.name

    @property
    def source(self) -> Path:
        return self.data_dir / self.job.source_dir

    def ingest(self, item: IngestItem, should_stop: Callable[[], bool] = lambda: False, worker: str = "") -> dict:
        """Write one video folder; returns (and records) what it came to. A video that
        fails to decode raises VideoError, or with on_error 'skip' is recorded as skipped."""
        options = self.job.request.options()
        dirs = VideoDirs.of(self.partial, item.user, item.label, item.folder)
        dirs.clear()
        frames = read_frames(self.source / item.video, item.start, item.end, fps=options.fps,
                             shorter_side=options.shorter_side)
        engine = FlowEngine(options.flow, bound=options.bound, warp=options.warp)
        try:
            with named(self.source, item.video):
                count = write_video(frames, dirs, engine=engine, maps=options.maps, should_stop=should_stop)
            if count < 2:
                raise VideoError(f"{item.video}: {item.start:.2f}-{item.end:.2f} s decoded to {count} frame(s)")
            outcome = {"index": item.index, "folder": item.path, "frames": count, "worker": worker}
        except VideoError as e:
            if self.job.request.on_error != "skip":
                raise
            dirs.clear()
            outcome = {"index": item.index, "folder": None, "skipped": str(e), "worker": worker}
        write_json_atomic(outcome, self.items / f"{item.index}.json")
        return outcome

    def outcomes(self) -> dict[int, dict]:
        found = {}
        for path in self.items.glob("*.json") if self.items.is_dir() else []:
            outcome = json.loads(path.read_text())
            found[outcome["index"]] = outcome
        return found

    def publish(self) -> dict:
        """Write the manifest and move the dataset into place: it appears whole or not at
        all. Idempotent: a rerun after a crash between the move and the job's end finds it
        published (the result is read back from its manifest). Returns the job's result."""
        manifest = self._published()
        if manifest is None:
            outcomes = self.outcomes()
            if len(outcomes) < len(self.job.items):
                raise RuntimeError(f"{len(self.job.items) - len(outcomes)} videos are not ingested yet")
            if not any(o.get("folder") for o in outcomes.values()):
                raise VideoError("no video could be ingested: " + "; ".join(o["skipped"] for o in outcomes.values()))
            if self.dest.exists():
                raise FileExistsError(f"{self.dest}: a dataset of this name appeared meanwhile")
            manifest = self.manifest(outcomes)
            write_json_atomic(manifest, self.partial / MANIFEST)
            os.rename(self.partial, self.dest)
        videos, skipped = manifest["videos"], manifest["skipped"]
        return {"dataset": self.job.request.name, "videos": len(videos), "skipped": len(skipped),
                "frames": sum(v["frames"] for v in videos),
                "workers": dict(Counter(v["worker"] for v in videos + skipped))}

    def _published(self) -> dict | None:
        """The manifest of this job's dataset, once it is in place."""
        try:
            manifest = json.loads((self.dest / MANIFEST).read_text())
        except (OSError, ValueError):
            return None
        return manifest if manifest.get("job") == self.job_id else None

    def manifest(self, outcomes: dict[int, dict]) -> dict:
        request = self.job.request
        videos, skipped = [], []
        for item in self.job.items:
            outcome = outcomes[item.index]
            source = {"file": item.video, "start": round(item.start, 3), "end": round(item.end, 3)}
            if outcome.get("folder"):
                videos.append({"folder": item.path, **source, "frames": outcome["frames"], "worker": outcome["worker"]})
            else:
                skipped.append({**source, "error": outcome["skipped"], "worker": outcome["worker"]})
        return {"name": request.name, "job": self.job_id, "created_at": time.time(),
                "source": None if self.job.uploaded else self.job.source_dir, "uploaded": self.job.uploaded,
                "labels": request.labels, "format": request.format, "label_from": request.label_from,
                "options": request.options().model_dump(),
                "tools": {"opencv": cv2.__version__, "pyav": av.__version__, "ffmpeg": _ffmpeg(),
                          "numpy": np.__version__},
                "videos": videos, "skipped": skipped}

    def discard(self) -> None:
        """Remove what the job wrote and was given, except a published dataset."""
        shutil.rmtree(self.state, ignore_errors=True)
        if self.job.uploaded:
            shutil.rmtree(self.data_dir / UPLOADS / self.job_id, ignore_errors=True)


def _ffmpeg() -> str:
    try:
        return ".".join(str(v) for v in av.library_versions["libavcodec"])
    except (AttributeError, KeyError):
        return "unknown"
