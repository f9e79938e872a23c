"""Experiments: a grid of training configs x trials as one request, queued as ordinary
training jobs on every train worker, and summarised as the reports' tables."""
from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from fpar_models.experiment import ExperimentRequest, GridError, columns, expand, render
from service.deps import QueueDep, SettingsDep, StoreDep
from service.errors import Problem, field_error
from service.events import experiment_events
from service.experiments import ExperimentStore, new_experiment_id
from service.jobs import new_id
from service.routes.common import page_before
from service.routes.jobs import event_stream
from service.routes.train import runnable
from service.schemas import ExperimentList, ExperimentOut

router = APIRouter(tags=["experiments"])
MEDIA = {"csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8", "json": "application/json"}


def experiments(request: Request) -> ExperimentStore:
    return ExperimentStore(request.app.state.store.r)


def _get(request: Request, exp_id: str) -> dict:
    exp = experiments(request).get(exp_id)
    if exp is None:
        raise Problem(404, f"experiment '{exp_id}' not found", kind="unknown-experiment")
    return exp


@router.post("/experiments", status_code=202, response_model=ExperimentOut,
             summary="Queue a grid of training configs x trials; answers with the experiment")
def submit_experiment(body: ExperimentRequest, request: Request, response: Response, settings: SettingsDep,
                      store: StoreDep, queue: QueueDep) -> ExperimentOut:
    try:
        children = expand(body, settings.max_experiment_jobs)
    except GridError as e:
        raise field_error(e.loc, str(e)) from None
    configs = [runnable({**child.body, "seed": child.config.seed}, child.config, store, settings)
               for child in children]
    if settings.queue_limit and store.queued_count("train") + len(children) > settings.queue_limit:
        raise Problem(429, f"{len(children)} training jobs do not fit in the train queue "
                      f"(FPAR_QUEUE_LIMIT {settings.queue_limit}); retry later", kind="queue-full",
                      headers={"Retry-After": "60"})
    exp_id = new_experiment_id()
    records = []
    for child, cfg in zip(children, configs):
        job_id = store.create("train", cfg.model_dump(mode="json"), warnings=cfg.start_warnings(),
                              job_id=new_id("train"), experiment=exp_id)
        records.append({"id": job_id, "point": child.point, "trial": child.trial, "seed": cfg.seed})
    experiments(request).create(exp_id, body.name, body.base, body.grid, body.points, body.trials, records)
    accepted = ExperimentOut.from_record(_get(request, exp_id))  # as accepted: every child queued
    for record in records:
        queue.send("train", record["id"])
    response.headers["Location"] = f"/experiments/{exp_id}"
    return accepted


@router.get("/experiments", response_model=ExperimentList, summary="Experiments, newest first")
def list_experiments(request: Request, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                     cursor: str | None = None) -> ExperimentList:
    page, more = experiments(request).list(limit, page_before(cursor))
    return ExperimentList(experiments=[ExperimentOut.from_record(e) for e in page],
                          next=repr(more) if more is not None else None)


@router.get("/experiments/{exp_id}", response_model=ExperimentOut,
            summary="One experiment: status, its jobs, and the table (mean, std over trials per point)")
def get_experiment(exp_id: str, request: Request) -> ExperimentOut:
    return ExperimentOut.from_record(_get(request, exp_id))


@router.get("/experiments/{exp_id}/table", summary="The table in the reports' layout",
            responses={200: {"content": {m.split(";")[0]: {} for m in MEDIA.values()}}})
def experiment_table(exp_id: str, request: Request, format: Literal["csv", "md", "json"] = "csv") -> Response:
    exp = _get(request, exp_id)
    return Response(render(exp["table"], columns(exp["points"], exp["grid"]), format), media_type=MEDIA[format])


@router.post("/experiments/{exp_id}/cancel", status_code=202, response_model=ExperimentOut,
             summary="Cancel every job of the experiment that has not ended")
def cancel_experiment(exp_id: str, request: Request, store: StoreDep) -> ExperimentOut:
    exp = _get(request, exp_id)
    if exp["status"] in ("succeeded", "failed", "cancelled"):
        raise Problem(409, f"experiment '{exp_id}' already {exp['status']}", kind="wrong-state")
    experiments(request).request_cancel(exp_id)
    for job in exp["jobs"]:
        if job["status"] in ("queued", "running"):
            store.cancel(job["id"])
    return ExperimentOut.from_record(_get(request, exp_id))


@router.get("/experiments/{exp_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "`status`, `job` (a child's "
                             "state) and `progress` events until every child has ended"}},
            summary="The experiment's changes as server-sent events")
def experiment_event_stream(exp_id: str, request: Request,
                            last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    _get(request, exp_id)
    return event_stream(experiment_events(experiments(request), exp_id, last_event_id))
