"""The two-stage trainer. Readable top to bottom: data, model, then per stage the
parameters it trains, the optimiser over exactly those, epochs of train + validate,
the best weights kept and a resumable checkpoint written after every epoch.

    python -m fpar_models.train --config CFG.json --data-dir DIR --out OUT

As in the reference code, the optimiser holds exactly the parameters the stage unfreezes
and frozen BatchNorm stays in eval mode (fpar_models.stages). Unlike it, the scheduler
steps once per epoch, after it (the reference steps first, the PyTorch < 1.1 convention),
and class ids do not depend on which users are loaded.

Over several processes (`group`, fpar_models.distributed) every rank runs this same code
on its slice of each global batch, and the gradients are those of the whole batch; rank
0 alone reports and writes files, and the others wait for its files where they read them.
"""
from __future__ import annotations

import argparse
import itertools
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

from fpar_models import checkpoint, distributed
from fpar_models.compute import Compute
from fpar_models.config import STREAM_SOURCES, StageConfig, TrainConfig
from fpar_models.data.dataset import normalize_batch
from fpar_models.data.gtea61 import class_names
from fpar_models.data.loaders import Loaders, make_loaders
from fpar_models.distributed import SINGLE, Group
from fpar_models.evaluate import EpochStats, evaluate, run_and_score
from fpar_models.files import write_json_atomic
from fpar_models.models import build_model, run_model
from fpar_models.presets import resolve_config
from fpar_models.stages import configure_stage, make_optimizer, set_train_mode

LAST, MODEL, METRICS = "last.pt", "model.pt", "metrics.json"


class Cancelled(Exception):
    """Raised between batches when the cancel check says so."""


@dataclass
class Callbacks:
    on_progress: Callable[[dict[str, Any]], None] = lambda progress: None
    on_epoch: Callable[[dict[str, Any]], None] = lambda row: None
    on_start: Callable[[list[dict[str, Any]]], None] = lambda history: None  # the rows it starts with
    should_stop: Callable[[], bool] = lambda: False


@dataclass
class TrainResult:
    model_path: Path
    best_val_acc: float
    test_acc: float  # the best model under the final test protocol (= best_val_acc for RGB models)
    history: list[dict[str, Any]]
    classes: list[str]
    warnings: list[str] = field(default_factory=list)
    early_stops: list[dict[str, int]] = field(default_factory=list)  # the stages `patience` ended early


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


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
        return saved is not None and TrainConfig.stored(saved) == cfg
    except ValueError:  # pydantic's ValidationError: a config this version no longer reads
        return False


def train_epoch(net: nn.Module, loader, optimizer, compute: Compute, alphas: dict[str, float], *, heads: bool,
                should_stop: Callable[[], bool], progress: Callable[[float], None],
                group: Group = SINGLE) -> EpochStats:
    """One pass over the training clips (in one process any sized iterable of batches; a
    rank's loader draws from RankBatches); `net` is the model, or its
    DistributedDataParallel wrapper. The cancel check is rank 0's, before every step, on
    every rank."""
    stats = EpochStats()
    weights = loader.batch_sampler.loss_weights() if group.world > 1 else itertools.repeat(1.0)
    waiting = time.perf_counter()
    for step, (batch, weight) in enumerate(zip(loader, weights)):
        stats.data_wait_s += time.perf_counter() - waiting  # the model sat idle for data this long
        if group.agree(should_stop()):
            raise Cancelled()
        batch = normalize_batch(batch, compute.device)
        with compute.autocast():
            loss, scored = run_and_score(net, batch, alphas, heads=heads)
        optimizer.zero_grad(set_to_none=True)
        compute.step(loss if weight == 1 else loss * weight, optimizer)
        if weight:  # (not a stand-in)
            stats.add(scored, batch, loss)
        progress((step + 1) / len(loader))
        waiting = time.perf_counter()
    return EpochStats.merged(group.gather(stats))


def stage_best(out_dir: Path, stage_number: int) -> Path:
    return out_dir / f"stage{stage_number}_best.pt"


@dataclass
class Run:
    """What every epoch of a training run reads, and `state`, what the run has done so far
    (stage index and epochs done in it, that stage's best val_acc, the metrics rows):
    last.pt keeps it, and a resumed run starts from it."""
    cfg: TrainConfig
    model: nn.Module
    compute: Compute
    loaders: Loaders
    out_dir: Path
    classes: list[str]
    callbacks: Callbacks
    state: dict[str, Any]
    group: Group = SINGLE

    @property
    def alphas(self) -> dict[str, float]:
        return {h.kind: h.alpha for h in self.cfg.model.heads}


