"""The pictures decode as PNGs of the intended size, and the CAM overlay leaves the frame
visible where the model did not look."""
import io

import numpy as np
import torch
from PIL import Image

from fpar_models import cam, plots


def _image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return image


def _rows(stages=(3, 2)):
    rows = []
    for stage, epochs in enumerate(stages, 1):
        for epoch in range(1, epochs + 1):
            rows.append({"stage": stage, "epoch": epoch, "train_loss": 2 - 0.1 * len(rows), "val_loss": 2.1 - 0.1 * len(rows),
                         "train_acc": 0.1 * len(rows), "val_acc": 0.08 * len(rows)})
    return rows


def test_training_curves_and_stage_bounds():
    rows = _rows()
    assert plots.stage_bounds(rows) == [(4, 2)]
    assert _image(plots.training_curves(rows, "job")).size == (1100, 420)


def test_experiment_curves():
    series = [{"label": f"lr={lr}", "mean": [0.1, 0.3, 0.5], "low": [0.1, 0.2, 0.4], "high": [0.1, 0.4, 0.6]}
              for lr in ("1e-4", "2e-4")]
    assert _image(plots.experiment_curves(series, "grid", [(3, 2)])).size == (1100, 500)


def test_confusion_small_and_large():
    small = plots.confusion(["a", "b", "c"], np.array([[2, 0, 0], [1, 1, 0], [0, 0, 3]]), "small")
    big = plots.confusion([f"action_{i}" for i in range(61)], np.eye(61, dtype=int), "61 classes")
    assert _image(small).size[0] >= 600 and _image(big).size[0] > _image(small).size[0]


def test_image_grid():
    frames = [np.full((32, 32, 3), 100, np.uint8)] * 4
    maps = [np.zeros((7, 7), np.uint8)] * 4
    assert _image(plots.image_grid([frames, maps], ["frames", "maps"], ["1", "2", "3", "4"], "grid")).size == (840, 470)


def test_the_cam_overlay_keeps_the_frame_where_the_model_did_not_look():
    frames = np.full((2, 16, 16, 3), 120, np.uint8)
    cams = torch.zeros(2, 4, 4)
    cams[0, 0, 0] = 5.0  # frame 0: one hot cell in a corner; frame 1: flat, no preference
    hot, flat = cam.overlays(frames, cams)
    assert np.array_equal(flat, frames[1])  # a flat map draws nothing (no noise blown up)
    assert np.abs(hot[-1, -1].astype(int) - 120).max() <= 2  # far from the hot cell: the frame
    assert np.abs(hot[0, 0].astype(int) - 120).max() > 60  # on it: clearly coloured
