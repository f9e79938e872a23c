"""Experiments: a grid of training configs x trials as one request, queued as ordinary
training jobs on every train worker, and summarised as the reports' tables. Children that
agree on their first stages start from one run of them, a shared stage (plan_shares)."""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse

from core import search
from core.settings import Settings
from core.store.experiments import ExperimentStore
from core.store.jobs import JobStore
from core.store.records import (
    ACTIVE,
    TERMINAL,
    ExperimentChild,
    ExperimentRecord,
    JobKind,
    SharedStage,
    model_id_of,
    new_experiment_id,
    new_id,
)
from fpar_models.config import TrainConfig
from fpar_models.experiment import (
    Child,
    ExperimentRequest,
    GridError,
    Share,
    check_search,
    columns,
    epochs_of,
    expand,
    plan,
    render,
)
from fpar_models.presets import resolve_config
from service import idempotency
from service.checks import check_queue_room, page_before, runnable
from service.deps import (
    ExperimentDep,
    ExperimentsDep,
    IdempotencyDep,
    JobsDep,
    ModelsDep,
    QueueDep,
    SettingsDep,
    StoresDep,
)
from service.errors import Problem, field_error
from service.events import event_stream, experiment_events
from service.schemas import ExperimentList, ExperimentOut

router = APIRouter(tags=["experiments"])
MEDIA = {"csv": "text/csv; charset=utf-8", "md": "text/markdown; charset=utf-8", "json": "application/json"}


@router.post("/experiments", status_code=202, response_model=ExperimentOut,
             summary="Queue a grid of training configs x trials; answers with the experiment")
def submit_experiment(body: ExperimentRequest, response: Response, settings: SettingsDep, stores: StoresDep,
                      models: ModelsDep, slots: IdempotencyDep, queue: QueueDep,
                      idempotency_key: Annotated[str | None, Header(description="retries return the same "
                                                                    "experiment")] = None) -> ExperimentOut:
    jobs, experiments = stores.jobs, stores.experiments
    try:
        children = [] if body.search else expand(body, settings.max_experiment_jobs)
        first = check_search(body, settings.max_experiment_jobs) if body.search else []
    except GridError as e:
        raise field_error(e.loc, str(e)) from None
    configs = [runnable({**child.body, "seed": child.config.seed}, child.config, models, settings)
               for child in children]
    if body.search:
        base = runnable(body.base, resolve_config(body.base), models, settings)
        check_queue_room(jobs, settings, JobKind.train, min(body.search.parallel, body.search.trials))
    exp_id = new_experiment_id()
    fingerprint = idempotency.fingerprint(body.model_dump(mode="json"))
    prior = idempotency.claim(slots, experiments, "experiment", idempotency_key, fingerprint, exp_id, 24 * 3600)
    if prior:
        response.headers["Location"] = f"/experiments/{prior}"
        return ExperimentOut.from_record(experiments.get(prior))
    try:
        if body.search:  # its first trials are queued as it starts
            at_most = body.search.trials * epochs_of(base)
            search.start(stores, queue, settings.redis_url, ExperimentRecord(
                id=exp_id, name=body.name, created_at=time.time(), base=body.base, grid=body.grid, points=body.points,
                trials=1, children=[], search=body.search, naive_epochs=at_most, planned_epochs=at_most), first)
            ready = []
        else:
            ready = write_experiment(exp_id, body, children, configs, settings, jobs, experiments)
        answer = ExperimentOut.from_record(experiments.get(exp_id))  # as accepted: its jobs queued
        for job_id in ready:
            queue.send(JobKind.train, job_id)
    except Exception:
        idempotency.release(slots, "experiment", idempotency_key)
        raise
    response.headers["Location"] = f"/experiments/{exp_id}"
    return answer


def write_experiment(exp_id: str, body: ExperimentRequest, children: list[Child], configs: list[TrainConfig],
                     settings: Settings, jobs: JobStore, experiments: ExperimentStore) -> list[str]:
    """Write every job as queued (a shared stage's dependants waiting for it), then the
    experiment. Returns the jobs to send now: those that wait for nothing."""
    ids: dict[Share | int | None, str | None] = defaultdict(lambda: new_id(JobKind.train), {None: None})
    trainings = plan(configs, lambda share: model_id_of(ids[share]), body.share)
    check_queue_room(jobs, settings, JobKind.train, len(children) + len(trainings.shares))
    shared = [SharedStage(id=ids[share], stages=share.stages, after=ids[share.after],
                          dependants=[ids[d] for d in share.dependants]) for share in trainings.shares]
    records = [ExperimentChild(id=ids[i], point=child.point, trial=child.trial, seed=child.config.seed,
                               after=ids[start]) for i, (child, start) in enumerate(zip(children, trainings.starts))]
    for job, cfg in zip((*shared, *records), (*trainings.shared, *trainings.children)):  # shares parents first
        jobs.create(JobKind.train, cfg.model_dump(mode="json"), warnings=cfg.start_warnings(), job_id=job.id,
                    experiment=exp_id, after=job.after)
    experiments.create(ExperimentRecord(id=exp_id, name=body.name, created_at=time.time(), base=body.base,
                                        grid=body.grid, points=body.points, trials=body.trials, children=records,
                                        shared=shared, naive_epochs=sum(map(epochs_of, configs)),
                                        planned_epochs=trainings.epochs))
    return [job.id for job in (*shared, *records) if job.after is None]


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
    return Response(render(exp.table, columns(exp.points, exp.grid, exp.search), format), media_type=MEDIA[format])


@router.post("/experiments/{exp_id}/cancel", status_code=202, response_model=ExperimentOut,
             summary="Cancel every job of the experiment that has not ended")
def cancel_experiment(exp: ExperimentDep, experiments: ExperimentsDep, jobs: JobsDep) -> ExperimentOut:
    if exp.status in TERMINAL:
        raise Problem(409, f"experiment '{exp.id}' already {exp.status}", kind="wrong-state")
    experiments.request_cancel(exp.id)
    for job in (*exp.shared, *exp.jobs):
        if job.status in ACTIVE:
            jobs.cancel(job.id)
    return ExperimentOut.from_record(experiments.get(exp.id))


@router.get("/experiments/{exp_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "`status`, `job` (a child's "
                             "state), `shared` (a shared stage's) and `progress` events until every job has "
                             "ended"}},
            summary="The experiment's changes as server-sent events")
def experiment_event_stream(exp: ExperimentDep, experiments: ExperimentsDep,
                            last_event_id: Annotated[str | None, Header()] = None) -> StreamingResponse:
    return event_stream(experiment_events(experiments, exp.id, last_event_id))
