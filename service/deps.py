"""What the routes declare, as `Annotated` dependencies: the settings, the task queue, each
store, and the records a path names (`ModelDep`, `JobDep`, `ExperimentDep`: a 404 problem
when there is none, from here only). Also the API key check."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from core.object_store import ObjectStore
from core.settings import Settings
from core.store import Stores
from core.store.answers import AnswerStore
from core.store.datasets import DatasetStore
from core.store.experiments import ExperimentStore
from core.store.idempotency import IdempotencyStore
from core.store.jobs import JobStore
from core.store.models import ModelRegistry
from core.store.records import Experiment, JobRecord, ModelRecord
from core.store.workers import WorkerRegistry
from core.tasks import TaskQueue
from service.errors import Problem


# The dependencies that do no I/O are `async def`: FastAPI runs a plain `def` one on a
# thread of its pool, a hand-over there and back for each, per request.
async def _settings(request: Request) -> Settings:
    return request.app.state.settings


async def _queue(request: Request) -> TaskQueue:
    return request.app.state.queue


async def _stores(request: Request) -> Stores:
    return request.app.state.stores


async def _model_store(request: Request) -> ObjectStore:
    return request.app.state.model_store


SettingsDep = Annotated[Settings, Depends(_settings)]
QueueDep = Annotated[TaskQueue, Depends(_queue)]
StoresDep = Annotated[Stores, Depends(_stores)]
ModelStoreDep = Annotated[ObjectStore, Depends(_model_store)]


def _store(name: str):
    async def get(stores: StoresDep):
        return getattr(stores, name)
    return Depends(get)


JobsDep = Annotated[JobStore, _store("jobs")]
ModelsDep = Annotated[ModelRegistry, _store("models")]
ExperimentsDep = Annotated[ExperimentStore, _store("experiments")]
AnswersDep = Annotated[AnswerStore, _store("answers")]
IdempotencyDep = Annotated[IdempotencyStore, _store("idempotency")]
WorkersDep = Annotated[WorkerRegistry, _store("workers")]
DatasetsDep = Annotated[DatasetStore, _store("datasets")]


def unknown_model(model_id: str, loc: list[str | int] | None = None) -> Problem:
    errors = [{"loc": loc, "msg": "not found"}] if loc else None
    return Problem(404, f"model '{model_id}' not found", kind="unknown-model", errors=errors)


def _model(model_id: str, models: ModelsDep) -> ModelRecord:
    model = models.get(model_id)
    if model is None:
        raise unknown_model(model_id)
    return model


def unknown_job(job_id: str) -> Problem:
    return Problem(404, f"job '{job_id}' not found (predict jobs expire)", kind="unknown-job")


def _job(job_id: str, jobs: JobsDep) -> JobRecord:
    job = jobs.get(job_id)
    if job is None:
        raise unknown_job(job_id)
    return job


def _experiment(exp_id: str, experiments: ExperimentsDep) -> Experiment:
    exp = experiments.get(exp_id)
    if exp is None:
        raise Problem(404, f"experiment '{exp_id}' not found", kind="unknown-experiment")
    return exp


ModelDep = Annotated[ModelRecord, Depends(_model)]
JobDep = Annotated[JobRecord, Depends(_job)]
ExperimentDep = Annotated[Experiment, Depends(_experiment)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With FPAR_API_KEYS set, a valid `Authorization: Bearer <key>` is required.
    Every key is compared, in constant time, so timing tells nothing about any of them."""
    if not settings.api_keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "this call needs an Authorization: Bearer <key> header",
                      headers={"WWW-Authenticate": "Bearer"})
    matches = [hmac.compare_digest(token.encode(), key.encode()) for key in settings.api_keys]
    if not any(matches):
        raise Problem(403, "the API key is not valid")
