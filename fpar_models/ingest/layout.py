"""One video's frames, flow and motion maps written as GTEA61's files (`gtea61.py` reads
them): 1-based numbers, 4 digits for frames and maps, 5 for flow; flow k is frames
k -> k+1, so there are N-1 of each component; map i comes from the flow into frame i, so
frame 1 has none (as in many of GTEA61's videos; the loader uses the next map).

Streaming: two frames are held at a time, whatever the video's length.
"""
from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR
from fpar_models.ingest.flow import FlowEngine, motion_map, quantise


class Cancelled(Exception):
    """should_stop() turned true: the video is left half written, for the caller to clear."""


@dataclass(frozen=True)
class VideoDirs:
    rgb: Path
    mmaps: Path
    flow_x: Path
    flow_y: Path

    @classmethod
    def of(cls, root: Path, user: str, label: str, name: str) -> VideoDirs:
        video = Path(root) / RGB_DIR / user / label / name
        rel = Path(user, label, name)
        return cls(video / "rgb", video / "mmaps", Path(root) / FLOW_DIRS[0] / rel, Path(root) / FLOW_DIRS[1] / rel)

    def all(self) -> tuple[Path, ...]:
        return self.rgb, self.mmaps, self.flow_x, self.flow_y

    def clear(self) -> None:
        """Remove whatever an earlier (interrupted) attempt wrote for this video."""
        for folder in (self.rgb.parent, self.flow_x, self.flow_y):
            shutil.rmtree(folder, ignore_errors=True)


def _png(path: Path, image: np.ndarray) -> None:
    # OpenCV's PNG writer (zlib level 1) is about 8x faster than PIL's (level 6) on a 340x256
    # frame, for a file a fifth larger: at 30 frames a second of video, the writes count
    if not cv2.imwrite(str(path), image):
        raise OSError(f"{path}: could not be written")


def write_video(frames: Iterable[np.ndarray], dirs: VideoDirs, *, engine: FlowEngine | None, maps: bool,
                should_stop: Callable[[], bool] = lambda: False) -> int:
    """Write RGB uint8 frames, and with an engine their flow, and motion maps when asked;
    returns the number of frames written. Motion maps without an engine use a default one
    (DIS, warp) whose flow is not written. Raises Cancelled between frames once should_stop()."""
    flow_engine = engine or (FlowEngine() if maps else None)
    for folder, wanted in zip(dirs.all(), (True, maps, engine is not None, engine is not None)):
        if wanted:
            folder.mkdir(parents=True, exist_ok=True)
    count, prev = 0, None
    for rgb in frames:
        if should_stop():
            raise Cancelled(f"{dirs.rgb.parent}: stopped after {count} frames")
        count += 1
        _png(dirs.rgb / f"rgb{count:04d}.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        if prev is not None and flow_engine is not None:
            flow = flow_engine.pair(prev, rgb).flow
            if engine is not None:
                x, y = quantise(flow, engine.bound)
                _png(dirs.flow_x / f"flow_x_{count - 1:05d}.png", x)
                _png(dirs.flow_y / f"flow_y_{count - 1:05d}.png", y)
            if maps:
                _png(dirs.mmaps / f"map{count:04d}.png", motion_map(flow))
        prev = rgb
    return count
