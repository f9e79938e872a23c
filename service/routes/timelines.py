"""Timelines: a long video in (an upload streamed to disk, or a file under the data
directory), a job of kind `timeline` out; its segments as the annotation CSV or JSON, its
picture, and the video itself for the page that plays it beside the timeline."""
from __future__ import annotations

import mimetypes
from functools import partial
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse

from core.store.records import JobKind, JobRecord, JobStatus, new_id
from fpar_models.timeline.options import TimelineJob, TimelineOptions, TimelineRequest
from fpar_models.timeline.segments import annotation_csv
from service import timelines
from service.bodies import json_or_upload, source_path
from service.deps import JobDep, JobsDep, QueueDep, SettingsDep, StoresDep
from service.errors import Problem
from service.schemas import JobOut

router = APIRouter(tags=["timelines"])
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
FORMATS = {200: {"content": {"text/csv": {}, "application/json": {}}}}

UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/TimelineRequest"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["video"], "properties": {
        "video": {"type": "string", "format": "binary", "description": "a video of any length, streamed to "
                  "disk (FPAR_MAX_VIDEO_MB)"}},
        "additionalProperties": {"type": "string", "description": "any field of TimelineOptions"}}}}}}


@router.post("/timelines", status_code=202, response_model=JobOut, openapi_extra=UPLOAD_SCHEMA,
             summary="A timeline of actions over a long video: windows classified by a model, as a job")
async def create(request: Request, response: Response, settings: SettingsDep, stores: StoresDep, queue: QueueDep,
                 idempotency_key: Annotated[str | None, Header(description="retries return the same job")] = None
                 ) -> JobOut:
    job_id = new_id(JobKind.timeline)
    body, video = await json_or_upload(request, TimelineRequest, "video", upload_is="a video file",
                                       source_is="a video file")
    options = TimelineOptions.model_validate(body.model_dump(exclude={"source"}))
    if video is not None:
        return await run_in_threadpool(timelines.submit_upload, options, video, job_id, response, settings, stores,
                                       queue, idempotency_key)
    path = source_path(body.source, settings, folder=False)
    return await run_in_threadpool(partial(timelines.submit, key=idempotency_key), options, path, path.name, False,
                                   job_id, response, settings, stores, queue)


def _timeline(job: JobRecord) -> TimelineJob:
    if job.kind != JobKind.timeline:
        raise Problem(404, f"timeline job '{job.id}' not found", kind="unknown-job")
    return TimelineJob.model_validate(job.request)


def _succeeded(job: JobRecord) -> None:
    if job.status != JobStatus.succeeded:
        raise Problem(409, f"job '{job.id}' is {job.status}: its timeline is made when it succeeds",
                      kind="wrong-state")


@router.get("/jobs/{job_id}/timeline", response_class=Response, responses=FORMATS,
            summary="The segments as the annotation CSV POST /datasets ingests (video,label,start,end,user), or JSON")
def timeline_file(job: JobDep, format: Literal["csv", "json"] = "csv",
                  user: Annotated[str, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$",
                                             description="the CSV's user column")] = "u1") -> Response:
    plan = _timeline(job)
    _succeeded(job)
    segments = job.result["segments"]
    if format == "json":
        return JSONResponse({"video": plan.name, "model": job.result["model"], "segments": segments})
    stem = plan.name.rsplit(".", 1)[0]
    return Response(annotation_csv(segments, plan.name, user), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{stem}-timeline.csv"'})


@router.get("/jobs/{job_id}/timeline.png", response_class=Response, responses=PNG,
            summary="Segments coloured by class over time, the top class's probability beneath, thumbnails above")
def timeline_picture(job: JobDep, jobs: JobsDep) -> Response:
    _timeline(job)
    _succeeded(job)
    png = jobs.picture(job.id)
    if png is None:
        raise Problem(404, f"job '{job.id}' has no picture", kind="not-found")
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/jobs/{job_id}/video", response_class=FileResponse,
            responses={200: {"content": {"video/*": {}}, "description": "the video (range requests work)"}},
            summary="A timeline's video, when it is a file of the data directory (uploads are not kept)")
def timeline_video(job: JobDep, settings: SettingsDep) -> FileResponse:
    plan = _timeline(job)
    if plan.uploaded:
        raise Problem(404, f"job '{job.id}' was given an upload, which is removed when the job ends: play your "
                      "own copy", kind="not-found")
    try:
        path = settings.data.path(plan.video)  # (from an s3:// data store, fetched once)
    except FileNotFoundError:
        raise Problem(404, f"job '{job.id}''s video '{plan.video}' is no longer in the data directory",
                      kind="not-found") from None
    return FileResponse(path, media_type=mimetypes.guess_type(plan.name)[0] or "application/octet-stream")
