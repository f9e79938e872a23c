"""The two-stage trainer. Readable top to bottom: data, model, then per stage the
parameters it trains, the optimiser over exactly those, epochs of train + validate,
the best weights kept and a resumable checkpoint written after every epoch.

    python -m fpar_models.train --config CFG.json --data-dir DIR --out OUT

As in the reference code, the optimiser holds exactly the parameters the stage unfreezes
and frozen BatchNorm stays in eval mode. Unlike it, the scheduler steps once per epoch,
after it (the reference steps first, the PyTorch < 1.1 convention), and class ids do not
depend on which users are loaded.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fpar_models import checkpoint
from fpar_models.compute import Compute
from fpar_models.config import STREAM_SOURCES, StageConfig, TrainConfig
from fpar_models.data.dataset import ClipDataset, EpochSampler, ImageCache, normalize_batch
from fpar_models.data.gtea61 import class_names, scan
from fpar_models.evaluate import EpochStats, evaluate, run_and_score
from fpar_models.files import write_json_atomic
from fpar_models.models import build_model, motion_map_grid, run_model
from fpar_models.presets import resolve_config

LAST, MODEL, METRICS = "last.pt", "model.pt", "metrics.json"


class Cancelled(Exception):
    """Raised between batches when the cancel check says so."""


@dataclass
class Callbacks:
    on_progress: Callable[[dict[str, Any]], None] = lambda progress: None
    on_epoch: Callable[[dict[str, Any]], None] = lambda row: None
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class TrainResult:
    model_path: Path
    best_val_acc: float
    test_acc: float  # the best model under the final test protocol (= best_val_acc for RGB models)
    history: list[dict[str, Any]]
    classes: list[str]
    warnings: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loaders(cfg: TrainConfig, root: Path, classes: list[str], compute: Compute):
    """Training, validation (every epoch: it picks the best one) and test loaders. The test
    clips are the validation users' under the final protocol, which differs only for flow:
    the reference validates on the centre stack and tests on the mean of 5 (None otherwise)."""
    grid = motion_map_grid(cfg)
    streams = dict(rgb=cfg.uses_rgb, maps=grid is not None, flow=cfg.uses_flow)
    common = dict(image_size=cfg.image_size, frames=cfg.frames, rgb=cfg.uses_rgb, map_grid=grid,
                  flow_stack=cfg.model.stack_size if cfg.uses_flow else None,
                  seed=cfg.seed, cache=ImageCache(compute.cache_bytes))
    train_videos = scan(root, cfg.train_users, classes=classes, **streams)
    val_videos = scan(root, cfg.val_users, classes=classes, **streams)
    # persistent workers keep their frame caches from one epoch to the next
    options = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers,
                   pin_memory=compute.device.type == "cuda", persistent_workers=cfg.num_workers > 0)

    def evaluation(stacks: int):
        clips = ClipDataset(val_videos, train=False, eval_stacks=stacks, **common)
        return torch.utils.data.DataLoader(clips, sampler=EpochSampler(len(clips), shuffle=False), **options)

    train_set = ClipDataset(train_videos, train=True, **common)
    train = torch.utils.data.DataLoader(train_set, **options,
                                        sampler=EpochSampler(len(train_set), shuffle=True, seed=cfg.seed))
    m = cfg.model
    test = evaluation(m.eval_stacks) if cfg.uses_flow and m.eval_stacks != m.val_stacks else None
    return train, evaluation(m.val_stacks), test


def configure_stage(model: nn.Module, stage: StageConfig) -> tuple[list[dict], list[nn.Module]]:
    """Freeze everything, unfreeze the stage's parts. Returns the optimiser's parameter
    groups (each parameter once) and the modules that train in train mode."""
    for p in model.parameters():
        p.requires_grad_(False)
    parts = model.parts()
    groups, seen, train_modules = [], set(), []
    for name in stage.train:
        part = parts[name]
        params = [p for p in part.params if id(p) not in seen]
        seen.update(id(p) for p in params)
        for p in params:
            p.requires_grad_(True)
        if params:
            groups.append({"params": params, "lr": stage.part_lr.get(name, stage.lr), "name": name})
        train_modules += part.modules
    return groups, train_modules


def make_optimizer(stage: StageConfig, groups: list[dict]):
    if stage.optimizer == "sgd":
        opt = torch.optim.SGD(groups, lr=stage.lr, momentum=stage.momentum, weight_decay=stage.weight_decay)
    else:
        opt = torch.optim.Adam(groups, lr=stage.lr, weight_decay=stage.weight_decay, eps=stage.eps)
    if stage.schedule == "exponential":
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=stage.gamma)
    else:
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=stage.milestones, gamma=stage.gamma)
    return opt, sched


def set_train_mode(model: nn.Module, train_modules: list[nn.Module]) -> None:
    model.eval()  # frozen BatchNorm keeps its running statistics, dropout of frozen parts is off
    for m in train_modules:
        m.train()


@torch.no_grad()
def calibrate_batchnorm(model: nn.Module, loader, compute: Compute, max_batches: int = 16) -> None:
    """Estimate BatchNorm statistics on training clips. Only for randomly initialised
    backbones: a frozen BN with its initial statistics (0, 1) normalises nothing, and
    the unnormalised activations of a frozen random ResNet saturate the ConvLSTM."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    for i, batch in enumerate(loader):
        if i == max_batches:
            break
        run_model(model, normalize_batch(batch, compute.device), heads=False)
    for m in norms:
        m.momentum = 0.1
    model.eval()