@dataclass
class Stage:
    """A stage as it trains: the optimiser over exactly the parts it unfreezes, and the
    modules that run in train mode."""
    index: int  # in cfg.stages
    config: StageConfig
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    train_modules: list[nn.Module]
    net: nn.Module  # what the stage trains through: the model, or its DistributedDataParallel wrapper


def train(cfg: TrainConfig, data_dir: Path, out_dir: Path, *, callbacks: Callbacks | None = None,
          compute: Compute | None = None, resolve_model: Callable[[str], Path] = Path,
          group: Group = SINGLE) -> TrainResult:
    """Run (or resume, when out_dir holds a checkpoint) every stage of cfg: in this process,
    or as one rank of `group` (the callbacks are rank 0's; the other ranks' go unused)."""
    compute = (compute or Compute.detect()).for_training(cfg.precision)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    root = Path(data_dir) / cfg.dataset
    classes = class_names(root)
    loaders = make_loaders(cfg, root, classes, compute, group)
    seed_everything(cfg.seed)
    # a run that starts from a trained model builds the same model (the same random numbers
    # drawn), but needs no ImageNet file: the weights come from that model
    built = cfg.model_copy(update={"pretrained": "none"}) if cfg.init_from else cfg
    model = build_model(built, len(classes), weights_dir=compute.weights_dir)
    warnings = load_streams(model, cfg, classes, resolve_model) if cfg.model.arch == "two-stream" else []
    model = compute.prepare(model)
    state, saved = resume(out_dir, cfg, model)
    if saved is None and cfg.init_from:
        state = start_after(cfg, model, classes, out_dir, resolve_model, write=group.main)
    elif saved is None and cfg.pretrained == "none" and cfg.model.arch != "two-stream":  # its streams come trained
        calibrate_batchnorm(model, loaders.calibration, compute)
    group.barrier()  # the other ranks read what rank 0 wrote (start_after's stage best)
    callbacks = (callbacks or Callbacks()) if group.main else Callbacks()
    run = Run(cfg, model, compute, loaders, out_dir, classes, callbacks, state, group)
    run.callbacks.on_start(state["history"])
    first = state["stage"]
    for index in range(first, cfg.trained_stages.stop):
        stage = start_stage(run, index, saved if index == first else None)
        for epoch in range(state["epoch"], stage.config.epochs):
            if stalled(state, stage.config):
                state.setdefault("early_stops", []).append(
                    {"stage": index + 1, "epoch": state["epoch"], "best_epoch": state["best_epoch"]})
                break
            run.callbacks.on_epoch(run_epoch(run, stage, epoch))
    return finish(run, warnings)


def stalled(state: dict[str, Any], stage: StageConfig) -> bool:
    """Early stopping: `patience` epochs of the stage have passed since its best one.
    (Checked before an epoch, so a run resumed after the deciding epoch stops too.)"""
    return stage.patience is not None and state["epoch"] - state.get("best_epoch", state["epoch"]) >= stage.patience


def start_after(cfg: TrainConfig, model: nn.Module, classes: list[str], out_dir: Path,
                resolve: Callable[[str], Path], *, write: bool = True) -> dict[str, Any]:
    """`init_from`: the source model's weights at the end of its stage k become this run's
    stage-k best, which stage k + 1 starts from as it would in one run; with classes
    "reset" the classifier keeps its new initialisation. Returns the state to start from:
    stage k + 1, and the source's rows of the stages up to k when it trained on the same
    data (marked `from_model`), so the run's history is whole."""
    source, k = cfg.init_from, cfg.init_from.stage
    weights, source_cfg, metrics = stage_weights(resolve(source.model), k)
    if source.classes == "reset":
        fresh = parts_state(model, "classifier")
        weights = {**{n: w for n, w in weights.items() if n not in fresh}, **fresh}
    try:
        model.load_state_dict(weights)
    except RuntimeError as e:
        raise ValueError(f"init_from: model {source.model} does not fit this config's model: {e}") from None
    if write:  # rank 0 writes it, the others read it after train()'s barrier
        checkpoint.save_atomic(checkpoint.training_file(model, cfg, classes, val_acc=None, stage=k, epoch=None),
                               stage_best(out_dir, k))
    same_data = source.classes == "keep" and all(
        getattr(source_cfg, f) == getattr(cfg, f) for f in ("dataset", "train_users", "val_users"))
    inherited = [{**row, "from_model": row.get("from_model", source.model)}
                 for row in metrics.get("history", []) if row["stage"] <= k] if same_data else []
    return {"stage": k, "epoch": 0, "best": -1.0, "best_epoch": 0, "history": inherited}


