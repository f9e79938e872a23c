"""A model's per-window class probabilities over a long video -> the segments of actions a
person would annotate, and the annotation CSV that POST /datasets ingests.

Windows overlap (say 2 s every 0.5 s), so every instant is seen by several windows and
belongs to none of them. Time is therefore cut into cells of one stride, tiling
[0, duration) (the last cell ends at the video's end), and a cell takes the mean
probabilities of the windows covering its centre: each cell is judged by everything
that saw it. A cell no window covers (a ragged end) takes the nearest window's.

    cells       (n, C) mean of the covering windows
      ↓ smoothing    centred moving mean over `smoothing` cells: a one-window blip is noise
      ↓ threshold    a cell whose best class is under it is background: the model is unsure,
      ↓              and the CSV should leave that stretch unlabelled rather than guess
      ↓ runs         consecutive cells of one label (or of background)
      ↓ min_segment  labelled runs shorter than it are merged away, shortest first, into the
                     neighbour whose label explains their cells best (background scores
                     `threshold`), so a flicker between two long actions joins one of them

Background stretches are never merged away themselves: a short gap is the model saying it
does not know, which `threshold` asked to hear. Torch-free (numpy only): the gateway uses it.
"""
from __future__ import annotations

import csv
import heapq
import io
import math
from bisect import bisect_right
from collections.abc import Sequence

import numpy as np

BACKGROUND = -1
CSV_HEADER = ("video", "label", "start", "end", "user")


def segments(windows: Sequence[tuple[float, float, Sequence[float]]], classes: Sequence[str], duration_s: float,
             stride_s: float, *, smoothing: int = 1, min_segment: float = 0.0, threshold: float = 0.0) -> list[dict]:
    """[{"start", "end", "label", "index" (the class's), "probability"}] sorted by start, labelled segments only;
    times rounded to 3 decimals (cell edges), probability (its label's mean over its cells) to 4.
    windows: (start_s, end_s, probabilities of every class)."""
    if stride_s <= 0:
        raise ValueError(f"stride_s must be > 0, got {stride_s}")
    if smoothing < 1:
        raise ValueError(f"smoothing must be >= 1 cell, got {smoothing}")
    if not windows or duration_s <= 0:
        return []
    starts = np.array([w[0] for w in windows], dtype=float)
    ends = np.array([w[1] for w in windows], dtype=float)
    probs = np.array([w[2] for w in windows], dtype=float)  # (W, C)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise ValueError(f"every window needs {len(classes)} probabilities, got shape {probs.shape}")
    edges = cell_edges(duration_s, stride_s)
    cells = _moving_mean(_cell_probabilities(starts, ends, probs, edges), smoothing)
    best = cells.argmax(1)
    labels = np.where(cells.max(1) >= threshold, best, BACKGROUND)
    runs = _merge_short(_runs(labels), cells, edges, min_segment, threshold)
    return [{"start": round(float(edges[a]), 3), "end": round(float(edges[b]), 3), "label": classes[label],
             "index": label, "probability": round(float(cells[a:b, label].mean()), 4)}
            for label, a, b in runs if label != BACKGROUND]


def cell_edges(duration_s: float, stride_s: float) -> np.ndarray:
    """(n + 1,) edges of the cells tiling [0, duration_s); the last cell may be shorter."""
    # The tolerance keeps 10 s / 0.1 s at 100 cells, not 101 with a float-error sliver.
    n = max(1, math.ceil(duration_s / stride_s - 1e-9))
    edges = np.minimum(np.arange(n + 1) * stride_s, duration_s)
    edges[-1] = duration_s
    return edges


