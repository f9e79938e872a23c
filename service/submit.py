"""Accepting work: the job is written as `queued` before its task is sent, so neither a
client nor a worker ever meets an unknown id, and the answer shows the job as accepted
(queued), however fast a worker is."""
from __future__ import annotations

import numpy as np
from fastapi import Response

from core.frames import pack
from core.settings import Settings
from core.store.jobs import JobStore
from core.store.records import JobKind, PredictOptions
from core.tasks import TaskQueue
from service.checks import check_queue_room
from service.schemas import JobOut


def accepted(jobs: JobStore, job_id: str, response: Response) -> JobOut:
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobOut.from_record(jobs.get(job_id))


def enqueue_prediction(jobs: JobStore, queue: TaskQueue, settings: Settings, job_id: str, options: PredictOptions,
                       arrays: dict[str, np.ndarray], response: Response | None) -> JobOut | None:
    """Store the prepared inputs, write the job, answer it as accepted (when a response is
    given), send it."""
    check_queue_room(jobs, settings, JobKind.predict)
    jobs.put_frames(job_id, pack(arrays))
    jobs.create(JobKind.predict, options.model_dump(exclude_none=True), job_id=job_id)
    answer = accepted(jobs, job_id, response) if response is not None else None
    queue.send(JobKind.predict, job_id)
    return answer
