import pytest
from pydantic import ValidationError

from fpar_models.config import TrainConfig, deep_merge
from fpar_models.presets import PRESETS, UnknownPreset, resolve_config

NAMES = {"convlstm", "egornn-attention", "flow", "two-stream", "ms-classification", "ms-regression",
         "ms-order", "static-dynamic", "dynamic-filter", "convlstm-dynamic", "idt-net", "feedback", "sparnet"}


def test_the_presets_exist_validate_and_cite_their_source():
    assert set(PRESETS) == NAMES
    for name, preset in PRESETS.items():
        assert preset.config.preset == name
        assert TrainConfig.model_validate(preset.config.model_dump()) == preset.config
        assert "seed 0" in preset.source or "SPEC" in preset.source, name
        assert preset.description.endswith(f"Source: {preset.source}.")


# seed 004, tables 2, 3, 5, 6 (best rows) and section 4.2: lr, head lr, layer4 lr, alpha, milestones, gamma
SEED_004 = {
    "ms-regression": (2e-4, 1e-4, 4e-4, 0.5, [45, 90], 0.1, "motion_segmentation", "backbone"),
    "idt-net": (2e-4, 5e-5, 2e-4, 0.5, [45, 95], 0.1, "motion_segmentation", "convlstm"),
    "dynamic-filter": (1e-4, 1e-4, 4e-4, 1e-3, [30, 80], 0.2, "dynamic_filter", "convlstm"),
    "convlstm-dynamic": (2e-4, 1e-4, 2e-4, 0.01, [45, 90], 0.1, "dynamic_filter", "backbone"),
}


@pytest.mark.parametrize("name", sorted(SEED_004))
def test_seed_004_presets_are_its_best_rows(name):
    lr, head_lr, resnet_lr, alpha, milestones, gamma, kind, attach = SEED_004[name]
    cfg = PRESETS[name].config
    (head,) = cfg.model.heads
    assert (head.kind, head.attach, head.alpha) == (kind, attach, alpha)
    s1, s2 = cfg.stages
    assert s1 == TrainConfig().stages[0]  # stage 1 is Ego-RNN's
    assert (s2.epochs, s2.lr, s2.milestones, s2.gamma) == (100, lr, milestones, gamma)
    assert s2.part_lr == {"heads": head_lr, "layer4": resnet_lr, "cam": resnet_lr}
    assert set(s2.train) == {"convlstm", "classifier", "layer4", "cam", "heads"} and cfg.frames == 16


def test_the_reports_other_recipes():
    for name in ("ms-classification", "ms-order"):  # seed 001: MS after the attention, 300 + 150 epochs
        cfg = PRESETS[name].config
        assert cfg.model.heads[0].attach == "attention" and cfg.frames == 16
        assert [s.epochs for s in cfg.stages] == [300, 150] and cfg.stages[1].lr == 1e-4
    assert [h.kind for h in PRESETS["ms-order"].config.model.heads] == ["motion_segmentation", "order_prediction"]
    feedback = PRESETS["feedback"].config  # seed 002: 7 frames, a third stage trains the whole backbone
    assert feedback.frames == 7 and len(feedback.stages) == 3
    assert {"backbone", "heads"} <= set(feedback.stages[2].train)
    sparnet = PRESETS["sparnet"].config  # SparNet: MS classification on layer4, whole backbone in stage 2
    (ms,) = sparnet.model.heads
    assert (ms.kind, ms.mode, ms.attach, sparnet.frames) == ("motion_segmentation", "classification", "backbone", 7)
    assert "backbone" in sparnet.stages[1].train and "backbone" not in sparnet.stages[0].train


def test_a_head_on_layer2_or_layer3_trains_its_layer_with_it():
    cfg = resolve_config({"preset": "ms-classification",
                          "model": {"heads": [{"kind": "motion_segmentation", "attach": "layer3"}]}})
    assert "layer3" not in cfg.stages[0].train and "layer3" in cfg.stages[1].train
    assert "layer2" not in cfg.stages[1].train
    assert TrainConfig.model_validate(cfg.model_dump()) == cfg  # stable through a round trip


def test_precision_and_evaluation_protocol_are_config_fields():
    cfg = TrainConfig()
    assert cfg.precision == "fp32" and (cfg.model.val_stacks, cfg.model.eval_stacks) == (1, 5)
    assert resolve_config({"precision": "bf16"}).precision == "bf16"


