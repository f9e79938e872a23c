"""Windows' probabilities -> segments, on hand-made windows whose answers are known: the
boundary of a clean change, a blip smoothed away, an unsure stretch left unlabelled, short
segments merged into the neighbour that fits them (shortest first), and the CSV round trip."""
import csv
import io

import pytest

from fpar_models.timeline.segments import annotation_csv, cell_edges, frame_labels, segments

AB = ["A", "B"]
ABC = ["A", "B", "C"]


def _one_per_second(probabilities):
    """Non-overlapping 1 s windows, so cell i is window i."""
    return [(float(i), float(i + 1), p) for i, p in enumerate(probabilities)]


def _spans(result):
    return [(s["label"], s["start"], s["end"]) for s in result]


def test_cells_tile_the_video_and_the_last_ends_at_its_end():
    assert cell_edges(10, 3).tolist() == [0, 3, 6, 9, 10]
    assert len(cell_edges(1.0, 0.1)) == 11  # 10 cells, no float-error sliver of an 11th
    assert cell_edges(0.3, 0.5).tolist() == [0, 0.3]


def test_a_clean_change_gives_two_segments_with_the_boundary_within_a_stride():
    # 2 s windows every 0.5 s; A until 5 s, then B: a window's A is its share of time before 5 s.
    windows = []
    for i in range(17):
        start = 0.5 * i
        a = min(max(5 - start, 0), 2) / 2
        windows.append((start, start + 2, [a, 1 - a]))
    result = segments(windows, AB, 10.0, 0.5)
    assert [s["label"] for s in result] == ["A", "B"]
    assert result[0]["start"] == 0 and result[1]["end"] == 10 and result[0]["end"] == result[1]["start"]
    assert abs(result[0]["end"] - 5) <= 0.5
    assert result[0]["probability"] > 0.8 and result[1]["probability"] > 0.8


def test_smoothing_removes_a_one_window_blip():
    probabilities = [[0.8, 0.2]] * 10
    probabilities[5] = [0.3, 0.7]
    windows = _one_per_second(probabilities)
    assert _spans(segments(windows, AB, 10, 1)) == [("A", 0, 5), ("B", 5, 6), ("A", 6, 10)]
    smoothed = segments(windows, AB, 10, 1, smoothing=3)  # cell 5: A (0.8 + 0.3 + 0.8) / 3 = 0.63
    assert _spans(smoothed) == [("A", 0, 10)]
    # Cells 4-6 see the blip; the edge cells average what exists ((0.8 + 0.8) / 2, not pulled
    # toward zero by a cell beyond the video).
    assert smoothed[0]["probability"] == pytest.approx((7 * 0.8 + 3 * (0.8 + 0.8 + 0.3) / 3) / 10, abs=1e-4)


def test_threshold_leaves_an_unsure_stretch_out():
    windows = _one_per_second([[0.9, 0.05, 0.05]] * 4 + [[0.4, 0.35, 0.25]] * 3 + [[0.05, 0.9, 0.05]] * 3)
    assert _spans(segments(windows, ABC, 10, 1, threshold=0.5)) == [("A", 0, 4), ("B", 7, 10)]
    assert _spans(segments(windows, ABC, 10, 1)) == [("A", 0, 7), ("B", 7, 10)]  # no threshold: A's 0.4 wins


@pytest.mark.parametrize("blip, expected", [
    ([0.4, 0.1, 0.5], [("A", 0, 5), ("B", 5, 10)]),  # A explains the short C better: it goes left
    ([0.1, 0.4, 0.5], [("A", 0, 4), ("B", 4, 10)]),  # B does: it goes right
])
def test_min_segment_merges_a_short_segment_into_the_better_neighbour(blip, expected):
    windows = _one_per_second([[0.8, 0.1, 0.1]] * 4 + [blip] + [[0.1, 0.8, 0.1]] * 5)
    assert _spans(segments(windows, ABC, 10, 1)) == [("A", 0, 4), ("C", 4, 5), ("B", 5, 10)]
    merged = segments(windows, ABC, 10, 1, min_segment=1.5)
    assert _spans(merged) == expected
    if expected[0][2] == 5:  # A's probability: its mean over its cells, the merged one included
        assert merged[0]["probability"] == pytest.approx((4 * 0.8 + 0.4) / 5)


