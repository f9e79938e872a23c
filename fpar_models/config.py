"""The one training configuration: API request body, Celery task argument, trainer
input and part of every checkpoint.

Deliberately free of torch so the gateway can validate requests without it.
A request is a preset plus overrides; `fpar_models.presets.resolve_config` merges them
(`deep_merge`) and validates the result, so every error names the field as the client
wrote it.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

Arch = Literal["egornn", "flow", "two-stream"]
Attach = Literal["layer2", "layer3", "backbone", "attention", "convlstm"]

# The parts a stage can train, per architecture. A part is a named group of
# parameters (see fpar_models.models.*.parts()); the trainer freezes the rest.
PARTS: dict[str, tuple[str, ...]] = {
    "egornn": ("classifier", "convlstm", "layer4", "cam", "heads", "layer2", "layer3", "backbone"),
    "flow": ("classifier", "layer4", "backbone"),
    "two-stream": ("classifier", "convlstm", "layer4", "cam", "flow_layer4", "flow"),
}
Part = Literal["classifier", "convlstm", "layer4", "cam", "heads", "layer2", "layer3", "backbone",
               "flow_layer4", "flow"]
Precision = Literal["fp32", "bf16", "fp16"]
TAPPED_LAYERS = ("layer2", "layer3")  # head attachments that are parts of the backbone
# The heads that predict motion maps: their clips carry the true maps (models.motion_map_grid)
MOTION_MAP_HEADS = ("motion_segmentation", "feedback")

_STRICT = ConfigDict(extra="forbid", frozen=True)

# Two-stream: the trained model each stream starts from (a ModelConfig field), its arch,
# and the fields that fix the shapes of its weights: they must agree, or nothing loads.
STREAM_SOURCES: dict[str, tuple[str, tuple[str, ...]]] = {
    "rgb_model": ("egornn", ("attention", "mem_size")),
    "flow_model": ("flow", ("stack_size",)),
}


def _conflict(model: str, loc: tuple[str | int, ...], message: str, value: Any) -> ValidationError:
    """A cross-field error that points at the field at fault (pydantic prefixes the
    parent's path), instead of the anonymous model-level error a ValueError gives."""
    err = PydanticCustomError("config_conflict", message)  # type: ignore[arg-type]
    return ValidationError.from_exception_data(model, [InitErrorDetails(type=err, loc=loc, input=value)])


class _Head(BaseModel):
    model_config = _STRICT
    alpha: float = Field(1.0, ge=0, le=1000, description="weight of this head's loss")


class MotionSegmentationHead(_Head):
    """Per-frame motion map prediction (SparNet): classification or regression."""
    kind: Literal["motion_segmentation"]
    mode: Literal["classification", "regression"] = "classification"
    attach: Attach = "backbone"


class OrderPredictionHead(_Head):
    """Which of 12 permutations shuffled 4 frames (OPN); reads per-frame backbone features."""
    kind: Literal["order_prediction"]
    attach: Literal["backbone"] = "backbone"


class StaticDynamicHead(_Head):
    """Tells the real clip from the same frame repeated (reads the pooled ConvLSTM state)."""
    kind: Literal["static_dynamic"]
    attach: Literal["convlstm"] = "convlstm"


class DynamicFilterHead(_Head):
    """Predicts frame t+1 by convolving frame t with a k x k filter generated per sample."""
    kind: Literal["dynamic_filter"]
    attach: Literal["backbone", "attention", "convlstm"] = "convlstm"
    kernel_size: int = Field(7, ge=1, le=15, description="odd filter size k")

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, k: int) -> int:
        if k % 2 == 0:
            raise ValueError("kernel_size must be odd so the predicted frame stays aligned")
        return k


class FeedbackHead(_Head):
    """A motion-segmentation head whose 100-channel map modulates conv1 as beta*F + gamma."""
    kind: Literal["feedback"]
    mode: Literal["classification", "regression"] = "classification"
    attach: Literal["backbone"] = "backbone"


Head = Annotated[
    Union[MotionSegmentationHead, OrderPredictionHead, StaticDynamicHead, DynamicFilterHead,
          FeedbackHead],
    Field(discriminator="kind"),
]


