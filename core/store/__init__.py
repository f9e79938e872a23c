"""Redis, the one source of truth for jobs, models and experiments: the key map (keys), the
typed records (records), and one small store per record over one shared client.

    stores = Stores.connect(settings.redis_url, predict_ttl_s=...)
    stores.jobs.create("train", cfg.model_dump(mode="json"))
"""
from __future__ import annotations

from dataclasses import dataclass

import redis

from core.store.answers import AnswerStore
from core.store.datasets import DatasetStore
from core.store.experiments import ExperimentStore
from core.store.idempotency import IdempotencyStore
from core.store.jobs import JobStore
from core.store.models import ModelRegistry
from core.store.predictions import PredictQueue
from core.store.shares import Shares
from core.store.workers import WorkerRegistry


def connect(url: str, *, socket_timeout_s: float = 90) -> redis.Redis:
    """Connections fail fast when Redis is down (3 s) and wait long enough on a blocking
    read (a predict `wait`) when it is up."""
    return redis.Redis.from_url(url, decode_responses=False, socket_timeout=socket_timeout_s,
                                socket_connect_timeout=3, health_check_interval=15)


@dataclass(frozen=True)
class Stores:
    client: redis.Redis
    jobs: JobStore
    models: ModelRegistry
    experiments: ExperimentStore
    answers: AnswerStore
    idempotency: IdempotencyStore
    workers: WorkerRegistry
    datasets: DatasetStore
    shares: Shares
    predictions: PredictQueue

    @classmethod
    def over(cls, client: redis.Redis, *, predict_ttl_s: int = 3600) -> Stores:
        return cls(client, JobStore(client, predict_ttl_s=predict_ttl_s), ModelRegistry(client),
                   ExperimentStore(client), AnswerStore(client), IdempotencyStore(client), WorkerRegistry(client),
                   DatasetStore(client), Shares(client), PredictQueue(client))

    @classmethod
    def connect(cls, url: str, *, predict_ttl_s: int = 3600, socket_timeout_s: float = 90) -> Stores:
        return cls.over(connect(url, socket_timeout_s=socket_timeout_s), predict_ttl_s=predict_ttl_s)
