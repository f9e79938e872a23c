"""Each head's loss on hand-made cases."""
import math

import torch

from fpar_models.loss import HEAD_LOSSES, compute_loss, motion_segmentation_loss
from fpar_models.models import Output
from fpar_models.models.heads import DynamicFilter, Taps

MAPS = torch.tensor([[[[0.9, 0.1], [0.0, 0.6]]]])  # (B=1, T=1, 2, 2): moving where > 0.4


def _confident_logits(target_cells: torch.Tensor, margin: float) -> torch.Tensor:
    moving = (target_cells > 0.4).float()
    return torch.stack([(1 - moving) * margin, moving * margin], dim=2)  # (B, T, 2, g, g)


def test_ms_classification_perfect_is_zero_wrong_is_large():
    perfect = {"maps": _confident_logits(MAPS, 30.0), "mode": "classification"}
    assert motion_segmentation_loss(perfect, {"maps": MAPS}) < 1e-6
    wrong = {"maps": _confident_logits(1 - MAPS, 30.0), "mode": "classification"}
    assert motion_segmentation_loss(wrong, {"maps": MAPS}) > 10
    unsure = {"maps": torch.zeros(1, 1, 2, 2, 2), "mode": "classification"}
    assert math.isclose(motion_segmentation_loss(unsure, {"maps": MAPS}).item(), math.log(2), rel_tol=1e-5)


def test_ms_classification_layout_is_channel_first():
    # a single cell marked moving: the loss must look at that cell's two logits, channel first
    maps = torch.zeros(1, 1, 2, 2)
    maps[0, 0, 1, 0] = 1.0
    logits = torch.zeros(1, 1, 2, 2, 2)
    logits[0, 0, 1, 1, 0] = 50.0  # class "moving" (channel 1) at cell (1, 0)
    logits[0, 0, 0] = 50.0
    logits[0, 0, 0, 1, 0] = 0.0
    assert motion_segmentation_loss({"maps": logits, "mode": "classification"}, {"maps": maps}) < 1e-6


def test_ms_regression_is_mse_on_grey_levels():
    assert motion_segmentation_loss({"maps": MAPS.clone(), "mode": "regression"}, {"maps": MAPS}) == 0
    off = {"maps": MAPS + 0.1, "mode": "regression"}
    assert math.isclose(motion_segmentation_loss(off, {"maps": MAPS}).item(), 0.01, rel_tol=1e-4)


def test_classification_heads_and_frame_prediction():
    target = torch.tensor([3, 0])
    logits = torch.full((2, 12), -20.0)
    logits[0, 3] = logits[1, 0] = 20.0
    assert HEAD_LOSSES["order_prediction"]({"logits": logits, "target": target}, {}) < 1e-6
    frames = torch.rand(4, 3, 8, 8)
    assert HEAD_LOSSES["dynamic_filter"]({"pred": frames, "target": frames}, {}) == 0


def test_total_is_classification_plus_weighted_heads():
    logits = torch.tensor([[2.0, 0.0]])
    out = Output(logits, {"motion_segmentation": {"maps": MAPS + 0.1, "mode": "regression"}}, logits)
    total, parts = compute_loss(out, {"label": torch.tensor([0]), "maps": MAPS}, {"motion_segmentation": 0.5})
    ce = torch.nn.functional.cross_entropy(logits, torch.tensor([0]))
    assert math.isclose(parts["cls"].item(), ce.item(), rel_tol=1e-6)
    assert math.isclose(total.item(), ce.item() + 0.5 * 0.01, rel_tol=1e-4)


def test_dynamic_filter_applies_its_filter_to_the_previous_frame():
    """Constant logits give a uniform softmax filter: the prediction is frame t box-blurred."""
    head = DynamicFilter(in_channels=4, kernel_size=3, attach="backbone")
    with torch.no_grad():
        for p in head.generate.parameters():
            p.zero_()
    frames = torch.rand(1, 2, 3, 32, 32)
    taps = Taps(frames=frames, layer2=None, layer3=None, backbone=torch.zeros(1, 2, 4, 3, 3),
                attention=None, convlstm=None, pooled=None, encode=None)
    out = head(taps)
    small = torch.nn.functional.interpolate(frames[:, 0], size=8, mode="bilinear", align_corners=False)
    blur = torch.nn.functional.avg_pool2d(small, 3, stride=1, padding=1, count_include_pad=True)
    assert torch.allclose(out["pred"], blur, atol=1e-5)
    assert out["target"].shape == (1, 3, 8, 8)
