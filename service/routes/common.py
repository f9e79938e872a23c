from __future__ import annotations

import math

from fastapi import Response

from service.errors import Problem, field_error
from service.jobs import JobStore
from service.schemas import JobOut
from service.settings import Settings


def job_response(store: JobStore, job_id: str, response: Response) -> JobOut:
    response.headers["Location"] = f"/jobs/{job_id}"
    return JobOut.from_record(store.get(job_id))


def check_queue_room(store: JobStore, settings: Settings, kind: str) -> None:
    """With FPAR_QUEUE_LIMIT set, refuse work beyond it rather than queue without bound."""
    if settings.queue_limit and store.queued_count(kind) >= settings.queue_limit:
        raise Problem(429, f"the {kind} queue is full ({settings.queue_limit} jobs waiting); retry later",
                      kind="queue-full", headers={"Retry-After": "2" if kind == "predict" else "30"})


def page_before(cursor: str | None) -> float | None:
    """A listing's `cursor` (the `next` of the previous page): list what was created before it."""
    if cursor is None:
        return None
    try:
        before = float(cursor)
    except ValueError:
        before = math.nan
    if not math.isfinite(before):  # nan or inf would reach Redis as a score it refuses
        raise field_error(["query", "cursor"], "not a cursor returned by this endpoint")
    return before
