"""Each stage trains exactly the parameters it names: they get gradients and move;
everything else stays put, frozen BatchNorm included (eval mode, statistics intact)."""
import pytest
import torch

from fpar_models.loss import compute_loss
from fpar_models.models import build_model, motion_map_grid, run_model
from fpar_models.stages import configure_stage, make_optimizer, set_train_mode

from model_helpers import small_config

LAYER3_HEAD = {"model": {"heads": [{"kind": "motion_segmentation", "attach": "layer3"}]}}
CASES = [("egornn-attention", 0, {}), ("egornn-attention", 1, {}), ("convlstm", 1, {}),
         ("ms-classification", 1, {}), ("ms-classification", 1, LAYER3_HEAD), ("ms-order", 1, {}),
         ("static-dynamic", 1, {}), ("dynamic-filter", 1, {}), ("convlstm-dynamic", 1, {}), ("feedback", 1, {}),
         ("feedback", 2, {}), ("sparnet", 1, {}), ("flow", 0, {}), ("two-stream", 0, {})]


def _batch(cfg):
    torch.manual_seed(1)
    grid = motion_map_grid(cfg) or 2
    return {"rgb": torch.randn(2, 4, 3, 64, 64), "flow": torch.randn(2, 1, 10, 64, 64),
            "maps": torch.rand(2, 4, grid, grid), "label": torch.tensor([1, 3])}


@pytest.mark.parametrize("preset, stage_index, overrides", CASES)
def test_stage_trains_exactly_its_parts(preset, stage_index, overrides):
    cfg = small_config(preset, **overrides)
    stage = cfg.stages[stage_index]
    torch.manual_seed(0)
    model = build_model(cfg, 6)
    groups, train_modules = configure_stage(model, stage)
    set_train_mode(model, train_modules)
    parts = model.parts()
    intended = {id(p) for name in stage.train for p in parts[name].params}
    assert {id(p) for g in groups for p in g["params"]} == intended
    assert all(sum(id(p) == id(q) for g in groups for q in g["params"]) == 1 for g in groups for p in g["params"])
    before = {name: t.detach().clone() for name, t in model.state_dict().items()}

    optimizer, _ = make_optimizer(stage, groups)
    batch = _batch(cfg)
    out = run_model(model, batch, heads="heads" in stage.train)
    loss, _ = compute_loss(out, batch, {h.kind: h.alpha for h in cfg.model.heads})
    loss.backward()
    optimizer.step()

    moved_params, still_params = [], []
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p.detach())
        if id(p) in intended:
            assert p.requires_grad and p.grad is not None, f"{name} should train in this stage"
            moved_params.append((name, changed))
        else:
            assert not p.requires_grad and p.grad is None, f"{name} should be frozen"
            still_params.append((name, changed))
    assert all(changed for _, changed in moved_params), [n for n, c in moved_params if not c]
    assert not any(changed for _, changed in still_params), [n for n, c in still_params if c]

    trained_modules = {id(m) for tm in train_modules for m in tm.modules()}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d) and id(m) not in trained_modules:
            assert not m.training, f"frozen {name} must stay in eval mode"
            assert torch.equal(before[f"{name}.running_mean"], m.running_mean)


def test_stage_lr_per_part():
    cfg = small_config("two-stream")
    groups, _ = configure_stage(build_model(cfg, 6), cfg.stages[0])
    lrs = {g["name"]: g["lr"] for g in groups}
    assert lrs["flow_layer4"] == 1e-4 and lrs["classifier"] == lrs["convlstm"] == 1e-2


@pytest.mark.parametrize("attach", ["layer2", "layer3"])
def test_the_motion_segmentation_loss_reaches_the_layer_it_taps(attach):
    """A head on layer2/layer3 is not a detached probe: its loss alone moves its layer."""
    cfg = small_config("ms-classification", model={"heads": [{"kind": "motion_segmentation", "attach": attach}]})
    torch.manual_seed(0)
    model = build_model(cfg, 6)
    configure_stage(model, cfg.stages[1])
    batch = _batch(cfg)
    out = run_model(model, batch)
    _, parts = compute_loss(out, batch, {"motion_segmentation": 1.0})
    parts["motion_segmentation"].backward()
    tapped = getattr(model.backbone, attach)
    assert all(p.requires_grad for p in model.parts()[attach].params)
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parts()[attach].params)
    deeper = model.backbone.layer4 if attach == "layer3" else model.backbone.layer3
    assert all(p.grad is None for p in deeper.parameters())  # nothing above the tap is reached
    assert tapped[0].bn1.weight.grad is None  # BN stays frozen in a tapped layer
