"""fpar.train: one training job, resumed from its last epoch when a worker died under it;
on success the model is published to the model store and registered. A training with
`devices` > 1 runs as that many spawned ranks (fpar_models.distributed) while this
process keeps the job's heartbeat; rank 0 reports."""
from __future__ import annotations

import logging
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from core import search, tasks
from core.store.records import JobRecord, JobStatus, ModelRecord, model_id_of
from fpar_models import distributed
from fpar_models.config import TrainConfig
from fpar_models.timeline.options import TrainingData
from fpar_models.train import LAST, METRICS, MODEL, Callbacks, Cancelled, TrainResult, stage_best, train
from worker.app import app
from worker.jobs import claimed, failure, jobs, running

log = logging.getLogger("fpar.worker")
PROGRESS_EVERY_S = 0.5


@app.task(name=tasks.TRAIN)
def train_job(job_id: str) -> None:
    if not claimed(job_id):
        return
    job = jobs().get(job_id, metrics=False)
    cfg = TrainConfig.model_validate(job.request)
    trial = search.trial_of(app.stores, job)
    out = app.settings.runs_dir / job_id
    if not (out / LAST).exists():  # a rerun on another host: the checkpoints its last run sent
        app.model_store.pull(runs_key(job_id), out)
    if (out / LAST).exists():  # a rerun after a lost worker resumes from its last epoch
        log.info("job %s resumes from its last checkpoint", job_id)
    run = Assignment(job_id, cfg, trial, out)
    devices = distributed.devices_for(cfg.devices, cfg.batch_size, devices_here())
    if devices < cfg.devices:
        log.warning("job %s asks %d devices; this worker trains it on %d", job_id, cfg.devices, devices)
    with running(job_id):  # (its heartbeat runs from here: a dataset to copy may take a while)
        try:
            app.settings.data.mirror(cfg.dataset)  # an s3:// data store's, brought here before the ranks start
            result = distributed.launch(train_rank, devices, run, cuda=app.models.compute.device.type == "cuda")
            model_id = register(job_id, cfg, out, result)
        except Pruned:  # a pruned trial is never resumed: its checkpoints go
            jobs().set_reason(job_id, "pruned")
            forget_run(job_id, out)
            end(job, JobStatus.cancelled)
            return
        except Cancelled:
            end(job, JobStatus.cancelled)
            return
        except Exception as e:
            log.exception("training job %s failed", job_id)
            end(job, JobStatus.failed, error=failure(e))
            return
    outcome = {"model": model_id, "best_val_acc": result.best_val_acc, "test_acc": result.test_acc,
               "devices": devices}
    end(job, JobStatus.succeeded, result={**outcome, **({"early_stops": result.early_stops}
                                                           if result.early_stops else {})})
    forget_run(job_id, out)  # checkpoints served their purpose; the model is registered


def runs_key(job_id: str) -> str:
    return f"runs/{job_id}/"


def forget_run(job_id: str, out: Path) -> None:
    app.model_store.delete(runs_key(job_id))
    shutil.rmtree(out, ignore_errors=True)


class Pruned(Cancelled):
    """The trial's search stopped it (its pruner)."""


@dataclass(frozen=True)
class Assignment:
    """What a rank needs to train the job (sent to spawned ranks: plain data)."""
    job_id: str
    cfg: TrainConfig
    trial: search.Trial | None
    out: Path


def train_rank(group: distributed.Group, run: Assignment) -> TrainResult:
    """The job's training in this process, or as one rank of a group (then rank 0's
    callbacks report; a launched rank computes on its own device)."""
    pruned: list[bool] = []
    try:
        callbacks = reporting(run.job_id, run.cfg, run.trial, pruned)
        return train(run.cfg, app.settings.data_dir, run.out, callbacks=callbacks,
                     compute=group.compute(app.models.compute), resolve_model=model_path, group=group)
    except Cancelled:
        if pruned:
            raise Pruned() from None
        raise


