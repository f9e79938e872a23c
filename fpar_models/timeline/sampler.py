"""A chunk of a timeline's windows as model inputs: the video decoded once, at the training
data's frame rate and size, each window sampled as a training clip of that many frames is
(`frame_indices`, `stack_starts` with the model's sampling) and put through the evaluation
transform, flow computed as the ingest computes it (fpar_models.ingest.flow). Only the
frames some window samples are converted, and each only once, though windows overlap.

    for index, arrays in window_inputs(path, [(0, 0.0, 1.5), (1, 0.75, 2.25)], 12.0, ModelInputs.of(cfg), data):
        ...  # arrays["rgb"]: (T, S, S, 3) uint8; arrays["flow"]: (K, 2L, S, S) uint8

`ahead(items, depth)` runs such an iterator on a thread of its own, so that decoding the
next windows overlaps the model classifying these.
"""
from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from fpar_models.config import TrainConfig
from fpar_models.data.transforms import eval_view, frame_indices, stack_indices, stack_starts
from fpar_models.ingest.flow import FlowEngine, quantise
from fpar_models.ingest.video import read_frames
from fpar_models.timeline.options import TrainingData

T = TypeVar("T")
Span = tuple[int, float, float]  # a window: its index, start and end in seconds


@dataclass(frozen=True)
class ModelInputs:
    """What a model takes, and how one clip of it is sampled."""
    frames: int
    image_size: int
    sampling: str
    rgb: bool
    flow: bool
    stack: int
    stacks: int

    @classmethod
    def of(cls, cfg: TrainConfig) -> ModelInputs:
        return cls(cfg.frames, cfg.image_size, cfg.sampling, cfg.uses_rgb, cfg.uses_flow, cfg.model.stack_size,
                   cfg.model.eval_stacks)

    @property
    def min_frames(self) -> int:
        """The fewest frames a window may hold: the frames the model samples, and one flow
        stack's pairs plus one."""
        return max(self.frames if self.rgb else 1, self.stack + 1 if self.flow else 1)


@dataclass(frozen=True)
class _Window:
    index: int
    first: int               # its first frame, counted in the chunk's frames
    last: int
    rgb: list[int]           # the frames it samples
    stacks: list[list[int]]  # the flow pairs of each stack (pair p: frame p -> p + 1)


def _plan(index: int, first: int, count: int, inputs: ModelInputs) -> _Window:
    rgb = [first + i for i in frame_indices(count, inputs.frames, inputs.sampling)] if inputs.rgb else []
    stacks = []
    if inputs.flow:
        pairs = count - 1
        stacks = [[first + p for p in stack_indices(pairs, inputs.stack, s)]
                  for s in stack_starts(pairs, inputs.stack, inputs.stacks, inputs.sampling)]
    return _Window(index, first, first + count - 1, rgb, stacks)


def window_inputs(path: Path, spans: list[Span], fps: float, inputs: ModelInputs, data: TrainingData
                  ) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
    """Each window's model inputs, in the order of `spans` (sorted by start), as soon as its
    last frame is decoded."""
    origin = spans[0][1]
    windows = deque(_plan(i, round((start - origin) * fps), max(1, round((end - start) * fps)), inputs)
                    for i, start, end in spans)
    rgb_frames = {j for w in windows for j in w.rgb}
    pairs_needed = {p for w in windows for stack in w.stacks for p in stack}
    flow_frames = pairs_needed | {p + 1 for p in pairs_needed}
    engine = FlowEngine(data.flow, bound=data.bound, warp=data.warp) if inputs.flow else None
    views: dict[int, np.ndarray] = {}               # frame -> its evaluation view
    extracted: dict[int, np.ndarray] = {}           # frame -> as extracted, for the flow
    pairs: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # pair -> its x and y views

    def flow_pair(p: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = quantise(engine.pair(extracted[p], extracted[p + 1]).flow, data.bound)
        return tuple(eval_view(Image.fromarray(c), inputs.image_size, "L") for c in (x, y))

    end = max(s[2] for s in spans)
    frames = read_frames(path, origin, end, fps=fps, shorter_side=data.shorter_side,
                         keep=lambda j: j in rgb_frames or j in flow_frames)
    decoded = 0
    for j, frame in enumerate(frames):
        decoded = j + 1
        if frame is not None:
            if j in rgb_frames:
                views[j] = eval_view(Image.fromarray(frame), inputs.image_size)
            if j in flow_frames:
                extracted[j] = frame
                if j - 1 in pairs_needed and j - 1 in extracted:
                    pairs[j - 1] = flow_pair(j - 1)
        while windows and windows[0].last < decoded:
            done = windows.popleft()
            yield done.index, _arrays(done, views, pairs)
            if windows:  # what no later window reads
                for kept in (views, extracted, pairs):
                    for k in [k for k in kept if k < windows[0].first]:
                        del kept[k]
    for w in windows:  # the video ended before its last planned frames: the nearest ones stand in
        if not views and not pairs:
            raise ValueError(f"{path}: no frames decoded after {origin:.2f} s")
        yield w.index, _arrays(w, views, pairs)


def _nearest(found: dict, k: int):
    if k in found:
        return found[k]
    earlier = [i for i in found if i <= k]
    return found[max(earlier) if earlier else min(found)]


def _arrays(w: _Window, views: dict, pairs: dict) -> dict[str, np.ndarray]:
    arrays = {}
    if w.rgb:
        arrays["rgb"] = np.stack([_nearest(views, j) for j in w.rgb])
    if w.stacks:
        arrays["flow"] = np.stack([np.stack([_nearest(pairs, p)[c] for p in stack for c in (0, 1)])
                                   for stack in w.stacks])
    return arrays


def ahead(items: Iterator[T], depth: int) -> Iterator[T]:
    """The items, made by a thread of their own up to `depth` ahead of the caller: decoding
    (PyAV and PIL let go of the GIL) overlaps the model instead of taking turns with it. The
    producer stops when the caller does; its error is raised in the caller."""
    ready: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                ready.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    break
            else:
                put((False, None))
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            put((False, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()  # the video file, from the thread that iterated it

    threading.Thread(target=produce, name="timeline-decode", daemon=True).start()
    try:
        while True:
            more, item = ready.get()
            if not more:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()
