"""Jobs: the listing, one job, cancelling, forgetting, and its live event stream."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from core.store.records import JobKind, JobStatus
from service.checks import page_before
from service.deps import JobDep, JobsDep, SettingsDep, unknown_job
from service.errors import Problem
from service.events import event_stream, job_events
from service.schemas import JobList, JobOut
from service.timelines import remove_upload

router = APIRouter(tags=["jobs"])


@router.get("/jobs", response_model=JobList, summary="Jobs, newest first")
def list_jobs(jobs: JobsDep, kind: JobKind | None = None, status: JobStatus | None = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50, cursor: str | None = None) -> JobList:
    page, more = jobs.list(kind=kind, status=status, limit=limit, before=page_before(cursor))
    return JobList(jobs=[JobOut.from_record(j) for j in page], next=repr(more) if more is not None else None)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job: status, progress, metrics, result")
def get_job(job: JobDep) -> JobOut:
    return JobOut.from_record(job)


@router.post("/jobs/{job_id}/cancel", response_model=JobOut, status_code=202,
             summary="Cancel: queued jobs at once, running ones at their next batch")
def cancel_job(job: JobDep, jobs: JobsDep, settings: SettingsDep) -> JobOut:
    outcome = jobs.cancel(job.id)
    if outcome == "missing":  # deleted meanwhile
        raise unknown_job(job.id)
    if outcome not in ("stopped", "requested"):
        raise Problem(409, f"job '{job.id}' already {outcome}", kind="wrong-state")
    if outcome == "stopped" and job.kind == JobKind.timeline:
        remove_upload(settings, job.id)  # no worker had it: nobody else would
    return JobOut.from_record(jobs.get(job.id))


@router.delete("/jobs/{job_id}", status_code=204, response_class=Response,
               summary="Forget an ended job: its record and its metrics (its model, if any, stays)")
def delete_job(job: JobDep, jobs: JobsDep, settings: SettingsDep) -> Response:
    if job.experiment:
        raise Problem(409, f"job '{job.id}' is a run of experiment '{job.experiment}', whose table needs it",
                      kind="wrong-state")
    outcome = jobs.delete(job.id)
    if outcome not in ("deleted", "missing"):
        raise Problem(409, f"job '{job.id}' is {outcome}: cancel it first", kind="wrong-state")
    if job.kind == JobKind.timeline:
        remove_upload(settings, job.id)
    return Response(status_code=204)


SSE = {200: {"content": {"text/event-stream": {}}, "description": "`status`, `progress`, `metrics` (trainings) "
             "and `window` (timelines) events "
             "(each `data:` one JSON object) until the job ends; `Last-Event-ID` resumes"}}


@router.get("/jobs/{job_id}/events", response_class=StreamingResponse, responses=SSE,
            summary="The job's changes as server-sent events: status, progress, each epoch's metrics row")
def job_event_stream(job: JobDep, jobs: JobsDep,
                     last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    return event_stream(job_events(jobs, job.id, last_event_id))
