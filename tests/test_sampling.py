"""Which frames and flow stacks a clip is made of, pinned to exact index lists: `reference`
is the public Ego-RNN code's sampling (makeDatasetRGB/makeDatasetFlow, on 1-based file
numbers), `centre` the segment centres this project took before. The oracle below is the
reference's own expressions, written out with numpy; a later change cannot drift silently."""
import random

import numpy as np
import pytest

from fpar_models.config import TrainConfig
from fpar_models.data.dataset import ClipDataset
from fpar_models.data.gtea61 import scan
from fpar_models.data.transforms import frame_indices, stack_starts, train_stack_start


def reference_frames(n: int, count: int) -> list[int]:
    return [int(np.floor(i)) - 1 for i in np.linspace(1, n, count, endpoint=False)]


def reference_starts(n: int, stack: int, count: int) -> list[int]:
    if n <= stack:
        return [0] * count
    if count == 1:  # the validation's single stack
        return [int(np.ceil((n - stack) / 2)) - 1]
    return [int(s) - 1 for s in np.linspace(1, n - stack + 1, count, endpoint=False)]


def test_the_issue_s_examples():
    assert frame_indices(16, 16) == [0, 0, *range(1, 15)]  # frame 0 twice, frame 15 never
    assert frame_indices(16, 16, "centre") == list(range(16))
    assert stack_starts(50, 5, 5) == [0, 9, 18, 27, 36]
    assert stack_starts(50, 5, 5, "centre") == [0, 11, 22, 34, 45]
    assert stack_starts(15, 5, 1) == [4] and stack_starts(15, 5, 1, "centre") == [5]  # n - 5 even: one earlier
    assert stack_starts(16, 5, 1) == stack_starts(16, 5, 1, "centre") == [5]


@pytest.mark.parametrize("count", [1, 4, 7, 16, 25])
def test_reference_frames_are_the_reference_code_s(count):
    for n in range(1, 120):
        assert frame_indices(n, count) == reference_frames(n, count), (n, count)


def test_pinned_lists():
    assert frame_indices(10, 4) == [0, 2, 4, 6] and frame_indices(10, 4, "centre") == [1, 3, 6, 8]
    assert frame_indices(25, 7) == [0, 3, 6, 10, 13, 17, 20]
    assert frame_indices(3, 6) == [0, 0, 0, 1, 1, 1]  # the last of 3 frames never shown
    assert frame_indices(3, 6, "centre") == [0, 0, 1, 1, 2, 2]
    assert stack_starts(20, 5, 5) == [0, 3, 6, 9, 12] and stack_starts(20, 5, 5, "centre") == [0, 4, 8, 11, 15]
    assert stack_starts(5, 5, 5) == [0] * 5 and stack_starts(3, 5, 1) == [0]


@pytest.mark.parametrize("count", [1, 5])
def test_reference_stacks_are_the_reference_code_s(count):
    for n in range(1, 120):
        assert stack_starts(n, 5, count) == reference_starts(n, 5, count), (n, count)


def test_training_stack_starts_span_the_reference_s_range():
    rng = random.Random(0)
    assert {train_stack_start(12, 5, rng) for _ in range(500)} == set(range(0, 7))  # randint(1, n - 5), 1-based
    assert {train_stack_start(12, 5, rng, "centre") for _ in range(500)} == set(range(0, 8))
    assert train_stack_start(5, 5, rng) == 0 and train_stack_start(3, 5, rng) == 0


def test_a_clip_is_made_of_the_sampling_asked_for(data_dir):
    video = scan(data_dir / "synthetic", ["S1"])[0]
    n = len(video.frames)
    for sampling in ("reference", "centre"):
        clips = ClipDataset([video], image_size=32, train=False, frames=n, sampling=sampling)
        picked = frame_indices(n, n, sampling)
        rgb = clips[0]["rgb"]
        firsts = {i: j for j, i in reversed(list(enumerate(picked)))}
        for j, i in enumerate(picked):  # a repeated frame is the same picture
            assert bool((rgb[j] == rgb[firsts[i]]).all())
        assert (sampling == "reference") == bool((rgb[0] == rgb[1]).all())


def test_the_default_is_the_reference_and_saved_configs_keep_theirs():
    assert TrainConfig().sampling == "reference"
    saved = TrainConfig().model_dump(mode="json")
    assert TrainConfig.stored(saved).sampling == "reference"
    del saved["sampling"]  # a model trained before the field existed: on centred samples
    assert TrainConfig.stored(saved).sampling == "centre"