def stage_weights(model_path: Path, k: int) -> tuple[dict[str, torch.Tensor], TrainConfig, dict[str, Any]]:
    """A trained model's weights at the end of its stage k (its model file for its last
    stage, the stage's best checkpoint beside it for an earlier one: a run's folder, a
    model's in the store), its config and metrics."""
    ckpt = checkpoint.load(model_path, checkpoint.MODEL_FORMAT)
    source_cfg = TrainConfig.stored(ckpt["config"])
    trained = source_cfg.trained_stages
    if k - 1 not in trained:
        raise ValueError(f"init_from.stage: {model_path.parent.name} trained stages {trained.start + 1}-"
                         f"{trained.stop}, not stage {k}")
    if k == trained.stop:
        weights = ckpt["state_dict"]
    else:
        weights = checkpoint.load(stage_best(model_path.parent, k), checkpoint.TRAINING_FORMAT)["model"]
    metrics_path = model_path.parent / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    return weights, source_cfg, metrics


def parts_state(model: nn.Module, part: str) -> dict[str, torch.Tensor]:
    """The state-dict entries of one of the model's parts (its parameters)."""
    ids = {id(p) for p in model.parts()[part].params}
    return {name: p.detach().clone() for name, p in model.named_parameters() if id(p) in ids}


def resume(out_dir: Path, cfg: TrainConfig, model: nn.Module) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Where the run starts: the state in out_dir's last checkpoint, whose weights are
    loaded into the model, and the checkpoint (its optimiser and scheduler continue the
    stage it stopped in); or, in a new folder, a fresh state and None."""
    if not (out_dir / LAST).exists():
        return {"stage": 0, "epoch": 0, "best": -1.0, "history": []}, None
    saved = checkpoint.load(out_dir / LAST, checkpoint.TRAINING_FORMAT)
    if not same_config(saved.get("config"), cfg):
        raise ValueError(f"{out_dir / LAST}: a checkpoint of another config; resume it with its own "
                         "config, or train into a new folder")
    model.load_state_dict(saved["model"])
    return saved["state"], saved


def start_stage(run: Run, index: int, saved: dict[str, Any] | None) -> Stage:
    """Stage `index` ready to train: its parts unfrozen, an optimiser and a scheduler over
    them, continued from `saved` (the checkpoint of a run stopped in this stage) or new."""
    config = run.cfg.stages[index]
    if saved is None and index > 0:  # stage 2 starts from stage 1's best weights
        best = checkpoint.load(stage_best(run.out_dir, index), checkpoint.TRAINING_FORMAT)
        run.model.load_state_dict(best["model"])
    groups, train_modules = configure_stage(run.model, config)
    optimizer, scheduler = make_optimizer(config, groups)
    if saved is None:
        run.state.update(stage=index, epoch=0, best=-1.0, best_epoch=0)
    else:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
    return Stage(index, config, optimizer, scheduler, train_modules, run.group.wrap(run.model, run.compute.device))


def run_epoch(run: Run, stage: Stage, epoch: int) -> dict[str, Any]:
    """Epoch `epoch` (from 0) of the stage: train, step the scheduler, validate, keep the
    best weights, write the checkpoint. Returns the epoch's metrics row."""
    cfg, heads = run.cfg, "heads" in stage.config.train
    global_epoch = sum(s.epochs for s in cfg.stages[:stage.index]) + epoch
    # a resumed run sees the same epochs; each rank draws its own dropout masks
    seed_everything(cfg.seed * 100_003 + global_epoch + 7_919 * run.group.rank)
    run.loaders.train.batch_sampler.set_epoch(global_epoch)
    set_train_mode(run.model, stage.train_modules)
    where = {"stage": stage.index + 1, "stages": len(cfg.stages), "epoch": epoch + 1, "epochs": stage.config.epochs}
    total_epochs = sum(s.epochs for s in cfg.stages)

    def progress(done: float) -> None:
        run.callbacks.on_progress({**where, "fraction": (global_epoch + done) / total_epochs})

    started = time.perf_counter()
    stats = train_epoch(stage.net, run.loaders.train, stage.optimizer, run.compute, run.alphas, heads=heads,
                        should_stop=run.callbacks.should_stop, progress=progress, group=run.group)
    train_s = time.perf_counter() - started
    lr = stage.optimizer.param_groups[0]["lr"]
    stage.scheduler.step()  # once per epoch, after it
    run.group.share_buffers(run.model)
    val = evaluate(run.model, run.loaders.val, run.compute, run.alphas, heads=heads, group=run.group)
    row = {"stage": stage.index + 1, "epoch": epoch + 1, **stats.summary("train_"), **val, "lr": lr,
           "train_time_s": train_s, "data_wait_share": stats.data_wait_s / max(train_s, 1e-9)}
    save_epoch(run, stage, row)
    return row


