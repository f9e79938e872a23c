"""The papers' configurations (SPEC sections 4-6). Each preset is the egornn-attention
defaults of `TrainConfig` plus the few values that make it what it is, and names where
those values come from: the seed reports in shared/seeds (000 = SparNet on Ego-RNN and
static/dynamic, 001 = SAMSOP-Net, 002 = feedback, 004 = dynamic filters / IDT-net).
Where a source leaves a value open, the Ego-RNN recipe fills it, and the source says so.
A request names a preset and overrides some of its values: `resolve_config`."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fpar_models.config import StageConfig, TrainConfig, deep_merge
from fpar_models.formatting import format_number

RGB_STAGE2 = ["convlstm", "classifier", "layer4", "cam"]
RGB_STAGE2_WITH_HEADS = [*RGB_STAGE2, "heads"]
WHOLE_RGB_NETWORK = ["convlstm", "classifier", "backbone", "cam", "heads"]


@dataclass(frozen=True)
class Preset:
    name: str
    summary: str
    source: str
    config: TrainConfig

    @property
    def description(self) -> str:
        return f"{self.summary}. Source: {self.source}."


def _preset(name: str, summary: str, source: str, **overrides: Any) -> Preset:
    base = TrainConfig(preset=name).model_dump(mode="json")
    return Preset(name, summary, source, TrainConfig.model_validate(deep_merge(base, overrides)))


def _with_heads(*heads: dict[str, Any], stage2: dict[str, Any] | None = None,
                stage1: dict[str, Any] | None = None) -> dict[str, Any]:
    """RGB model whose self-supervised heads train in stage 2, as in the reports."""
    return {"model": {"heads": list(heads)},
            "stages": [stage1 or {}, {"train": RGB_STAGE2_WITH_HEADS, **(stage2 or {})}]}


def _seed004_stage2(lr: float, heads_lr: float, resnet_lr: float, milestones: list[int],
                    gamma: float) -> dict[str, Any]:
    """Seed 004's stage 2: 100 epochs, `lr` for the ConvLSTM and classifier, `lr super` for
    the head, `lr resnet` for the ResNet parameters stage 2 trains (layer4 convs, CAM fc)."""
    return {"epochs": 100, "lr": lr, "milestones": milestones, "gamma": gamma,
            "part_lr": {"heads": heads_lr, "layer4": resnet_lr, "cam": resnet_lr}}


_MS_CLS = {"kind": "motion_segmentation", "mode": "classification", "attach": "backbone", "alpha": 1.0}
_MS_REG = {"kind": "motion_segmentation", "mode": "regression", "attach": "backbone", "alpha": 0.5}
_DYNAMIC = {"kind": "dynamic_filter", "attach": "convlstm", "kernel_size": 7}
# Seed 001 ran stage 1 for 300 epochs (the reference script's default) and stage 2 for 150
_SEED001_STAGE1 = {"epochs": 300}

_FLOW_STAGE = StageConfig(epochs=750, lr=1e-2, weight_decay=5e-4, optimizer="sgd", momentum=0.9,
                          milestones=[150, 300, 500], gamma=0.5, train=["backbone", "classifier"])
_TWO_STREAM_STAGE = StageConfig(
    epochs=250, lr=1e-2, weight_decay=5e-4, optimizer="sgd", momentum=0.9,
    schedule="exponential", milestones=[], gamma=0.99,
    train=["classifier", "convlstm", "layer4", "cam", "flow_layer4"], part_lr={"flow_layer4": 1e-4})

_ALL = [
    _preset("convlstm", "Ego-RNN without attention: ResNet-34 features straight into the ConvLSTM",
            "seed 000 section 3.1 (both stages' values), seed 001 table 1, seed 004 table 1",
            model={"attention": False},
            stages=[{}, {"train": ["convlstm", "classifier", "layer4"]}]),  # no attention: no CAM to tune
    _preset("egornn-attention", "Ego-RNN RGB stream: CAM spatial attention + ConvLSTM, two stages",
            "seed 000 section 3.1 (stage 1: lr 1e-3, 200 epochs, x0.1 at 25/75/150; stage 2: lr 1e-4, "
            "150 epochs, x0.1 at 25/75), seed 004 section 4.2"),
    _preset("flow", "Warp-flow ResNet-34 on 5 x/y flow pairs (10 channels); validation on the centre "
            "stack, the final test averages 5 stacks",
            "seed 000 section 3.1 and seed 004 section 4.2 (SGD, lr 1e-2, 750 epochs, x0.5 at 150/300/500)",
            model={"arch": "flow"}, stages=[_FLOW_STAGE.model_dump(mode="json"), None]),
    _preset("two-stream", "Joint two-stream: RGB Ego-RNN + warp-flow ResNet, one fused classifier",
            "seed 004 section 4.2 (250 epochs, lr 1e-2 x0.99 per epoch; flow layer4 at 1e-4, as the "
            "Ego-RNN code)",
            model={"arch": "two-stream"}, stages=[_TWO_STREAM_STAGE.model_dump(mode="json"), None]),
    _preset("ms-classification", "egornn-attention + motion segmentation after the attention, per-cell "
            "2-class",
            "seed 001 sections 3-4, tables 2-3 ('Ego-rnn + MS Task': stage-2 lr 1e-4 best, 16 frames; "
            "stage 1 300 epochs, stage 2 150)",
            **_with_heads({**_MS_CLS, "attach": "attention"}, stage1=_SEED001_STAGE1)),
    _preset("ms-regression", "convLSTM-IDT: motion segmentation as regression (sigmoid, MSE) on the CNN "
            "output",
            "seed 004 table 3 best row (lr 2e-4, lr super 1e-4, lr resnet 4e-4, alpha 0.5, steps 45/90) "
            "and section 4.2 (100 epochs, decay 0.1); table 4: 67.81",
            **_with_heads(_MS_REG, stage2=_seed004_stage2(2e-4, 1e-4, 4e-4, [45, 90], 0.1))),
    _preset("ms-order", "SAMSOP-Net: motion segmentation after the attention + order prediction on the "
            "backbone",
            "seed 001 sections 3-5, tables 2-3 ('Ego-rnn + MS Task + Order Task': stage-2 lr 1e-4 best, "
            "16 frames; stage 1 300 epochs, stage 2 150)",
            **_with_heads({**_MS_CLS, "attach": "attention"}, {"kind": "order_prediction", "alpha": 1.0},
                          stage1=_SEED001_STAGE1)),
    _preset("static-dynamic", "motion segmentation + a discriminator of real vs. frozen clips on the "
            "ConvLSTM state",
            "seed 000 sections 2.4-2.5 and 3.1 (the Ego-RNN values for both stages; the MS tap 'varies', "
            "here layer4 as SparNet)",
            **_with_heads(_MS_CLS, {"kind": "static_dynamic", "alpha": 1.0})),
    _preset("dynamic-filter", "Dynamic-net: next-frame prediction with dynamic filters from the ConvLSTM",
            "seed 004 table 2 best row (lr 1e-4, lr super 1e-4, lr resnet 4e-4, alpha 1e-3, steps 30/80) "
            "and section 4.2 (100 epochs, decay 0.2); table 4: 68.38",
            **_with_heads({**_DYNAMIC, "alpha": 1e-3}, stage2=_seed004_stage2(1e-4, 1e-4, 4e-4, [30, 80], 0.2))),
    _preset("convlstm-dynamic", "convLSTM-dynamic: the dynamic-filter head on the CNN output instead of the "
            "ConvLSTM",
            "seed 004 section 4.1 and table 6 best row (lr 2e-4, lr super 1e-4, lr resnet 2e-4, alpha 0.01, "
            "steps 45/90), section 4.2 (100 epochs); table 4: 66.37",
            **_with_heads({**_DYNAMIC, "attach": "backbone", "alpha": 0.01},
                          stage2=_seed004_stage2(2e-4, 1e-4, 2e-4, [45, 90], 0.1))),
    _preset("idt-net", "IDT-net: motion-segmentation regression on the ConvLSTM output",
            "seed 004 table 5 best row (lr 2e-4, lr super 5e-5, lr resnet 2e-4, alpha 0.5, steps 45/95, MSE) "
            "and section 4.2 (100 epochs, decay 0.1); table 4: 70.39",
            **_with_heads({**_MS_REG, "attach": "convlstm"},
                          stage2=_seed004_stage2(2e-4, 5e-5, 2e-4, [45, 95], 0.1))),
    _preset("feedback", "motion segmentation on layer4 whose map modulates conv1 features as beta*F + gamma; "
            "a third stage trains the whole backbone",
            "seed 002 sections 2-3 (MS on layer4, per-pixel cross-entropy, 7 frames, the entire backbone "
            "trained in a third stage); the seed states no learning rates: stages 1-2 are Ego-RNN's, stage 3 "
            "repeats stage 2's values",
            frames=7, model={"heads": [{"kind": "feedback", "mode": "classification", "alpha": 1.0}]},
            stages=[{}, {"train": RGB_STAGE2_WITH_HEADS},
                    {"epochs": 150, "lr": 1e-4, "milestones": [25, 75], "train": WHOLE_RGB_NETWORK}]),
    _preset("sparnet", "SparNet: motion segmentation (per-cell 2-class) on layer4, the whole backbone "
            "training in stage 2, 7 frames",
            "SPEC section 6 (SparNet: 80.18 at 7 frames) and seed 000 section 2.4; the seeds state no "
            "learning rates for it: the Ego-RNN values of both stages",
            frames=7, **_with_heads(_MS_CLS, stage2={"train": WHOLE_RGB_NETWORK})),
]

PRESETS: dict[str, Preset] = {p.name: p for p in _ALL}


class UnknownPreset(ValueError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"unknown preset '{name}'; known presets: {', '.join(known)}")
        self.name = name


def resolve_config(request: dict[str, Any]) -> TrainConfig:
    """A request (preset name + overrides) -> a validated TrainConfig.

    Raises UnknownPreset or pydantic.ValidationError (locations as in the request).
    """
    if not isinstance(request, dict):
        raise TypeError("the training config must be a JSON object")
    name = request.get("preset", "egornn-attention")
    if not isinstance(name, str) or name not in PRESETS:
        raise UnknownPreset(str(name), sorted(PRESETS))
    merged = deep_merge(PRESETS[name].config.model_dump(mode="json"), request)
    return TrainConfig.model_validate(merged)


def _lr(stage: StageConfig) -> str:
    others = ", ".join(f"{part} {format_number(lr)}" for part, lr in stage.part_lr.items())
    return format_number(stage.lr) + (f" ({others})" if others else "")


def _schedule(stage: StageConfig) -> str:
    if stage.schedule == "exponential":
        return f"x{stage.gamma:g} per epoch"
    return f"x{stage.gamma:g} at {', '.join(map(str, stage.milestones))}" if stage.milestones else "constant"


def markdown_table() -> str:
    """Every preset's stages as `GET /presets` returns them (docs/models.md holds this table;
    a test keeps the two equal): `python -m fpar_models.presets`."""
    rows = ["| preset | frames | heads (attach, alpha) | stage | epochs | optimiser | lr (per part) | schedule "
            "| trains | source |", "|---|---|---|---|---|---|---|---|---|---|"]
    for p in PRESETS.values():
        cfg = p.config
        heads = "; ".join(f"{h.kind}{' ' + h.mode if getattr(h, 'mode', None) else ''} "
                          f"({getattr(h, 'attach', '-')}, {format_number(h.alpha)})" for h in cfg.model.heads) or "-"
        for i, s in enumerate(cfg.stages):
            first = i == 0
            optimiser = f"{s.optimizer} (wd {format_number(s.weight_decay)})"
            rows.append(f"| {p.name if first else ''} | {cfg.frames if first else ''} | {heads if first else ''} "
                        f"| {i + 1} | {s.epochs} | {optimiser} | {_lr(s)} | {_schedule(s)} | {', '.join(s.train)} "
                        f"| {p.source if first else ''} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