def test_defaults_are_the_papers_rgb_recipe():
    cfg = TrainConfig()
    s1, s2 = cfg.stages
    assert (s1.epochs, s1.lr, s1.weight_decay, s1.milestones, s1.gamma) == (200, 1e-3, 4e-5, [25, 75, 150], 0.1)
    assert (s2.epochs, s2.lr, s2.milestones) == (150, 1e-4, [25, 75])
    assert s1.optimizer == "adam" and s1.eps == 1e-4
    assert set(s1.train) == {"convlstm", "classifier"}
    assert set(s2.train) == {"convlstm", "classifier", "layer4", "cam"}
    assert (cfg.batch_size, cfg.model.mem_size, cfg.train_users, cfg.val_users) == (32, 512, ["S1", "S3", "S4"], ["S2"])


def test_flow_and_two_stream_recipes():
    flow = PRESETS["flow"].config.stages
    assert len(flow) == 1 and flow[0].optimizer == "sgd" and flow[0].momentum == 0.9
    assert (flow[0].lr, flow[0].weight_decay, flow[0].epochs, flow[0].milestones, flow[0].gamma) == (
        1e-2, 5e-4, 750, [150, 300, 500], 0.5)
    ts = PRESETS["two-stream"].config.stages[0]
    assert (ts.schedule, ts.gamma, ts.epochs, ts.part_lr) == ("exponential", 0.99, 250, {"flow_layer4": 1e-4})


def test_override_merges_deeply():
    cfg = resolve_config({"preset": "ms-regression", "stages": [{"epochs": 3}], "model": {"mem_size": 64}})
    assert cfg.stages[0].epochs == 3 and cfg.stages[0].milestones == [25, 75, 150]
    assert cfg.stages[1] == PRESETS["ms-regression"].config.stages[1]
    assert cfg.model.mem_size == 64 and cfg.model.heads == PRESETS["ms-regression"].config.model.heads


def test_null_drops_a_stage_and_another_kind_replaces_a_head():
    assert len(resolve_config({"stages": [{}, None]}).stages) == 1
    cfg = resolve_config({"preset": "ms-classification", "model": {"heads": [{"kind": "order_prediction"}]}})
    assert [h.kind for h in cfg.model.heads] == ["order_prediction"]


def test_deep_merge_replaces_scalar_lists():
    assert deep_merge({"a": [1, 2, 3], "b": {"c": 1, "d": 2}}, {"a": [9], "b": {"d": 5}}) == {
        "a": [9], "b": {"c": 1, "d": 5}}


def _error_locations(request):
    with pytest.raises(ValidationError) as info:
        resolve_config(request)
    return [tuple(e["loc"]) for e in info.value.errors()]


@pytest.mark.parametrize("request_body, loc", [
    ({"frames": 0}, ("frames",)),
    ({"image_size": 16}, ("image_size",)),
    ({"batch_size": -1}, ("batch_size",)),
    ({"stages": [{"lr": 0}]}, ("stages", 0, "lr")),
    ({"stages": [{"milestones": [50, 10]}]}, ("stages", 0, "milestones")),
    ({"stages": [{"epochs": 0}]}, ("stages", 0, "epochs")),
    ({"stages": [{"train": ["flow_layer4"]}]}, ("stages", 0, "train")),
    ({"stages": [{"part_lr": {"layer4": 1e-3}}]}, ("stages", 0, "part_lr")),
    ({"model": {"heads": [{"kind": "motion_segmentation", "alpha": -1}]}}, ("model", "heads", 0, "motion_segmentation", "alpha")),
    ({"model": {"heads": [{"kind": "teleport"}]}}, ("model", "heads", 0)),
    ({"model": {"heads": [{"kind": "order_prediction", "attach": "convlstm"}]}}, ("model", "heads", 0, "order_prediction", "attach")),
    ({"model": {"heads": [{"kind": "dynamic_filter", "kernel_size": 4}]}}, ("model", "heads", 0, "dynamic_filter", "kernel_size")),
    ({"model": {"heads": [{"kind": "static_dynamic"}]}}, ("model", "heads")),  # no stage trains heads
    ({"preset": "ms-order", "frames": 3}, ("frames",)),
    ({"val_users": ["S1"]}, ("val_users",)),
    ({"dataset": "../etc"}, ("dataset",)),
    ({"dataset": "/abs/path"}, ("dataset",)),
    ({"train_users": ["S1/../../x"]}, ("train_users",)),
    ({"typo_field": 1}, ("typo_field",)),
    ({"model": {"arch": "flow", "heads": [{"kind": "order_prediction"}]}}, ("model", "heads")),
    ({"model": {"rgb_model": "m1"}}, ("model", "rgb_model")),
    ({"pretrained": "yes"}, ("pretrained",)),
    ({"precision": "fp8"}, ("precision",)),
    ({"model": {"val_stacks": 0}}, ("model", "val_stacks")),
])
def test_bad_configs_name_the_field(request_body, loc):
    assert loc in _error_locations(request_body)


def test_unknown_preset_names_it_and_the_known_ones():
    with pytest.raises(UnknownPreset, match="'nope'.*egornn-attention"):
        resolve_config({"preset": "nope"})
