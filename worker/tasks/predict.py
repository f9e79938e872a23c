"""fpar.predict: a prediction, run together with any other queued ones for the same model,
so concurrent requests share one batched forward pass (dynamic batching)."""
from __future__ import annotations

import logging
import time

from core import tasks
from core.cpu import meter
from core.frames import unpack
from core.store.records import JobKind, JobStatus
from fpar_models.serving import Clip
from worker.app import app
from worker.jobs import claimed, failure, jobs, running

log = logging.getLogger("fpar.worker")
EXPIRED = {"type": "invalid_input", "message": "the uploaded frames expired before a worker got to them"}


@app.task(name=tasks.PREDICT)
def predict_job(job_id: str) -> None:
    with meter.stage("claim"):
        if not claimed(job_id):
            return
        model_id = jobs().predict_options(job_id)[0].model
        batch = [job_id] + gather(model_id, job_id)
    with running(*batch):
        run_predictions(model_id, batch)


def gather(model_id: str, own_id: str) -> list[str]:
    """Claim up to FPAR_PREDICT_MAX_BATCH - 1 other predictions for this model, waiting up
    to FPAR_PREDICT_MAX_WAIT_MS for them, but only while more predictions are queued:
    a request that is alone runs at once."""
    room = app.settings.predict_max_batch - 1
    deadline = time.monotonic() + app.settings.predict_max_wait_ms / 1000
    found: list[str] = []
    while len(found) < room:
        found += [other for other in jobs().take_pending(model_id, room - len(found))
                  if other != own_id and claimed(other, quiet=True)]
        if len(found) >= room or time.monotonic() >= deadline or jobs().queued_count(JobKind.predict) == 0:
            break
        time.sleep(0.001)
    return found


def run_predictions(model_id: str, job_ids: list[str]) -> None:
    batch, clips = [], []
    with meter.stage("fetch"):
        stopped = jobs().cancels_requested(*job_ids)
        for job_id, blob, options in zip(job_ids, jobs().get_frames(*job_ids), jobs().predict_options(*job_ids)):
            if job_id in stopped:  # cancelled while it waited for its batch
                jobs().finish(job_id, JobStatus.cancelled)
            elif blob is None or options is None:
                jobs().finish(job_id, JobStatus.failed, error=EXPIRED)
            else:
                arrays = unpack(blob)
                clips.append(Clip(arrays.get("rgb"), arrays.get("flow"), options.top_k, options.explain))
                batch.append(job_id)
    if not batch:
        return
    try:
        start = time.perf_counter()
        predictor = app.models.get(model_id)
        elsewhere = predictor.cpu_elsewhere_s
        with meter.stage("model", whole_process=True):
            answers = predictor.predict(clips)
        meter.add("model elsewhere", predictor.cpu_elsewhere_s - elsewhere)  # not in this process's own CPU
        log.info("model %s: %d prediction(s) in one batch, %.1f ms", model_id, len(clips),
                 1000 * (time.perf_counter() - start))
    except Exception as e:
        log.exception("predictions %s failed", batch)
        for job_id in batch:
            jobs().finish(job_id, JobStatus.failed, error=failure(e))
        return
    with meter.stage("finish"):
        stopped = jobs().cancels_requested(*batch)  # a cancel that came during the batch takes effect at its end
        for job_id, answer in zip(batch, answers):
            if job_id in stopped:
                jobs().finish(job_id, JobStatus.cancelled)
            else:
                jobs().finish(job_id, JobStatus.succeeded, result={"model": model_id, **answer},
                              batch_size=len(batch))