def devices_here() -> int:
    """How many ranks this worker gives a training at most: FPAR_MAX_DEVICES, or its GPUs,
    or on a CPU-only worker its cores (the ranks share them)."""
    on_gpus = app.models.compute.device.type == "cuda"
    return app.settings.max_devices or (torch.cuda.device_count() if on_gpus else os.cpu_count()) or 1


def end(job: JobRecord, status: JobStatus, **fields) -> None:
    """End the job, then at once rather than at the workers' next round: release (or end)
    the jobs waiting for it, and advance its search if it is a trial of one."""
    jobs().finish(job.id, status, **fields)
    try:
        app.release_waiting()
        if job.experiment is not None and app.stores.experiments.is_searching(job.experiment):
            search.advance(app.stores, app.requeue, app.settings.redis_url, job.experiment)
    except Exception:
        log.warning("what follows %s failed; the workers' loop will do it", job.id, exc_info=True)


def reporting(job_id: str, cfg: TrainConfig, trial: search.Trial | None, pruned: list[bool]) -> Callbacks:
    """Progress to the job at most twice a second (and at the end), a metrics row per
    epoch (for a search's trial, told to its pruner, which may stop it: `pruned`), and the
    cancel flag between batches."""
    last = [0.0]

    def progress(p: dict) -> None:
        now = time.monotonic()
        if now - last[0] > PROGRESS_EVERY_S or p["fraction"] >= 1:
            last[0] = now
            jobs().set_progress(job_id, p)

    def epoch(row: dict) -> None:
        try:  # the epoch's checkpoints to the store first: a worker on another host resumes from them
            app.model_store.push(app.settings.runs_dir / job_id, runs_key(job_id), last=LAST)
        except Exception:  # the store down: this host still resumes from its own copy; the next epoch retries
            log.warning("job %s: sending its checkpoints to the model store failed", job_id, exc_info=True)
        jobs().add_metrics(job_id, row)
        if trial is None or math.isnan(row["val_acc"]):
            return
        step = sum(s.epochs for s in cfg.stages[:row["stage"] - 1]) + row["epoch"]
        try:
            if search.report(app.stores, app.settings.redis_url, trial, step, row["val_acc"]):
                log.info("job %s: trial %d pruned after epoch %d", job_id, trial.number, step)
                pruned.append(True)
        except Exception:  # the pruner advises; a search whose study is unreachable trains on
            log.warning("job %s: reporting to its search failed", job_id, exc_info=True)

    return Callbacks(on_progress=progress, on_epoch=epoch,
                     on_start=lambda history: jobs().reset_metrics(job_id, history),
                     should_stop=lambda: bool(pruned) or jobs().cancel_requested(job_id))


def model_path(ref: str) -> Path:
    """A model's checkpoint, by model id (a two-stream source, an init_from model), with the
    files beside it (its earlier stages' best weights, its metrics)."""
    model = app.stores.models.get(ref)
    if model is None:
        raise KeyError(f"model '{ref}' is not registered")
    return app.model_store.folder(f"{model.id}/") / Path(model.path).name


def register(job_id: str, cfg: TrainConfig, out: Path, result: TrainResult) -> str:
    """Publish the trained model to the model store and list it in Redis (idempotent)."""
    model_id = model_id_of(job_id)
    stages = [stage_best(out, i + 1).name for i in cfg.trained_stages[:-1]]  # what init_from may start after
    for name in (*stages, METRICS, MODEL):  # the model last; it is listed in Redis once all are up
        app.model_store.put(f"{model_id}/{name}", out / name)
    inputs = [name for name, used in (("rgb", cfg.uses_rgb), ("flow", cfg.uses_flow)) if used]
    app.stores.models.add(ModelRecord(
        id=model_id, arch=cfg.model.arch, preset=cfg.preset, classes=result.classes,
        best_val_acc=result.best_val_acc, test_acc=result.test_acc, job_id=job_id, created_at=time.time(),
        frames=cfg.frames, image_size=cfg.image_size, stack_size=cfg.model.stack_size,
        eval_stacks=cfg.model.eval_stacks, inputs=inputs, path=f"{model_id}/{MODEL}", config=cfg,
        training_data=TrainingData.of(app.settings.data_dir / cfg.dataset, cfg.train_users)))
    return model_id
