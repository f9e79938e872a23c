"""The two tasks. Each first claims its job atomically (queued -> running, or a running
job whose worker died), so a redelivered or duplicated message never runs a job twice
at once, and a cancelled job never starts."""
from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

from fpar_models import checkpoint
from fpar_models.analysis import NoPicture, cam_picture, confusion_matrix, heads_picture, video_batch
from fpar_models.config import TrainConfig
from fpar_models.data.gtea61 import DatasetError
from fpar_models.models import motion_map_grid
from fpar_models.serving import Clip, export
from fpar_models.train import LAST, METRICS, MODEL, Callbacks, Cancelled, TrainResult, train
from service.analyses import Analyses
from service.arrays import unpack
from worker.app import WORKER, app, settings, store
from worker.model_cache import ModelCache

log = logging.getLogger("fpar.worker")
MODELS = ModelCache(store, settings)
HEARTBEAT_S = 5.0


@contextmanager
def running(*job_ids: str):
    """Keeps the jobs' heartbeats fresh while they run, so the reaper leaves them alone."""
    done = threading.Event()

    def beat():
        while not done.wait(HEARTBEAT_S):
            for job_id in job_ids:
                try:
                    store.heartbeat(job_id)
                except Exception:
                    log.warning("heartbeat for %s failed", job_id, exc_info=True)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def claimed(job_id: str, *, quiet: bool = False) -> bool:
    outcome = store.claim(job_id, WORKER["name"], settings.heartbeat_timeout_s)
    if outcome != "ok" and not quiet:
        log.info("job %s not run: %s", job_id, outcome)
    return outcome == "ok"


def failure(exc: Exception) -> dict:
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return {"type": "disk_full", "message": exc.strerror or str(exc)}
    if isinstance(exc, DatasetError):
        return {"type": "dataset_error", "message": str(exc)}
    if isinstance(exc, (ValueError, FileNotFoundError, KeyError)):
        return {"type": "invalid_input", "message": str(exc).strip("'\"")}
    return {"type": "internal_error", "message": f"{type(exc).__name__}: {exc}"}


@app.task(name="fpar.train")
def train_job(job_id: str) -> None:
    if not claimed(job_id):
        return
    job = store.get(job_id, metrics=False)
    cfg = TrainConfig.model_validate(job["request"])
    out = settings.runs_dir / job_id
    if (out / LAST).exists():  # a rerun after a lost worker resumes from its last epoch
        history = checkpoint.load(out / LAST, checkpoint.TRAINING_FORMAT)["state"]["history"]
        store.reset_metrics(job_id, history)
        log.info("job %s resumes after epoch %d", job_id, len(history))
    last_progress = [0.0]

    def progress(p: dict) -> None:
        now = time.monotonic()
        if now - last_progress[0] > 0.5 or p["fraction"] >= 1:
            last_progress[0] = now
            store.set_progress(job_id, p)

    callbacks = Callbacks(on_progress=progress, on_epoch=lambda row: store.add_metrics(job_id, row),
                          should_stop=lambda: store.cancel_requested(job_id))
    with running(job_id):
        try:
            result = train(cfg, settings.data_dir, out, callbacks=callbacks, compute=MODELS.compute,
                           resolve_model=model_path)
            model_id = register(job_id, cfg, out, result)
        except Cancelled:
            store.finish(job_id, "cancelled")
            return
        except Exception as e:
            log.exception("training job %s failed", job_id)
            store.finish(job_id, "failed", error=failure(e))
            return
    store.finish(job_id, "succeeded", result={"model": model_id, "best_val_acc": result.best_val_acc,
                                              "test_acc": result.test_acc})
    shutil.rmtree(out, ignore_errors=True)  # checkpoints served their purpose; the model is registered


def model_path(ref: str) -> Path:
    meta = store.get_model(ref)
    if meta is None:
        raise KeyError(f"model '{ref}' is not registered")
    return settings.model_dir / meta["path"]


def register(job_id: str, cfg: TrainConfig, out: Path, result: TrainResult) -> str:
    """Move the trained model into the model store and list it in Redis (idempotent)."""
    model_id = f"m_{job_id[3:]}"
    folder = settings.model_dir / model_id
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{MODEL}.tmp"
    shutil.copyfile(out / MODEL, tmp)
    tmp.replace(folder / MODEL)
    shutil.copyfile(out / METRICS, folder / METRICS)
    inputs = [name for name, used in (("rgb", cfg.uses_rgb), ("flow", cfg.uses_flow)) if used]
    store.add_model({"id": model_id, "arch": cfg.model.arch, "preset": cfg.preset, "classes": result.classes,
                     "best_val_acc": result.best_val_acc, "test_acc": result.test_acc, "job_id": job_id,
                     "created_at": time.time(), "frames": cfg.frames, "image_size": cfg.image_size,
                     "stack_size": cfg.model.stack_size, "eval_stacks": cfg.model.eval_stacks, "inputs": inputs,
                     "path": f"{model_id}/{MODEL}", "config": cfg.model_dump(mode="json")})
    return model_id


