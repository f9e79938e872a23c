from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from service.deps import StoreDep
from service.errors import Problem
from service.events import job_events
from service.routes.common import page_before
from service.schemas import JobList, JobOut

router = APIRouter(tags=["jobs"])


@router.get("/jobs", response_model=JobList, summary="Jobs, newest first")
def list_jobs(store: StoreDep, kind: Literal["train", "predict"] | None = None,
              status: Literal["queued", "running", "succeeded", "failed", "cancelled"] | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> JobList:
    jobs, more = store.list(kind=kind, status=status, limit=limit, before=page_before(cursor))
    return JobList(jobs=[JobOut.from_record(j) for j in jobs], next=repr(more) if more is not None else None)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job: status, progress, metrics, result")
def get_job(job_id: str, store: StoreDep) -> JobOut:
    job = store.get(job_id)
    if job is None:
        raise Problem(404, f"job '{job_id}' not found (predict jobs expire)", kind="unknown-job")
    return JobOut.from_record(job)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, status_code=202,
             summary="Cancel: queued jobs at once, running ones at their next batch")
def cancel_job(job_id: str, store: StoreDep) -> JobOut:
    outcome = store.cancel(job_id)
    if outcome == "missing":
        raise Problem(404, f"job '{job_id}' not found", kind="unknown-job")
    if outcome not in ("stopped", "requested"):
        raise Problem(409, f"job '{job_id}' already {outcome}", kind="wrong-state")
    return JobOut.from_record(store.get(job_id))


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response,
               summary="Forget an ended job: its record and its metrics (its model, if any, stays)")
def delete_job(job_id: str, store: StoreDep) -> Response:
    job = store.get(job_id, metrics=False)
    if job is None:
        raise Problem(404, f"job '{job_id}' not found", kind="unknown-job")
    if job.get("experiment"):
        raise Problem(409, f"job '{job_id}' is a run of experiment '{job['experiment']}', whose table needs it",
                      kind="wrong-state")
    outcome = store.delete(job_id)
    if outcome not in ("deleted", "missing"):
        raise Problem(409, f"job '{job_id}' is {outcome}: cancel it first", kind="wrong-state")
    return Response(status_code=204)


SSE = {200: {"content": {"text/event-stream": {}}, "description": "`status`, `progress` and `metrics` events "
             "(each `data:` one JSON object) until the job ends; `Last-Event-ID` resumes"}}


def event_stream(events) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse, responses=SSE,
            summary="The job's changes as server-sent events: status, progress, each epoch's metrics row")
def job_event_stream(job_id: str, store: StoreDep,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    if store.get(job_id, metrics=False) is None:
        raise Problem(404, f"job '{job_id}' not found (predict jobs expire)", kind="unknown-job")
    return event_stream(job_events(store, job_id, last_event_id))