class ModelConfig(BaseModel):
    model_config = _STRICT
    arch: Arch = "egornn"
    attention: bool = Field(True, description="CAM spatial attention (egornn, two-stream)")
    mem_size: int = Field(512, ge=8, le=2048, description="ConvLSTM hidden channels")
    heads: list[Head] = Field(default_factory=list, max_length=5)
    stack_size: int = Field(5, ge=1, le=20, description="flow images per direction in a stack")
    eval_stacks: int = Field(5, ge=1, le=25, description="flow stacks averaged for the final test and "
                             "for predictions (the reference's test protocol)")
    val_stacks: int = Field(1, ge=1, le=25, description="flow stacks averaged in the per-epoch validation that "
                            "picks the best epoch (the reference: 1, the centre stack)")
    rgb_model: str | None = Field(None, description="two-stream: trained egornn model id or checkpoint")
    flow_model: str | None = Field(None, description="two-stream: trained flow model id or checkpoint")

    @model_validator(mode="after")
    def _consistent(self) -> ModelConfig:
        kinds = [h.kind for h in self.heads]
        if self.heads and self.arch != "egornn":
            raise _conflict("ModelConfig", ("heads",),
                            f"self-supervised heads need arch 'egornn', not '{self.arch}'", kinds)
        if len(set(kinds)) != len(kinds):
            raise _conflict("ModelConfig", ("heads",), "each head kind may appear once", kinds)
        if "feedback" in kinds and "motion_segmentation" in kinds:
            raise _conflict("ModelConfig", ("heads",), "feedback already carries a "
                            "motion-segmentation head; drop the other", kinds)
        for field in ("rgb_model", "flow_model"):
            if self.arch != "two-stream" and getattr(self, field):
                raise _conflict("ModelConfig", (field,), f"{field} only applies to arch "
                                "'two-stream'", getattr(self, field))
        return self


class StageConfig(BaseModel):
    model_config = _STRICT
    epochs: int = Field(200, ge=1, le=10_000)
    lr: float = Field(1e-3, gt=0, le=10)
    weight_decay: float = Field(4e-5, ge=0, le=1)
    optimizer: Literal["adam", "sgd"] = "adam"
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD only")
    eps: float = Field(1e-4, gt=0, le=1, description="Adam only")
    schedule: Literal["multistep", "exponential"] = "multistep"
    milestones: list[Annotated[int, Field(ge=1)]] = Field(default_factory=lambda: [25, 75, 150], max_length=50,
                                                          description="epochs (1-based, increasing) where lr x gamma")
    gamma: float = Field(0.1, gt=0, le=1, description="lr factor at each milestone (or each epoch)")
    train: list[Part] = Field(default_factory=lambda: ["convlstm", "classifier"], min_length=1)
    part_lr: dict[Part, Annotated[float, Field(gt=0, le=10)]] = Field(
        default_factory=dict, description="learning rate per part, overriding lr")
    patience: int | None = Field(None, ge=1, le=10_000, description="early stopping: end the stage after this "
                                 "many epochs without a better val_acc (its best weights go on); null: all epochs")

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, ms: list[int]) -> list[int]:
        if any(m < 1 for m in ms) or any(b <= a for a, b in zip(ms, ms[1:])):
            raise ValueError("milestones must be epochs >= 1 in increasing order")
        return ms

    @model_validator(mode="after")
    def _lr_for_trained_parts(self) -> StageConfig:
        untrained = sorted(set(self.part_lr) - set(self.train))
        if untrained:
            raise _conflict("StageConfig", ("part_lr",),
                            f"part_lr names parts this stage does not train: {untrained}", untrained)
        return self


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _dataset_name(v: str) -> str:
    parts = v.split("/")
    if v.startswith("/") or not all(_NAME.match(p) for p in parts) or len(parts) > 4:
        raise ValueError("dataset must be a folder relative to the data directory "
                         "(letters, digits, '.', '_', '-'; no '..', no absolute path)")
    return v


