"""Experiments: a grid of training configs x trials as one request, queued as ordinary
training jobs on every train worker, and summarised as the reports' tables."""
from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from core.store.records import ACTIVE, TERMINAL, ExperimentChild, ExperimentRecord, JobKind, new_experiment_id
from fpar_models.experiment import ExperimentRequest, GridError, columns, expand, render
from service.checks import check_queue_room, page_before, runnable
from service.deps import ExperimentDep, ExperimentsDep, JobsDep, ModelsDep, QueueDep, SettingsDep
from service.errors import Problem, field_error
from service.events import event_stream, experiment_events
from service.schemas import ExperimentList, ExperimentOut

router = APIRouter(tags=["experiments"])
MEDIA = {"csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8", "json": "application/json"}


@router.post("/experiments", status_code=202, response_model=ExperimentOut,
             summary="Queue a grid of training configs x trials; answers with the experiment")
def submit_experiment(body: ExperimentRequest, response: Response, settings: SettingsDep, jobs: JobsDep,
                      models: ModelsDep, experiments: ExperimentsDep, queue: QueueDep) -> ExperimentOut:
    try:
        children = expand(body, settings.max_experiment_jobs)
    except GridError as e:
        raise field_error(e.loc, str(e)) from None
    configs = [runnable({**child.body, "seed": child.config.seed}, child.config, models, settings)
               for child in children]
    check_queue_room(jobs, settings, JobKind.train, len(children))
    exp_id = new_experiment_id()
    records = []
    for child, cfg in zip(children, configs):
        job_id = jobs.create(JobKind.train, cfg.model_dump(mode="json"), warnings=cfg.start_warnings(),
                             experiment=exp_id)
        records.append(ExperimentChild(id=job_id, point=child.point, trial=child.trial, seed=cfg.seed))
    experiments.create(ExperimentRecord(id=exp_id, name=body.name, created_at=time.time(), base=body.base,
                                        grid=body.grid, points=body.points, trials=body.trials, children=records))
    answer = ExperimentOut.from_record(experiments.get(exp_id))  # as accepted: every child queued
    for record in records:
        queue.send(JobKind.train, record.id)
    response.headers["Location"] = f"/experiments/{exp_id}"
    return answer


@router.get("/experiments", response_model=ExperimentList, summary="Experiments, newest first")
def list_experiments(experiments: ExperimentsDep, limit: Annotated[int, Query(ge=1, le=100)] = 20,
                     cursor: str | None = None) -> ExperimentList:
    page, more = experiments.list(limit, page_before(cursor))
    return ExperimentList(experiments=[ExperimentOut.from_record(e) for e in page],
                          next=repr(more) if more is not None else None)


@router.get("/experiments/{exp_id}", response_model=ExperimentOut,
            summary="One experiment: status, its jobs, and the table (mean, std over trials per point)")
def get_experiment(exp: ExperimentDep) -> ExperimentOut:
    return ExperimentOut.from_record(exp)


@router.get("/experiments/{exp_id}/table", summary="The table in the reports' layout",
            responses={200: {"content": {m.split(";")[0]: {} for m in MEDIA.values()}}})
def experiment_table(exp: ExperimentDep, format: Literal["csv", "md", "json"] = "csv") -> Response:
    return Response(render(exp.table, columns(exp.points, exp.grid), format), media_type=MEDIA[format])


@router.post("/experiments/{exp_id}/cancel", status_code=202, response_model=ExperimentOut,
             summary="Cancel every job of the experiment that has not ended")
def cancel_experiment(exp: ExperimentDep, experiments: ExperimentsDep, jobs: JobsDep) -> ExperimentOut:
    if exp.status in TERMINAL:
        raise Problem(409, f"experiment '{exp.id}' already {exp.status}", kind="wrong-state")
    experiments.request_cancel(exp.id)
    for job in exp.jobs:
        if job.status in ACTIVE:
            jobs.cancel(job.id)
    return ExperimentOut.from_record(experiments.get(exp.id))


@router.get("/experiments/{exp_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "`status`, `job` (a child's "
                             "state) and `progress` events until every child has ended"}},
            summary="The experiment's changes as server-sent events")
def experiment_event_stream(exp: ExperimentDep, experiments: ExperimentsDep,
                            last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    return event_stream(experiment_events(experiments, exp.id, last_event_id))