def save_epoch(run: Run, stage: Stage, row: dict[str, Any]) -> None:
    """The row into the run's history; the weights as the stage's best when they are; the
    checkpoint to resume from, written after every epoch (by rank 0; every rank keeps
    the state, which decides early stopping)."""
    state = run.state
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    improved = not math.isnan(row["val_acc"]) and row["val_acc"] > state["best"]
    if improved:
        state["best"], state["best_epoch"] = row["val_acc"], row["epoch"]
    if run.group.main:
        if improved:
            best = checkpoint.training_file(run.model, run.cfg, run.classes, val_acc=row["val_acc"],
                                            stage=row["stage"], epoch=row["epoch"])  # from 1, as in the row
            checkpoint.save_atomic(best, stage_best(run.out_dir, row["stage"]))
        last = checkpoint.training_file(run.model, run.cfg, run.classes, optimizer=stage.optimizer.state_dict(),
                                        scheduler=stage.scheduler.state_dict(), state=state)
        checkpoint.save_atomic(last, run.out_dir / LAST)
    run.group.barrier()


def finish(run: Run, warnings: list[str]) -> TrainResult:
    """The final model is the best of the last stage, as in the papers; its test accuracy
    is measured under the final protocol where that is not the validation's."""
    best = checkpoint.load(stage_best(run.out_dir, run.cfg.trained_stages.stop), checkpoint.TRAINING_FORMAT)
    run.model.load_state_dict(best["model"])
    test_acc = best["val_acc"]
    if run.loaders.test is not None:
        test_acc = evaluate(run.model, run.loaders.test, run.compute, {}, heads=False, group=run.group)["val_acc"]
    model_path, history = run.out_dir / MODEL, run.state["history"]
    early_stops = run.state.get("early_stops", [])
    if run.group.main:
        checkpoint.save_atomic(checkpoint.model_file(run.model.cpu(), run.cfg, run.classes,
                                                     best_val_acc=best["val_acc"], test_acc=test_acc), model_path)
        metrics = {"best_val_acc": best["val_acc"], "test_acc": test_acc, "classes": run.classes,
                   "history": history, "warnings": warnings, "early_stops": early_stops}
        write_json_atomic(metrics, run.out_dir / METRICS)
    return TrainResult(model_path, best["val_acc"], test_acc, history, run.classes, warnings, early_stops)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train an FPAR model from a TrainConfig JSON file.")
    parser.add_argument("--config", type=Path, required=True, help="preset + overrides, as POST /train takes")
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding the dataset folder")
    parser.add_argument("--out", type=Path, required=True, help="checkpoints and metrics.json go here")
    parser.add_argument("--devices", type=int, help="processes to train on at once (default: the config's "
                        "`devices`); a GPU each, or the CPU's cores shared")
    parser.add_argument("--model-dir", type=Path, default=Path("models"),
                        help="where the config's model ids (two-stream sources, init_from) are looked up: "
                        "MODEL_DIR/ID/model.pt")
    args = parser.parse_args(argv)
    cfg = resolve_config(json.loads(args.config.read_text()))
    result = distributed.launch(train_cli, args.devices or cfg.devices, (cfg, args))  # (1: in this process)
    print(f"best_val_acc={result.best_val_acc:.4f} test_acc={result.test_acc:.4f} model={result.model_path}")


def train_cli(group: Group, job: tuple[TrainConfig, argparse.Namespace]) -> TrainResult:
    """The CLI's run, in this process or as a rank (a module-level function: ranks are spawned)."""
    cfg, args = job

    def resolve(ref: str) -> Path:
        path = Path(ref)
        return path if path.is_file() else path / MODEL if path.is_dir() else args.model_dir / ref / MODEL

    log = lambda row: print(json.dumps(row), flush=True)  # noqa: E731
    return train(cfg, args.data_dir, args.out, callbacks=Callbacks(on_epoch=log), resolve_model=resolve,
                 compute=Compute.detect(group.device), group=group)


if __name__ == "__main__":
    main()