class InitFrom(BaseModel):
    """Start a training after a stage of a trained model: its weights at that stage's end,
    and the stages up to it as that model trained them."""
    model_config = _STRICT
    model: str = Field(min_length=1, max_length=200, description="a registered model id (the trainer's CLI: a "
                       "model folder or model.pt)")
    stage: int = Field(ge=1, le=4, description="the run goes on after this stage of the model (1-based)")
    classes: Literal["keep", "reset"] = Field(
        "keep", description="keep: the model's classes and classifier (the dataset must have the same classes); "
        "reset: a new classifier for this dataset's classes (fine-tuning on new data)")


def default_rgb_stages() -> list[StageConfig]:
    """Ego-RNN's two stages: ConvLSTM + classifier, then also layer4 convs and the CAM fc."""
    return [
        StageConfig(),
        StageConfig(epochs=150, lr=1e-4, milestones=[25, 75],
                    train=["convlstm", "classifier", "layer4", "cam"]),
    ]


class TrainConfig(BaseModel):
    """Everything a training run needs; defaults are the papers' egornn-attention values."""
    model_config = _STRICT
    preset: str | None = Field("egornn-attention", description="the preset these values start from")
    dataset: str = Field("gtea61", description="dataset folder, relative to FPAR_DATA_DIR")
    train_users: list[str] = Field(default_factory=lambda: ["S1", "S3", "S4"], min_length=1, max_length=64)
    val_users: list[str] = Field(default_factory=lambda: ["S2"], min_length=1, max_length=64)
    frames: int = Field(16, ge=1, le=64, description="frames sampled uniformly per clip")
    sampling: Literal["reference", "centre"] = Field(
        "reference", description="which frames and flow stacks a clip is made of: the public Ego-RNN code's "
        "(each segment's start) or each segment's centre; a model predicts with the sampling it was trained with")
    image_size: int = Field(224, ge=32, le=512, description="crop side in pixels (224 in the papers)")
    batch_size: int = Field(32, ge=1, le=512)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    pretrained: Literal["imagenet", "none"] = Field(
        "imagenet", description="ResNet-34 ImageNet weights from a local file, or random init")
    num_workers: int = Field(0, ge=0, le=32, description="DataLoader worker processes")
    devices: int = Field(1, ge=1, le=64, description="processes the training runs on at once (torch.distributed: "
                         "a GPU each, or the CPU's cores shared); batch_size is the whole batch, split among "
                         "them; a worker trains on at most the devices it has")
    precision: Precision = Field("fp32", description="training arithmetic: fp32 as the papers trained, or "
                                 "bf16/fp16 mixed precision (autocast; fp16 with loss scaling)")
    model: ModelConfig = Field(default_factory=ModelConfig)
    stages: list[StageConfig] = Field(default_factory=default_rgb_stages, min_length=1, max_length=4)
    init_from: InitFrom | None = Field(None, description="start after a stage of a trained model instead of "
                                       "training the stages up to it")
    until_stage: int | None = Field(None, ge=1, le=4, description="train the first N stages only, and publish "
                                    "stage N's best (an experiment's shared stage; the later stages are its "
                                    "dependants')")

    @classmethod
    def stored(cls, raw: dict[str, Any]) -> TrainConfig:
        """A config as a model or checkpoint saved it. Those saved before `sampling` existed
        were trained on centred samples, and must keep predicting with them."""
        return cls.model_validate({"sampling": "centre", **raw})

    @field_validator("dataset")
    @classmethod
    def _relative_dataset(cls, v: str) -> str:
        return _dataset_name(v)

    @field_validator("train_users", "val_users")
    @classmethod
    def _users(cls, users: list[str]) -> list[str]:
        for u in users:
            if not _NAME.match(u):
                raise ValueError(f"'{u}' is not a user folder name")
        return users

    @model_validator(mode="after")
    def _consistent(self) -> TrainConfig:
        if set(self.train_users) & set(self.val_users):
            raise _conflict("TrainConfig", ("val_users",), "train_users and val_users must not "
                            "overlap", self.val_users)
        if self.batch_size % self.devices:
            raise _conflict("TrainConfig", ("devices",), f"batch_size {self.batch_size} does not split into "
                            f"{self.devices} equal shares", self.devices)
        allowed = PARTS[self.model.arch]
        for i, stage in enumerate(self.stages):
            bad = [p for p in stage.train if p not in allowed]
            if bad:
                raise _conflict("TrainConfig", ("stages", i, "train"), f"{bad} are not parts of "
                                f"arch '{self.model.arch}' (choose from {list(allowed)})", stage.train)
            if "cam" in stage.train and not self.model.attention:
                raise _conflict("TrainConfig", ("stages", i, "train"), "'cam' trains through the "
                                "attention; with model.attention false it has nothing to learn",
                                stage.train)
        trained = self.trained_stages
        if self.until_stage is not None and self.until_stage > len(self.stages):
            raise _conflict("TrainConfig", ("until_stage",), f"there are {len(self.stages)} stages",
                            self.until_stage)
        if self.init_from is not None and self.init_from.stage >= trained.stop:
            raise _conflict("TrainConfig", ("init_from", "stage"), f"the run would have no stage left to train: "
                            f"it has {trained.stop}", self.init_from.stage)
        kinds = {h.kind for h in self.model.heads}
        if kinds and not any("heads" in s.train for s in self.stages):
            raise _conflict("TrainConfig", ("model", "heads"), "heads are configured but no "
                            "stage trains 'heads'", sorted(kinds))
        if "order_prediction" in kinds and self.frames < 4:
            raise _conflict("TrainConfig", ("frames",), "order_prediction needs frames >= 4",
                            self.frames)
        if "dynamic_filter" in kinds and self.frames < 2:
            raise _conflict("TrainConfig", ("frames",), "dynamic_filter needs frames >= 2 (it "
                            "predicts the next frame)", self.frames)
        return self

    @model_validator(mode="after")
    def _tapped_layers_learn_with_their_heads(self) -> TrainConfig:
        """A head tapping layer2/layer3 would be a detached probe if its layer stayed frozen:
        the stages that train the heads train the tapped layers too."""
        tapped = {h.attach for h in self.model.heads if getattr(h, "attach", None) in TAPPED_LAYERS}
        stages = [s.model_copy(update={"train": s.train + sorted(tapped - set(s.train))})
                  if "heads" in s.train else s for s in self.stages]
        if stages != self.stages:
            object.__setattr__(self, "stages", stages)  # frozen model, still being validated
        return self

    def start_warnings(self) -> list[str]:
        """What a user should know before the run starts (shown on the job)."""
        if self.model.arch != "two-stream":
            return []
        return [f"no trained {arch} model given (model.{field}): the {arch} stream starts from the "
                f"backbone's initial ({self.pretrained}) weights"
                for field, arch in (("rgb_model", "egornn"), ("flow_model", "flow"))
                if not getattr(self.model, field)]

    @property
    def trained_stages(self) -> range:
        """The indexes (in `stages`) of the stages this run trains itself."""
        return range(self.init_from.stage if self.init_from else 0, self.until_stage or len(self.stages))

    @property
    def uses_flow(self) -> bool:
        return self.model.arch in ("flow", "two-stream")

    @property
    def uses_rgb(self) -> bool:
        return self.model.arch in ("egornn", "two-stream")


def deep_merge(base: Any, override: Any) -> Any:
    """Merge override into base: dicts key by key, lists of dicts index by index
    (a `null` element drops that entry), anything else replaced.

    So `{"stages": [{"epochs": 2}]}` keeps the rest of stage 1 and all of stage 2,
    and `{"stages": [{}, null]}` keeps stage 1 alone.
    """
    if isinstance(base, dict) and isinstance(override, dict):
        if "kind" in override and override["kind"] != base.get("kind"):
            return override  # another head kind: nothing of the old one applies
        out = dict(base)
        for k, v in override.items():
            out[k] = deep_merge(base[k], v) if k in base else v
        return out
    if (isinstance(base, list) and isinstance(override, list) and override
            and base and all(isinstance(x, dict) for x in base)
            and all(x is None or isinstance(x, dict) for x in override)):
        pad = [{}] * (len(base) - len(override))
        merged = [deep_merge(b, o) for b, o in zip(base, override + pad)]
        return [x for x in merged + override[len(base):] if x is not None]
    return override