def test_min_segment_merges_the_shortest_first():
    # A x5, B x2, C x1, D x5. C (shortest) goes to B, which at 3 s then stays. Taken left to
    # right instead, B would go to A first and C to D.
    a, b, c, d = [0.9, 0.05, 0.03, 0.02], [0.45, 0.5, 0.03, 0.02], [0.05, 0.3, 0.55, 0.1], [0.02, 0.03, 0.05, 0.9]
    windows = _one_per_second([a] * 5 + [b] * 2 + [c] + [d] * 5)
    assert _spans(segments(windows, list("ABCD"), 13, 1, min_segment=2.5)) == [("A", 0, 5), ("B", 5, 8), ("D", 8, 13)]


def test_a_short_segment_between_background_goes_to_background_but_a_lone_one_stays():
    windows = _one_per_second([[0.3, 0.3, 0.4]] * 3 + [[0.9, 0.05, 0.05]] + [[0.3, 0.3, 0.4]] * 3)
    assert _spans(segments(windows, ABC, 7, 1, threshold=0.5)) == [("A", 3, 4)]
    assert segments(windows, ABC, 7, 1, threshold=0.5, min_segment=2) == []  # both neighbours background
    lone = segments([(0.0, 1.0, [0.2, 0.8])], AB, 1.0, 0.5, min_segment=5)
    assert _spans(lone) == [("B", 0, 1)]
    # Two short ones: B joins A, and A, now the whole video, stays though still short.
    pair = segments([(0.0, 1.0, [0.9, 0.1]), (1.0, 1.5, [0.1, 0.9])], AB, 1.5, 0.5, min_segment=5)
    assert _spans(pair) == [("A", 0, 1.5)]


def test_a_window_shorter_than_a_cell_and_cells_no_window_covers():
    assert segments([(0.0, 0.3, [0.1, 0.9])], AB, 0.3, 0.5) == [{"start": 0, "end": 0.3, "label": "B", "index": 1,
                                                                  "probability": 0.9}]
    # Neither window covers a cell centre (0.5, 1.5): each cell takes the nearest window.
    windows = [(0.0, 0.3, [0.9, 0.1]), (1.6, 2.0, [0.2, 0.8])]
    assert _spans(segments(windows, AB, 2, 1)) == [("A", 0, 1), ("B", 1, 2)]


def test_times_are_rounded_and_bad_input_is_refused():
    result = segments(_one_per_second([[0.9, 0.1]] * 3), AB, 1.0, 1 / 3)
    assert _spans(result) == [("A", 0, 1)]
    thirds = segments([(0, 1 / 3, [0.9, 0.1]), (1 / 3, 1, [0.1, 0.9])], AB, 1.0, 1 / 3)
    assert _spans(thirds) == [("A", 0, 0.333), ("B", 0.333, 1)]
    with pytest.raises(ValueError):
        segments([(0, 1, [0.5, 0.3, 0.2])], AB, 1, 1)
    with pytest.raises(ValueError):
        segments([(0, 1, [0.5, 0.5])], AB, 1, 0)
    assert segments([], AB, 10, 1) == []


def test_frame_labels():
    found = [{"start": 7, "end": 10, "label": "B"}, {"start": 0, "end": 5, "label": "A"}]
    assert frame_labels(found, [0, 4.999, 5, 6, 7, 9.99, 10, -1]) == ["A", "A", None, None, "B", "B", None, None]


def test_annotation_csv_reads_back_as_the_segments():
    found = [{"start": 0, "end": 4.25, "label": "open_box", "probability": 0.9},
             {"start": 6.1234, "end": 10, "label": "take,spoon", "probability": 0.7}]
    text = annotation_csv(found, "kitchen, take 2.mp4", "S4")
    assert text.startswith("video,label,start,end,user\n")
    lines = text.splitlines()
    assert lines[1] == '"kitchen, take 2.mp4",open_box,0.000,4.250,S4'
    assert len(lines) == 3 and text.endswith("\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["video"], r["label"], float(r["start"]), float(r["end"]), r["user"]) for r in rows] == [
        ("kitchen, take 2.mp4", s["label"], round(s["start"], 3), round(s["end"], 3), "S4") for s in found]
