"""A timeline's windows: where they fall, how long the training clips were, and that a
window of an untrimmed recording reaches the model exactly as the same stretch ingested
into the training layout and read by the loader would (frames and warp flow alike)."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from fpar_models.data import synthetic
from fpar_models.data.dataset import ClipDataset
from fpar_models.data.gtea61 import scan
from fpar_models.data.recordings import write_recording
from fpar_models.ingest.flow import FlowEngine
from fpar_models.ingest.layout import VideoDirs, write_video
from fpar_models.ingest.video import read_frames
from fpar_models.timeline.options import TrainingData, plan_windows
from fpar_models.timeline.sampler import ModelInputs, ahead, window_inputs


def test_windows_tile_the_video_and_the_last_one_ends_at_its_end():
    assert plan_windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert plan_windows(9, 4, 2) == [(0, 4), (2, 6), (4, 8), (5, 9)]  # the tail gets a window of its own
    assert plan_windows(3, 4, 2) == [(0, 3)]                           # shorter than a window: the whole of it
    assert plan_windows(1.2, 0.4, 0.4) == [(0, 0.4), (0.4, 0.8), (0.8, 1.2)]


def test_the_training_clips_length_comes_from_the_dataset_and_its_manifest(tmp_path):
    synthetic.generate(tmp_path / "copied", videos_per_class=1)
    copied = TrainingData.of(tmp_path / "copied", ["S1", "S3"])
    lengths = sorted(len(v.frames) for v in scan(tmp_path / "copied", ["S1", "S3"]))
    assert copied.source == "assumed" and copied.fps is None and copied.clip_frames == round(np.median(lengths))
    (tmp_path / "copied" / "manifest.json").write_text(json.dumps({
        "options": {"fps": None, "shorter_side": 128, "flow": "tvl1", "bound": 25, "warp": False},
        "videos": [{"frames": 30, "start": 0, "end": 2.0}, {"frames": 45, "start": 5, "end": 8.0}]}))
    ingested = TrainingData.of(tmp_path / "copied", ["S1", "S3"])
    assert ingested.source == "manifest" and ingested.fps == 15  # each recording's own rate: 30 / 2 s, 45 / 3 s
    assert (ingested.shorter_side, ingested.flow, ingested.bound, ingested.warp) == (128, "tvl1", 25, False)
    assert TrainingData.of(tmp_path / "nothing", ["S1"]) is None


@pytest.mark.parametrize("sampling", ["reference", "centre"])
def test_a_window_is_what_the_loader_reads_from_the_same_stretch_ingested(tmp_path, sampling):
    rec = write_recording(tmp_path / "kitchen.mp4", [("S2", "open_box", 0), ("S2", "lift_cup", 0)], fps=12,
                          pan=(1, 0))
    clip = rec.clips[1]
    data = TrainingData(clip_frames=clip.frames, fps=12, shorter_side=48, flow="dis", bound=20, warp=True)
    inputs = ModelInputs(frames=4, image_size=32, sampling=sampling, rgb=True, flow=True, stack=3, stacks=2)
    # the stretch ingested as the ingest writes it, then read as validation reads it
    frames = read_frames(rec.path, clip.start_s, clip.end_s, fps=12, shorter_side=48)
    write_video(frames, VideoDirs.of(tmp_path / "ingested", "S2", "lift_cup", "1"),
                engine=FlowEngine("dis", bound=20, warp=True), maps=False)
    video, = scan(tmp_path / "ingested", ["S2"], flow=True)
    item = ClipDataset([video], image_size=32, train=False, frames=4, flow_stack=3, eval_stacks=2,
                       sampling=sampling)[0]
    (index, arrays), = window_inputs(rec.path, [(7, clip.start_s, clip.end_s)], 12, inputs, data)
    assert index == 7
    assert np.array_equal(arrays["rgb"], item["rgb"].permute(0, 2, 3, 1).numpy())
    assert arrays["flow"].shape == (2, 6, 32, 32) and np.array_equal(arrays["flow"], item["flow"].numpy())


def test_overlapping_windows_come_in_order_each_from_its_own_frames(tmp_path):
    rec = write_recording(tmp_path / "kitchen.mp4", [("S1", "open_box", 0), ("S1", "lift_ball", 0)], fps=12)
    data = TrainingData(clip_frames=12, fps=12, shorter_side=None)
    inputs = ModelInputs(frames=4, image_size=32, sampling="reference", rgb=True, flow=False, stack=5, stacks=1)
    spans = [(i, s, e) for i, (s, e) in enumerate(plan_windows(rec.duration_s, 1.0, 0.5))]
    got = dict(window_inputs(rec.path, spans, 12, inputs, data))
    assert list(got) == [i for i, _, _ in spans]
    for i, start, end in spans[::3]:  # each window alone gives the same arrays
        (_, alone), = window_inputs(rec.path, [(i, start, end)], 12, inputs, data)
        assert np.array_equal(alone["rgb"], got[i]["rgb"]), i
    assert not np.array_equal(got[0]["rgb"], got[len(spans) - 1]["rgb"])


def test_ahead_keeps_the_order_raises_the_producer_s_error_and_stops_with_its_caller():
    assert list(ahead(iter(range(50)), 4)) == list(range(50))

    def broken():
        yield 1
        raise ValueError("decoding failed near 3.00 s")
    got = ahead(broken(), 2)
    assert next(got) == 1
    with pytest.raises(ValueError, match="near 3.00 s"):
        next(got)

    made, closed = [], []

    def endless():
        try:
            for i in range(10_000):
                made.append(i)
                yield i
        finally:
            closed.append(True)
    items = ahead(endless(), 2)
    assert [next(items) for _ in range(3)] == [0, 1, 2]
    items.close()  # the caller stops: the producer stops soon after, and closes its source
    deadline = time.monotonic() + 2
    while not closed and time.monotonic() < deadline:
        time.sleep(0.01)
    assert closed and len(made) < 10