@app.task(name="fpar.predict")
def predict_job(job_id: str) -> None:
    """Runs this prediction together with any other queued ones for the same model:
    concurrent requests share one batched forward pass (dynamic batching)."""
    if not claimed(job_id):
        return
    model_id = store.requests(job_id)[0]["model"]
    batch = [job_id] + gather(model_id, job_id)
    with running(*batch):
        run_predictions(model_id, batch)


def gather(model_id: str, own_id: str) -> list[str]:
    """Claim up to FPAR_PREDICT_MAX_BATCH - 1 other predictions for this model, waiting up
    to FPAR_PREDICT_MAX_WAIT_MS for them, but only while more predictions are queued:
    a request that is alone runs at once."""
    room = settings.predict_max_batch - 1
    deadline = time.monotonic() + settings.predict_max_wait_ms / 1000
    found: list[str] = []
    while len(found) < room:
        found += [other for other in store.take_pending(model_id, room - len(found))
                  if other != own_id and claimed(other, quiet=True)]
        if len(found) >= room or time.monotonic() >= deadline or store.queued_count("predict") == 0:
            break
        time.sleep(0.001)
    return found


def run_predictions(model_id: str, job_ids: list[str]) -> None:
    jobs, clips = [], []
    stopped = store.cancels_requested(*job_ids)
    for job_id, blob, options in zip(job_ids, store.get_frames(*job_ids), store.requests(*job_ids)):
        if job_id in stopped:  # cancelled while it waited for its batch
            store.finish(job_id, "cancelled")
            continue
        if blob is None or options is None:
            store.finish(job_id, "failed", error={"type": "invalid_input", "message":
                                                   "the uploaded frames expired before a worker got to them"})
            continue
        arrays = unpack(blob)
        clips.append(Clip(arrays.get("rgb"), arrays.get("flow"), options["top_k"], options["explain"]))
        jobs.append(job_id)
    if not jobs:
        return
    try:
        start = time.perf_counter()
        answers = MODELS.get(model_id).predict(clips)
        log.info("model %s: %d prediction(s) in one batch, %.1f ms", model_id, len(clips),
                 1000 * (time.perf_counter() - start))
    except Exception as e:
        log.exception("predictions %s failed", jobs)
        for job_id in jobs:
            store.finish(job_id, "failed", error=failure(e))
        return
    stopped = store.cancels_requested(*jobs)  # a cancel that came during the batch takes effect at its end
    for job_id, answer in zip(jobs, answers):
        if job_id in stopped:
            store.finish(job_id, "cancelled")
        else:
            store.finish(job_id, "succeeded", result={"model": model_id, **answer}, batch_size=len(jobs))


@app.task(name="fpar.analyse")
def analyse(key: str, model_id: str, kind: str, video: str | None = None) -> None:
    """A model's confusion matrix ('confusion'), CAM grid ('cam') or head pictures ('heads')
    on its dataset; the answer goes to Redis for the waiting gateway."""
    answers = Analyses(store.r)
    try:
        media, body = analysis(model_id, kind, video)
    except NoPicture as e:
        answers.fail(key, 404, str(e))
    except (LookupError, DatasetError, FileNotFoundError) as e:
        answers.fail(key, 404, str(e).strip("'\""))
    except Exception as e:  # never leave the gateway waiting on a crash
        log.exception("analysis %s of model %s failed", kind, model_id)
        answers.fail(key, 500, f"the {kind} of model '{model_id}' failed: {type(e).__name__}: {e}")
    else:
        answers.succeed(key, media, body)


def analysis(model_id: str, kind: str, video: str | None) -> tuple[str, bytes]:
    """Computed once per model and kept beside it in the model store."""
    if kind.startswith("export-"):
        return "application/json", json.dumps({"file": export_artefact(model_id, kind.split("-", 1)[1])}).encode()
    media, suffix = ("application/json", "json") if kind == "confusion" else ("image/png", "png")
    name = f"{kind}-{video.replace('/', '_')}" if video else kind
    path = settings.model_dir / model_id / "analysis" / f"{name}.{suffix}"
    if path.exists():
        return media, path.read_bytes()
    predictor = MODELS.get(model_id)
    cfg, classes = predictor.config, predictor.classes
    if kind == "confusion":
        matrix = confusion_matrix(predictor.model, cfg, classes, settings.data_dir, MODELS.compute)
        body = json.dumps({"classes": classes, "matrix": matrix.tolist()}).encode()
    else:
        batch = video_batch(cfg, classes, settings.data_dir, video,
                            maps=kind == "heads" and motion_map_grid(cfg) is not None)
        draw = cam_picture if kind == "cam" else heads_picture
        body = draw(predictor.model, cfg, classes, batch, MODELS.compute, f"{model_id} ({cfg.preset}): {video}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(body)
    tmp.replace(path)
    return media, body


def export_artefact(model_id: str, fmt: str) -> str:
    """The model as a deployable zip in the model store; its path relative to the store
    (the gateway streams it from there)."""
    relative = f"{model_id}/export/{fmt}.zip"
    if not (settings.model_dir / relative).exists():
        predictor = MODELS.get(model_id)
        export.build(predictor.model, predictor.config, predictor.classes, fmt, settings.model_dir / relative,
                     model_id)
    return relative