def _cell_probabilities(starts: np.ndarray, ends: np.ndarray, probs: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """(n, C) mean of the windows whose [start, end) holds the cell's centre, nearest window
    where none does. Cell centres are sorted, so each window covers one range of cells: sums
    by a difference array, O(W + n) rather than an (n, W) mask (7200 x 7200 for an hour)."""
    centres = (edges[:-1] + edges[1:]) / 2
    n = len(centres)
    first = np.searchsorted(centres, starts, side="left")  # first centre >= start
    stop = np.searchsorted(centres, ends, side="left")  # first centre >= end: not covered
    sums = np.zeros((n + 1, probs.shape[1]))
    counts = np.zeros(n + 1, dtype=np.int64)
    np.add.at(sums, first, probs)
    np.add.at(sums, stop, -probs)
    np.add.at(counts, first, 1)
    np.add.at(counts, stop, -1)
    sums, counts = np.cumsum(sums, 0)[:n], np.cumsum(counts)[:n]
    cells = np.empty((n, probs.shape[1]))
    covered = counts > 0
    cells[covered] = sums[covered] / counts[covered, None]
    if not covered.all():
        centre = centres[~covered, None]
        distance = np.maximum(np.maximum(starts - centre, centre - ends), 0)  # (uncovered, W)
        cells[~covered] = probs[distance.argmin(1)]
    return cells


def _moving_mean(cells: np.ndarray, width: int) -> np.ndarray:
    """Centred mean over `width` cells (an even width reaches one further back); at the
    edges the mean of the cells that exist, so the first cell is not pulled toward zero."""
    if width <= 1:
        return cells
    n = len(cells)
    total = np.vstack([np.zeros((1, cells.shape[1])), np.cumsum(cells, 0)])
    index = np.arange(n)
    lo = np.clip(index - width // 2, 0, n)
    hi = np.clip(index + (width - 1 - width // 2) + 1, 0, n)
    return (total[hi] - total[lo]) / (hi - lo)[:, None]


def _runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """(label, first cell, end cell exclusive) of every run of one label."""
    bounds = np.flatnonzero(np.diff(labels)) + 1
    cuts = [0, *bounds.tolist(), len(labels)]
    return [(int(labels[a]), a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def _merge_short(runs: list[tuple[int, int, int]], cells: np.ndarray, edges: np.ndarray, min_segment: float,
                 threshold: float) -> list[tuple[int, int, int]]:
    """Labelled runs under min_segment seconds go to their better neighbour, shortest first
    (ties: the earlier). A linked list and a heap of (length, first cell, run, version): an
    hour of noisy cells can start as thousands of runs, and a rescan per merge would be O(n^2)."""
    if min_segment <= 0 or len(runs) < 2:
        return runs
    label = [r[0] for r in runs]
    first = [r[1] for r in runs]
    end = [r[2] for r in runs]
    prev = list(range(-1, len(runs) - 1))
    nxt = [*range(1, len(runs)), -1]
    alive = [True] * len(runs)
    version = [0] * len(runs)

    def length(i: int) -> float:
        return float(edges[end[i]] - edges[first[i]])

    def is_short(i: int) -> bool:
        return label[i] != BACKGROUND and length(i) < min_segment - 1e-9

    heap = [(length(i), first[i], i, 0) for i in range(len(runs)) if is_short(i)]
    heapq.heapify(heap)

    def absorb(keep: int, gone: int) -> None:
        first[keep], end[keep] = min(first[keep], first[gone]), max(end[keep], end[gone])
        alive[gone] = False
        before, after = prev[gone], nxt[gone]
        if before != -1:
            nxt[before] = after
        if after != -1:
            prev[after] = before

    while heap:
        _, _, i, seen = heapq.heappop(heap)
        if not alive[i] or seen != version[i]:
            continue  # merged away or grown since it was queued
        neighbours = [j for j in (prev[i], nxt[i]) if j != -1]
        if not neighbours:
            continue  # the whole video is one short segment: keep it
        fits = [threshold if label[j] == BACKGROUND else float(cells[first[i]:end[i], label[j]].mean())
                for j in neighbours]
        keep = neighbours[int(np.argmax(fits))]  # of equals, the first: the left neighbour
        absorb(keep, i)
        for other in (prev[keep], nxt[keep]):  # the run across the gap i left may now match
            if other != -1 and label[other] == label[keep]:
                absorb(keep, other)
        version[keep] += 1
        if is_short(keep):
            heapq.heappush(heap, (length(keep), first[keep], keep, version[keep]))
    return sorted(((label[i], first[i], end[i]) for i in range(len(runs)) if alive[i]), key=lambda r: r[1])


def frame_labels(segments: Sequence[dict], times: Sequence[float]) -> list[str | None]:
    """The label at each time (segments are [start, end)); None in the background."""
    ordered = sorted(segments, key=lambda s: s["start"])
    starts = [s["start"] for s in ordered]
    labels: list[str | None] = []
    for t in times:
        i = bisect_right(starts, t) - 1
        labels.append(ordered[i]["label"] if i >= 0 and t < ordered[i]["end"] else None)
    return labels


def annotation_csv(segments: Sequence[dict], video: str, user: str) -> str:
    """The generic annotation CSV (video,label,start,end,user), one row per segment, times
    to the millisecond; csv quoting, so a label or video name with a comma survives."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for s in segments:
        writer.writerow((video, s["label"], f"{s['start']:.3f}", f"{s['end']:.3f}", user))
    return buf.getvalue()
