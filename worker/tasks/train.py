"""fpar.train: one training job, resumed from its last epoch when a worker died under it;
on success the model is published to the model store and registered."""
from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from core import tasks
from core.store.records import JobStatus, ModelRecord, model_id_of
from fpar_models.config import TrainConfig
from fpar_models.files import atomic_path
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
    cfg = TrainConfig.model_validate(jobs().get(job_id, metrics=False).request)
    out = app.settings.runs_dir / job_id
    if (out / LAST).exists():  # a rerun after a lost worker resumes from its last epoch
        log.info("job %s resumes from its last checkpoint", job_id)
    with running(job_id):
        try:
            result = train(cfg, app.settings.data_dir, out, callbacks=reporting(job_id),
                           compute=app.models.compute, resolve_model=model_path)
            model_id = register(job_id, cfg, out, result)
        except Cancelled:
            end(job_id, JobStatus.cancelled)
            return
        except Exception as e:
            log.exception("training job %s failed", job_id)
            end(job_id, JobStatus.failed, error=failure(e))
            return
    outcome = {"model": model_id, "best_val_acc": result.best_val_acc, "test_acc": result.test_acc}
    end(job_id, JobStatus.succeeded, result={**outcome, **({"early_stops": result.early_stops}
                                                              if result.early_stops else {})})
    shutil.rmtree(out, ignore_errors=True)  # checkpoints served their purpose; the model is registered


def end(job_id: str, status: JobStatus, **fields) -> None:
    """End the job, and release (or end) the jobs waiting for it at once rather than at
    the reaper's next round."""
    jobs().finish(job_id, status, **fields)
    try:
        app.release_waiting()
    except Exception:
        log.warning("releasing the jobs after %s failed; the reaper will", job_id, exc_info=True)


def reporting(job_id: str) -> Callbacks:
    """Progress to the job at most twice a second (and at the end), a metrics row per
    epoch, and the cancel flag between batches."""
    last = [0.0]

    def progress(p: dict) -> None:
        now = time.monotonic()
        if now - last[0] > PROGRESS_EVERY_S or p["fraction"] >= 1:
            last[0] = now
            jobs().set_progress(job_id, p)

    return Callbacks(on_progress=progress, on_epoch=lambda row: jobs().add_metrics(job_id, row),
                     on_start=lambda history: jobs().reset_metrics(job_id, history),
                     should_stop=lambda: jobs().cancel_requested(job_id))


def model_path(ref: str) -> Path:
    """A model's checkpoint, by model id (a two-stream source, an init_from model)."""
    model = app.stores.models.get(ref)
    if model is None:
        raise KeyError(f"model '{ref}' is not registered")
    return app.settings.model_dir / model.path


def register(job_id: str, cfg: TrainConfig, out: Path, result: TrainResult) -> str:
    """Publish the trained model to the model store and list it in Redis (idempotent)."""
    model_id = model_id_of(job_id)
    folder = app.settings.model_dir / model_id
    stages = [stage_best(out, i + 1).name for i in cfg.trained_stages[:-1]]  # what init_from may start after
    for name in (*stages, METRICS, MODEL):  # the model last: a model file in the store is a whole one
        with atomic_path(folder / name) as tmp:
            shutil.copyfile(out / name, tmp)
    inputs = [name for name, used in (("rgb", cfg.uses_rgb), ("flow", cfg.uses_flow)) if used]
    app.stores.models.add(ModelRecord(
        id=model_id, arch=cfg.model.arch, preset=cfg.preset, classes=result.classes,
        best_val_acc=result.best_val_acc, test_acc=result.test_acc, job_id=job_id, created_at=time.time(),
        frames=cfg.frames, image_size=cfg.image_size, stack_size=cfg.model.stack_size,
        eval_stacks=cfg.model.eval_stacks, inputs=inputs, path=f"{model_id}/{MODEL}", config=cfg,
        training_data=TrainingData.of(app.settings.data_dir / cfg.dataset, cfg.train_users)))
    return model_id
