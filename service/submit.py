"""Accepting work: the job is written as `queued` before its task is sent, so neither a
client nor a worker ever meets an unknown id, and the answer shows the job as accepted
(queued), however fast a worker is."""
from __future__ import annotations

import numpy as np
from fastapi import Response

from core.frames import open_frames
from core.settings import Settings
from core.store.jobs import JobStore
from core.store.records import JobKind, JobRecord, PredictOptions
from service.checks import check_queue_room
from service.errors import Problem
from service.schemas import JobOut


def accepted(jobs: JobStore, job_id: str, response: Response) -> JobOut:
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobOut.from_record(jobs.get(job_id))


def job_response(job: JobRecord, status: int) -> Response:
    """The job as JSON, serialised once, for the routes that answer many small requests
    (FastAPI would validate a returned JobOut again and encode it twice: ~0.2 ms a request)."""
    return Response(JobOut.from_record(job).model_dump_json(), status, {"Location": f"/jobs/{job.id}"},
                    media_type="application/json")


def enqueue_prediction(jobs: JobStore, settings: Settings, job_id: str, options: PredictOptions,
                       arrays: dict[str, np.ndarray]) -> JobRecord:
    """Spool the prepared inputs, then write the job into the predict queue (one
    transaction: no task to send); the job as queued."""
    check_queue_room(jobs, settings, JobKind.predict)
    spool = open_frames(settings, jobs.r)
    try:
        spool.put(job_id, arrays)
    except OSError as e:  # a full or read-only data volume: the service cannot take predictions now
        raise Problem(503, f"the frames could not be spooled ({e.strerror or e}): try again later",
                      kind="unavailable", headers={"Retry-After": "30"}) from None
    try:
        return jobs.create_prediction(options.model_dump(exclude_none=True), job_id)
    except Exception:
        spool.remove(job_id)
        raise