def load_streams(model: nn.Module, cfg: TrainConfig, classes: list[str],
                 resolve: Callable[[str], Path]) -> list[str]:
    """Two-stream starting points: trained RGB and flow models. Returns warnings."""
    for source_field, (arch, shape_fields) in STREAM_SOURCES.items():
        ref = getattr(cfg.model, source_field)
        if not ref:
            continue
        ckpt = checkpoint.load(resolve(ref), checkpoint.MODEL_FORMAT)
        source = ckpt["config"]["model"]
        if source["arch"] != arch or ckpt["classes"] != classes:
            raise ValueError(f"model.{source_field}: {ref} is not an {arch} model trained on these classes")
        for name in shape_fields:
            if source[name] != getattr(cfg.model, name):
                raise ValueError(f"model.{name}: {ref} was trained with {name} {source[name]}, "
                                 f"this config has {getattr(cfg.model, name)}")
        stream = model.rgb if arch == "egornn" else model.flow
        stream.load_state_dict({k: v for k, v in ckpt["state_dict"].items() if not k.startswith("heads.")})
    return cfg.start_warnings()


def same_config(saved: dict | None, cfg: TrainConfig) -> bool:
    """Compared as configs, not dicts: a checkpoint written before a field with a default
    was added still matches the config that resumes it."""
    try:
        return saved is not None and TrainConfig.model_validate(saved) == cfg
    except ValueError:  # pydantic's ValidationError: a config this version no longer reads
        return False


def train_epoch(model: nn.Module, loader, optimizer, compute: Compute, alphas: dict[str, float], *, heads: bool,
                should_stop: Callable[[], bool], progress: Callable[[float], None]) -> EpochStats:
    stats = EpochStats()
    waiting = time.perf_counter()
    for i, batch in enumerate(loader):
        stats.data_wait_s += time.perf_counter() - waiting  # the model sat idle for data this long
        if should_stop():
            raise Cancelled()
        batch = normalize_batch(batch, compute.device)
        with compute.autocast():
            loss, scored = run_and_score(model, batch, alphas, heads=heads)
        optimizer.zero_grad(set_to_none=True)
        compute.step(loss, optimizer)
        stats.add(scored, batch, loss)
        progress((i + 1) / len(loader))
        waiting = time.perf_counter()
    return stats


def stage_best(out_dir: Path, stage_number: int) -> Path:
    return out_dir / f"stage{stage_number}_best.pt"


