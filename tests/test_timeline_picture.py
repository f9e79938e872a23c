"""timeline.png for a 10 s video and for an hour of ~300 segments: a PNG of the fixed width
whose strip carries the colour of every class that appears and of no other; the pieces of
its layout (clock labels, thumbnail placement) on their own."""
import io

import numpy as np
import pytest
from PIL import Image

from fpar_models.timeline.picture import PALETTE, class_colour, clock, place, tick_step, timeline_png

CLASSES = ["take_bread", "open_jam", "spread_jam", "close_jam", "put_bread", "pour_water", "fold", "stir", "pour"]


def _pixels(data: bytes) -> np.ndarray:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def _count(pixels: np.ndarray, index: int) -> int:
    colour = np.round(np.array(class_colour(index)[:3]) * 255).astype(np.uint8)
    return int((pixels == colour).all(-1).sum())


def _grey_thumbs(times):
    return [(t, np.full((90, 120, 3), 40 + 15 * i, np.uint8)) for i, t in enumerate(times)]  # greys: no class colour


def test_a_short_video():
    found = [{"start": 0, "end": 3.2, "label": "take_bread", "probability": 0.9},
             {"start": 3.2, "end": 6.8, "label": "open_jam", "probability": 0.8},
             {"start": 6.8, "end": 10, "label": "close_jam", "probability": 0.7}]
    times = np.arange(0.5, 9.6, 0.25)
    pixels = _pixels(timeline_png(found, times, np.full(len(times), 0.8), 10.0, CLASSES, _grey_thumbs([1, 4, 5, 9]),
                                  "short", threshold=0.5))
    assert pixels.shape[1] == 1200 and 350 < pixels.shape[0] < 700
    assert all(_count(pixels, i) > 5000 for i in (0, 1, 3))  # a third of a 1075 x 60 px strip each
    assert all(_count(pixels, i) == 0 for i in (2, 4, 5, 6, 7, 8))


def test_an_hour_of_300_segments():
    rng = np.random.default_rng(0)
    ends = np.sort(rng.choice(np.arange(1, 3600), 299, replace=False)).tolist() + [3600]
    found, start = [], 0
    for end in ends:
        if rng.random() > 0.1:  # one in ten is background
            found.append({"start": start, "end": end, "label": CLASSES[int(rng.integers(6))], "probability": 0.7})
        start = end
    times = np.arange(1, 3600, 1.0)
    thumbs = _grey_thumbs(np.linspace(60, 3540, 12))  # more than fit: some are left out, none overlap
    pixels = _pixels(timeline_png(found, times, rng.random(len(times)), 3600, CLASSES, thumbs, "an hour",
                                  threshold=0.4))
    assert pixels.shape[1] == 1200 and 350 < pixels.shape[0] < 700
    assert all(_count(pixels, i) > 1000 for i in range(6))
    assert all(_count(pixels, i) == 0 for i in range(6, 9))


def test_nothing_found_still_draws():
    assert _pixels(timeline_png([], [], [], 5.0, CLASSES, [], "empty")).shape[1] == 1200


def test_colours_are_fixed_per_class_and_none_is_grey():
    assert class_colour(3) == PALETTE[3] and class_colour(len(PALETTE) + 3) == PALETTE[3]
    assert all(max(c[:3]) - min(c[:3]) > 0.05 for c in PALETTE)  # a grey would read as background


@pytest.mark.parametrize("seconds, kwargs, text", [
    (75, {}, "1:15"), (3725, {"hours": True}, "1:02:05"), (3725, {}, "62:05"), (0.5, {"decimals": 1}, "0:00.5"),
    (59.96, {"decimals": 1}, "1:00.0"),
])
def test_clock(seconds, kwargs, text):
    assert clock(seconds, **kwargs) == text


def test_ticks_are_round_and_few():
    assert tick_step(10) == 1 and tick_step(3600) == 300 and tick_step(3) == 0.5


def test_thumbnails_keep_apart_inside_the_axis_and_sit_on_their_time_when_they_can():
    lefts = place([0.0, 0.1, 0.2, 5.0, 10.0], [1.0] * 5, 0, 10, 0.1)
    assert lefts[0] == 0 and lefts[-1] == 9  # pushed inside
    assert all(b - a >= 1.1 - 1e-9 for a, b in zip(lefts, lefts[1:]))  # in order, gap apart
    assert lefts[3] == 4.5  # room around it: centred on its time
