"""The papers' configurations (SPEC sections 4-5). Each preset is the egornn-attention
defaults of `TrainConfig` plus the few values that make it what it is."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fpar_models.config import StageConfig, TrainConfig, deep_merge

RGB_STAGE2_WITH_HEADS = ["convlstm", "classifier", "layer4", "cam", "heads"]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    config: TrainConfig


def _preset(name: str, description: str, **overrides: Any) -> Preset:
    base = TrainConfig(preset=name).model_dump(mode="json")
    return Preset(name, description, TrainConfig.model_validate(deep_merge(base, overrides)))


def _with_heads(*heads: dict[str, Any]) -> dict[str, Any]:
    """RGB model whose self-supervised heads train in stage 2, as in the reports."""
    return {"model": {"heads": list(heads)},
            "stages": [{}, {"train": RGB_STAGE2_WITH_HEADS}]}


_MS_CLS = {"kind": "motion_segmentation", "mode": "classification", "attach": "backbone", "alpha": 1.0}
_MS_REG = {"kind": "motion_segmentation", "mode": "regression", "attach": "backbone", "alpha": 0.5}

_FLOW_STAGE = StageConfig(epochs=750, lr=1e-2, weight_decay=5e-4, optimizer="sgd", momentum=0.9,
                          milestones=[150, 300, 500], gamma=0.5, train=["backbone", "classifier"])
_TWO_STREAM_STAGE = StageConfig(
    epochs=250, lr=1e-2, weight_decay=5e-4, optimizer="sgd", momentum=0.9,
    schedule="exponential", milestones=[], gamma=0.99,
    train=["classifier", "convlstm", "layer4", "cam", "flow_layer4"], part_lr={"flow_layer4": 1e-4})

_ALL = [
    _preset("convlstm", "Ego-RNN without attention: ResNet-34 features straight into the ConvLSTM",
            model={"attention": False},
            stages=[{}, {"train": ["convlstm", "classifier", "layer4"]}]),  # no attention: no CAM to tune
    _preset("egornn-attention", "Ego-RNN RGB stream: CAM spatial attention + ConvLSTM, two stages"),
    _preset("flow", "Warp-flow ResNet-34 on 5 x/y flow pairs (10 channels); eval averages 5 stacks",
            model={"arch": "flow"}, stages=[_FLOW_STAGE.model_dump(mode="json"), None]),
    _preset("two-stream", "Joint two-stream: RGB Ego-RNN + warp-flow ResNet, one fused classifier",
            model={"arch": "two-stream"}, stages=[_TWO_STREAM_STAGE.model_dump(mode="json"), None]),
    _preset("ms-classification", "egornn-attention + motion segmentation, per-cell 2-class (SparNet)",
            **_with_heads(_MS_CLS)),
    _preset("ms-regression", "egornn-attention + motion segmentation as regression (sigmoid, MSE)",
            **_with_heads(_MS_REG)),
    _preset("ms-order", "SAMSOP-Net: motion segmentation after attention + order prediction",
            **_with_heads({**_MS_CLS, "attach": "attention"},
                          {"kind": "order_prediction", "alpha": 1.0})),
    _preset("static-dynamic", "motion segmentation + a discriminator of real vs. frozen clips",
            **_with_heads(_MS_CLS, {"kind": "static_dynamic", "alpha": 1.0})),
    _preset("dynamic-filter", "Dynamic-net: next-frame prediction with dynamic filters from the ConvLSTM",
            **_with_heads({"kind": "dynamic_filter", "attach": "convlstm", "kernel_size": 7,
                           "alpha": 1e-3})),
    _preset("idt-net", "IDT-net: motion-segmentation regression on the ConvLSTM output",
            **_with_heads({**_MS_REG, "attach": "convlstm"})),
    _preset("feedback", "motion segmentation whose map modulates conv1 features as beta*F + gamma",
            **_with_heads({"kind": "feedback", "mode": "classification", "alpha": 1.0})),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _ALL}