def train(cfg: TrainConfig, data_dir: Path, out_dir: Path, *, callbacks: Callbacks | None = None,
          compute: Compute | None = None, resolve_model: Callable[[str], Path] = Path) -> TrainResult:
    """Run (or resume, when out_dir holds a checkpoint) every stage of cfg."""
    cb = callbacks or Callbacks()
    compute = (compute or Compute.detect()).for_training(cfg.precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(data_dir) / cfg.dataset
    classes = class_names(root)
    train_loader, val_loader, test_loader = make_loaders(cfg, root, classes, compute)
    seed_everything(cfg.seed)
    model = build_model(cfg, len(classes), weights_dir=compute.weights_dir)
    warnings = load_streams(model, cfg, classes, resolve_model) if cfg.model.arch == "two-stream" else []
    model = compute.prepare(model)
    alphas = {h.kind: h.alpha for h in cfg.model.heads}

    config = cfg.model_dump(mode="json")
    state = {"stage": 0, "epoch": 0, "best": -1.0, "history": []}
    resume = checkpoint.load(out_dir / LAST, checkpoint.TRAINING_FORMAT) if (out_dir / LAST).exists() else None
    if resume:
        if not same_config(resume.get("config"), cfg):
            raise ValueError(f"{out_dir / LAST}: a checkpoint of another config; resume it with its own "
                             "config, or train into a new folder")
        model.load_state_dict(resume["model"])
        state = resume["state"]
    elif cfg.pretrained == "none" and cfg.model.arch != "two-stream":  # its streams come trained
        calibrate_batchnorm(model, train_loader, compute)
    total_epochs = sum(s.epochs for s in cfg.stages)
    for s_idx in range(state["stage"], len(cfg.stages)):
        stage = cfg.stages[s_idx]
        fresh = resume is None or resume["state"]["stage"] != s_idx
        if fresh and s_idx > 0:  # stage 2 starts from stage 1's best weights
            best = checkpoint.load(stage_best(out_dir, s_idx), checkpoint.TRAINING_FORMAT)
            model.load_state_dict(best["model"])
        groups, train_modules = configure_stage(model, stage)
        optimizer, scheduler = make_optimizer(stage, groups)
        if fresh:
            state.update(stage=s_idx, epoch=0, best=-1.0)
        else:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
        heads = "heads" in stage.train
        done_before = sum(s.epochs for s in cfg.stages[:s_idx])
        for epoch in range(state["epoch"], stage.epochs):
            global_epoch = done_before + epoch
            seed_everything(cfg.seed * 100_003 + global_epoch)  # a resumed run sees the same epochs
            train_loader.sampler.set_epoch(global_epoch)
            set_train_mode(model, train_modules)
            where = {"stage": s_idx + 1, "stages": len(cfg.stages), "epoch": epoch + 1, "epochs": stage.epochs}

            def progress(done: float, where=where, global_epoch=global_epoch) -> None:
                cb.on_progress({**where, "fraction": (global_epoch + done) / total_epochs})

            started = time.perf_counter()
            stats = train_epoch(model, train_loader, optimizer, compute, alphas, heads=heads,
                                should_stop=cb.should_stop, progress=progress)
            train_s = time.perf_counter() - started
            lr = optimizer.param_groups[0]["lr"]
            scheduler.step()  # once per epoch, after it
            val = evaluate(model, val_loader, compute, alphas, heads=heads)
            row = {"stage": s_idx + 1, "epoch": epoch + 1, **stats.summary("train_"), **val, "lr": lr,
                   "train_time_s": train_s, "data_wait_share": stats.data_wait_s / max(train_s, 1e-9)}
            state["history"].append(row)
            state["epoch"] = epoch + 1
            if not math.isnan(row["val_acc"]) and row["val_acc"] > state["best"]:
                state["best"] = row["val_acc"]
                checkpoint.save_atomic({"format": checkpoint.TRAINING_FORMAT, "model": model.state_dict(),
                                        "val_acc": row["val_acc"]}, stage_best(out_dir, s_idx + 1))
            checkpoint.save_atomic({"format": checkpoint.TRAINING_FORMAT, "model": model.state_dict(),
                                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                    "state": state, "config": config, "classes": classes},
                                   out_dir / LAST)
            cb.on_epoch(row)
        resume = None
    return finish(model, cfg, classes, state, out_dir, warnings, test_loader, compute)


def finish(model: nn.Module, cfg: TrainConfig, classes: list[str], state: dict, out_dir: Path,
           warnings: list[str], test_loader, compute: Compute) -> TrainResult:
    """The final model is the best of the last stage, as in the papers; its test accuracy
    is measured under the final protocol where that is not the validation's."""
    best = checkpoint.load(stage_best(out_dir, len(cfg.stages)), checkpoint.TRAINING_FORMAT)
    model.load_state_dict(best["model"])
    test_acc = best["val_acc"]
    if test_loader is not None:
        test_acc = evaluate(model, test_loader, compute, {}, heads=False)["val_acc"]
    model_path = out_dir / MODEL
    checkpoint.save_atomic(checkpoint.model_file(model.cpu(), cfg, classes, best_val_acc=best["val_acc"],
                                                 test_acc=test_acc), model_path)
    metrics = {"best_val_acc": best["val_acc"], "test_acc": test_acc, "classes": classes,
               "history": state["history"], "warnings": warnings}
    write_json_atomic(metrics, out_dir / METRICS)
    return TrainResult(model_path, best["val_acc"], test_acc, state["history"], classes, warnings)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train an FPAR model from a TrainConfig JSON file.")
    parser.add_argument("--config", type=Path, required=True, help="preset + overrides, as POST /train takes")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding the dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="checkpoints and metrics.json go here")
    parser.add_argument("--model-dir", type=Path, default=Path("models"),
                        help="two-stream: where model ids in the config are looked up (MODEL_DIR/ID/model.pt)")
    args = parser.parse_args(argv)
    cfg = resolve_config(json.loads(args.config.read_text()))

    def resolve(ref: str) -> Path:
        return Path(ref) if Path(ref).is_file() else args.model_dir / ref / MODEL

    log = lambda row: print(json.dumps(row), flush=True)  # noqa: E731
    result = train(cfg, args.data_dir, args.out, callbacks=Callbacks(on_epoch=log), resolve_model=resolve)
    print(f"best_val_acc={result.best_val_acc:.4f} test_acc={result.test_acc:.4f} model={result.model_path}")


if __name__ == "__main__":
    main()
