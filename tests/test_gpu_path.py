"""The CUDA code path, exercised on every machine: on CUDA `Compute` turns models to
channels_last, trains under bf16 autocast when the config asks, and predicts under it
when the model's owner opts in. Both transformations work on the CPU too, so every preset
trains a step, validates and predicts (with CAMs) under them here."""
import numpy as np
import pytest
import torch

from fpar_models import checkpoint
from fpar_models.compute import Compute
from fpar_models.evaluate import evaluate
from fpar_models.models import build_model, motion_map_grid
from fpar_models.presets import PRESETS
from fpar_models.serving import Clip, Predictor
from fpar_models.stages import configure_stage, make_optimizer, set_train_mode
from fpar_models.train import train_epoch

from model_helpers import small_config

B, T, S, CLASSES = 2, 4, 48, 6


def cuda_like(precision: str) -> Compute:
    """What Compute.detect() gives on a GPU, on the CPU: channels_last + autocast."""
    return Compute(torch.device("cpu"), channels_last=True).for_training(precision)


def uint8_batches(cfg, n: int = 1) -> list[dict[str, torch.Tensor]]:
    """Collated batches as the DataLoader yields them (uint8 pixels, float maps)."""
    g = torch.Generator().manual_seed(0)
    grid = motion_map_grid(cfg)
    batch = {"label": torch.tensor([1, 4])}
    if cfg.uses_rgb:
        batch["rgb"] = torch.randint(0, 256, (B, T, 3, S, S), generator=g, dtype=torch.uint8)
    if cfg.uses_flow:
        batch["flow"] = torch.randint(0, 256, (B, 1, 2 * cfg.model.stack_size, S, S), generator=g, dtype=torch.uint8)
    if grid:
        batch["maps"] = torch.rand(B, T, grid, grid, generator=g)
    return [batch] * n


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_preset_trains_in_channels_last_under_bf16_autocast(preset):
    cfg = small_config(preset, frames=T, image_size=S)
    compute = cuda_like("bf16")
    torch.manual_seed(0)
    model = compute.prepare(build_model(cfg, CLASSES))
    assert model.classifier[-1].weight.dtype == torch.float32  # autocast leaves the weights fp32
    alphas = {h.kind: h.alpha for h in cfg.model.heads}
    loader = uint8_batches(cfg)
    for stage in cfg.stages:  # every stage: the later ones train other parts and the heads
        groups, train_modules = configure_stage(model, stage)
        optimizer, _ = make_optimizer(stage, groups)
        set_train_mode(model, train_modules)
        before = [p.detach().clone() for g in groups for p in g["params"]]
        stats = train_epoch(model, loader, optimizer, compute, alphas, heads="heads" in stage.train,
                            should_stop=lambda: False, progress=lambda done: None)
        summary = stats.summary("train_")
        assert np.isfinite(summary["train_loss"]), summary
        after = [p.detach() for g in groups for p in g["params"]]
        assert any(not torch.equal(a, b) for a, b in zip(before, after))  # the optimiser stepped
        assert all(torch.isfinite(p).all() for p in after)
        val = evaluate(model, loader, compute, alphas, heads="heads" in stage.train)
        assert 0 <= val["val_acc"] <= 1 and np.isfinite(val["val_loss"])


@pytest.mark.parametrize("preset", ["egornn-attention", "two-stream"])
def test_prediction_with_cams_in_channels_last_under_bf16(preset, tmp_path):
    cfg = small_config(preset, frames=T, image_size=S)
    path = tmp_path / "model.pt"
    checkpoint.save_atomic(checkpoint.model_file(build_model(cfg, CLASSES), cfg, list("abcdef")), path)
    predictor = Predictor(path, compute=Compute(torch.device("cpu"), torch.bfloat16, channels_last=True))
    rgb = np.random.default_rng(0).integers(0, 256, (T, S, S, 3), dtype=np.uint8)
    flow = np.zeros((cfg.model.eval_stacks, 10, S, S), np.uint8) if cfg.uses_flow else None
    (answer,) = predictor.predict([Clip(rgb, flow, top_k=3, explain=True)])
    assert len(answer["top_k"]) == 3 and len(answer["cams"]) == T
    assert sum(r["probability"] for r in answer["top_k"]) <= 1 + 1e-3


def test_fp16_training_scales_the_loss():
    cfg = small_config("dynamic-filter", frames=T, image_size=S, precision="fp16")
    compute = cuda_like(cfg.precision)
    assert compute.amp_dtype == torch.float16 and compute.scaler is not None
    model = compute.prepare(build_model(cfg, CLASSES))
    stage = cfg.stages[1]
    groups, train_modules = configure_stage(model, stage)
    optimizer, _ = make_optimizer(stage, groups)
    set_train_mode(model, train_modules)
    stats = train_epoch(model, uint8_batches(cfg, 2), optimizer, compute, {"dynamic_filter": 1e-3}, heads=True,
                        should_stop=lambda: False, progress=lambda done: None)
    assert np.isfinite(stats.summary("train_")["train_loss"])
