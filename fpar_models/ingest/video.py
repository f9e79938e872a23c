"""Decoding recordings with PyAV (FFmpeg): what a file holds, and its frames at a constant
rate and size.

Recordings of this field have variable frame rates (phones, head-mounted cameras), so the
frames are resampled to a constant rate, as EPIC-Kitchens did: output frame j is the
decoded frame whose timestamp is nearest to `start + j / fps` (frames are dropped or
repeated, never blended).
A segment [start, end) has round((end - start) * fps) frames, and back-to-back segments
share none. Nearest, not "on screen at": times that a labels file rounds (EPIC-Kitchens
gives hundredths of a second) pick the same frames as the exact ones.

    for rgb in read_frames("P01_01.MP4", 12.5, 17.0, fps=30, shorter_side=256):
        ...  # uint8 (h, w, 3)
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

# timestamps within this many seconds count as equal (pts are rounded to the time base)
_TOL = 1e-4


class VideoError(ValueError):
    """A file that cannot be read as a video; the message names it."""


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    duration_s: float
    fps: float          # the stream's average rate
    frames: int         # as the container says, or estimated from duration and rate
    width: int
    height: int


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path))
    except FileNotFoundError as e:
        raise VideoError(f"{path}: no such file") from e
    except (av.FFmpegError, UnicodeDecodeError) as e:
        raise VideoError(f"{path}: not a readable video ({e})") from e
    except OSError as e:
        raise VideoError(f"{path}: cannot be opened ({e})") from e


def _stream(container: av.container.InputContainer, path: Path) -> av.VideoStream:
    if not container.streams.video:
        raise VideoError(f"{path}: has no video stream")
    return container.streams.video[0]


def _origin(stream: av.VideoStream) -> float:
    """The stream's first timestamp, in seconds: times in this module count from it."""
    return float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0


def probe(path: Path) -> VideoInfo:
    """What the file holds, checked by decoding its first frame (a header alone can lie)."""
    path = Path(path)
    with _open(path) as container:
        stream = _stream(container, path)
        rate = stream.average_rate or stream.guessed_rate
        fps = float(rate) if rate else 0.0
        if stream.duration is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1e6
        else:
            duration = 0.0
        frames = stream.frames or round(duration * fps)
        try:
            first = next(container.decode(stream), None)
        except av.FFmpegError as e:
            raise VideoError(f"{path}: the first frame cannot be decoded ({e})") from e
        if first is None or fps <= 0:
            raise VideoError(f"{path}: has no frames")
        return VideoInfo(path, duration, fps, frames, first.width, first.height)


def scaled_size(width: int, height: int, shorter_side: int | None) -> tuple[int, int]:
    """(width, height) with the shorter side made `shorter_side`, the aspect kept; never
    larger than recorded: upscaling adds no detail, and the flow of upscaled sensor noise
    is blobs that move (measured on the synthetic recordings at 72 -> 256 px: DIS's warp flow
    had a 1.9 px median over the still background, 0.3 px at 72 px)."""
    if shorter_side is None or shorter_side >= min(width, height):
        return width, height
    scale = shorter_side / min(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def read_frames(path: Path, start_s: float | None = None, end_s: float | None = None, *,
                fps: float | None = None, shorter_side: int | None = None,
                keep: Callable[[int], bool] | None = None) -> Iterator[np.ndarray | None]:
    """RGB uint8 (h, w, 3) frames of [start_s, end_s) at a constant `fps` (None: the
    stream's average rate), the shorter side scaled to `shorter_side` (None: as recorded).
    Seeks to the key frame before `start_s` instead of decoding from the beginning.
    `keep(j)` False: output frame j is yielded as None, never converted (a caller that
    needs a few frames of many pays only for decoding the rest)."""
    path = Path(path)
    with _open(path) as container:
        stream = _stream(container, path)
        stream.thread_type = "AUTO"
        rate = fps or float(stream.average_rate or stream.guessed_rate or 0)
        if rate <= 0:
            raise VideoError(f"{path}: the frame rate is unknown; give one")
        origin = _origin(stream)
        start = max(0.0, start_s or 0.0)
        if start > 0:
            try:
                container.seek(int((start + origin) / stream.time_base), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0, stream=stream)  # unseekable: decode from the beginning
        yield from _resample(path, container, stream, origin, start, end_s, rate, shorter_side, keep)


def _resample(path: Path, container, stream, origin: float, start: float, end: float | None,
              rate: float, shorter_side: int | None, keep: Callable[[int], bool] | None
              ) -> Iterator[np.ndarray | None]:
    count = max(0, round((end - start) * rate)) if end is not None else None
    j = 0
    prev = None                  # [frame, its time, its RGB once converted]
    step = 1 / float(stream.average_rate) if stream.average_rate else 1 / rate

    def target() -> float:
        return start + j / rate

    def wanted() -> bool:
        return count is None or j < count

    def rgb(entry: list) -> np.ndarray | None:
        if keep is not None and not keep(j):
            return None
        if entry[2] is None:
            frame = entry[0]
            w, h = scaled_size(frame.width, frame.height, shorter_side)
            down = w * h < frame.width * frame.height
            entry[2] = frame.to_ndarray(format="rgb24", width=w, height=h,
                                        interpolation="AREA" if down else "BILINEAR")
        return entry[2]

    t = start
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            t = float(frame.pts * stream.time_base) - origin
            if prev is not None and t <= prev[1]:
                continue  # a repeated timestamp
            current = [frame, t, None]
            while wanted() and target() <= t:   # the target lies between prev and this frame
                nearest = current if prev is None or t - target() <= target() - prev[1] else prev
                yield rgb(nearest)
                j += 1
            if not wanted():
                return
            prev = current
    except av.FFmpegError as e:
        raise VideoError(f"{path}: decoding failed near {t:.2f} s ({e})") from e
    # past the last frame, up to the video's end: the last frame is the nearest
    while prev is not None and wanted() and target() < prev[1] + step - _TOL:
        yield rgb(prev)
        j += 1
