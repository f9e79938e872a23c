"""What a timeline is asked for and what it will do: one model for the API, the worker and
the result. A timeline slides a window over a long video, has the model classify each
window as it classifies a clip, and turns the windows into segments of actions.

A window's frames are made as the model's training frames were: the training data's
frame rate, frame size and flow (TrainingData, kept on the model when it is registered),
so a window of an untrimmed video looks to the model like a clip it was trained on.
"""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from fpar_models.data.gtea61 import DatasetError, scan

SPOOL = ".timelines"  # uploads, under the data directory: <job id>/<file name>
CHUNK_WINDOWS = 32  # windows a worker takes at a time: short enough that queued predictions get their turn


def spool(data_dir: Path, job_id: str) -> Path:
    """Where a timeline's upload lies (the gateway writes it, the workers read it)."""
    return Path(data_dir) / upload_prefix(job_id)


def upload_prefix(job_id: str) -> str:
    """The upload's folder, relative to the data folder (a key prefix of the data store)."""
    return f"{SPOOL}/{job_id}/"


class TrainingData(BaseModel):
    """What a model's training videos were like: how long (a timeline's default window) and
    how their frames and flow were extracted (a timeline's windows are made the same way)."""
    clip_frames: int = Field(ge=1, description="median frames per training video")
    fps: float | None = Field(None, description="the frame rate they were extracted at (an ingested dataset's "
                              "manifest says); null: unknown, taken as the recording's own")
    shorter_side: int | None = Field(256, description="the frames' shorter side, as extracted")
    flow: Literal["dis", "tvl1", "farneback"] = "dis"
    bound: float = 20
    warp: bool = True
    source: Literal["manifest", "assumed"] = Field("assumed", description="read from the dataset's manifest, "
                                                   "or the ingest's defaults (a dataset copied in by hand)")

    @classmethod
    def of(cls, root: Path, users: list[str]) -> TrainingData | None:
        """The dataset's training videos (those of `users`) as they lie on disk; None when
        the dataset is not at hand."""
        try:
            videos = scan(Path(root), users)
        except (DatasetError, OSError):
            return None
        if not videos:
            return None
        frames = round(statistics.median(len(v.frames) for v in videos))
        try:
            manifest = json.loads((Path(root) / "manifest.json").read_text())
        except (OSError, ValueError):
            return cls(clip_frames=frames)
        options = manifest.get("options", {})
        fps = options.get("fps")
        if fps is None:  # resampled at each recording's own rate: the rate its folders came to
            rates = [v["frames"] / (v["end"] - v["start"]) for v in manifest.get("videos", []) if v["end"] > v["start"]]
            fps = round(statistics.median(rates), 3) if rates else None
        known = {k: options[k] for k in ("shorter_side", "flow", "bound", "warp") if k in options}
        return cls(clip_frames=frames, fps=fps, source="manifest", **known)


class SegmentOptions(BaseModel):
    """How windows become segments (fpar_models.timeline.segments)."""
    model_config = ConfigDict(extra="forbid")
    smoothing: int = Field(1, ge=1, le=101, description="strides averaged (a centred moving mean) before each "
                           "point takes its most probable class; 1: none")
    min_segment: float = Field(0, ge=0, le=3600, description="seconds: shorter segments are merged into the "
                               "neighbour that fits them better")
    threshold: float = Field(0, ge=0, le=1, description="where the top class's probability is below this, "
                             "the stretch is left unlabelled (background, not in the segments)")


class TimelineOptions(SegmentOptions):
    """`POST /timelines`: the model and how to slide over the video."""
    model: str | None = Field(None, description="model id; default: the newest")
    window: float | None = Field(None, gt=0, le=600, description="seconds; default: the typical length of the "
                                 "model's training clips")
    stride: float | None = Field(None, gt=0, le=600, description="seconds between window starts; default: "
                                 "half the window")
    top_k: int = Field(5, ge=1, le=100, description="classes listed per window")


class TimelineRequest(TimelineOptions):
    source: str | None = Field(None, description="a video file under the data directory (or upload `video`)")


class TimelineJob(BaseModel):
    """A timeline job's `request`: what was asked, resolved (model, window, stride), the
    video (relative to the data directory) and how its windows are made."""
    options: TimelineOptions
    video: str = Field(description="the video, relative to the data directory")
    name: str = Field(description="the video's file name: the annotation CSV's `video` column")
    uploaded: bool = Field(False, description="the video was uploaded; removed when the job ends")
    duration_s: float
    fps: float = Field(description="frames per second the windows are sampled at")
    data: TrainingData
    windows: int
    chunk: int = CHUNK_WINDOWS

    @property
    def spans(self) -> list[tuple[float, float]]:
        return plan_windows(self.duration_s, self.options.window, self.options.stride)

    @property
    def chunks(self) -> int:
        return math.ceil(self.windows / self.chunk)

    def chunk_windows(self, chunk: int) -> range:
        return range(chunk * self.chunk, min(self.windows, (chunk + 1) * self.chunk))


def plan_windows(duration_s: float, window_s: float, stride_s: float) -> list[tuple[float, float]]:
    """Windows [start, end) every stride over the video; one more ends at its end when the
    strides leave a tail uncovered; a video shorter than a window is one window."""
    if duration_s <= window_s:
        return [(0.0, round(duration_s, 6))]
    count = int((duration_s - window_s) / stride_s + 1e-9) + 1
    spans = [(round(i * stride_s, 6), round(i * stride_s + window_s, 6)) for i in range(count)]
    if spans[-1][1] < duration_s - 1e-6:
        spans.append((round(duration_s - window_s, 6), round(duration_s, 6)))
    return spans
