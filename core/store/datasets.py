"""Dataset names taken by ingest jobs, and how the workers of one ingest share its videos.

A name is taken at submit (SET NX semantics), so two ingests never write one dataset. An
ingest's videos are handed out by leases: a worker takes video i for a while (renewed as
it works), marks it done, and moves on; a lease whose worker died expires, and the next
worker to pass takes it again. The dataset is published under a lease of its own, by one worker.
"""
from __future__ import annotations

import time

import redis

from core.store import keys
from core.store.records import DatasetRecord


class DatasetStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    # -- names ------------------------------------------------------------------------------
    def take(self, name: str, job_id: str) -> bool:
        """Take the name for an ingest job; False when another job holds it."""
        key = keys.dataset(name)
        if self.r.hsetnx(key, "job", job_id):
            self.r.hset(key, mapping=DatasetRecord.hash_fields(name=name, created_at=time.time()))
            return True
        return (self.r.hget(key, "job") or b"").decode() == job_id

    def get(self, name: str) -> DatasetRecord | None:
        raw = self.r.hgetall(keys.dataset(name))
        return DatasetRecord.from_hash(raw) if raw and b"created_at" in raw else None

    def all(self) -> list[DatasetRecord]:
        names = [k.decode().removeprefix(keys.dataset("")) for k in self.r.scan_iter(keys.DATASETS, count=500)]
        found = [self.get(name) for name in names]
        return sorted((d for d in found if d is not None), key=lambda d: d.name)

    def forget(self, name: str, job_id: str | None = None) -> None:
        """Release the name (only if `job_id`, when given, still holds it)."""
        key = keys.dataset(name)
        if job_id is None or (self.r.hget(key, "job") or b"").decode() == job_id:
            self.r.delete(key)

    # -- one ingest's videos ------------------------------------------------------------------
    def lease(self, job_id: str, item: int, worker: str, ttl_s: float) -> bool:
        """Take (or renew, when ours) video `item` of the job for ttl_s."""
        key = keys.lease(job_id, item)
        if self.r.set(key, worker, nx=True, px=int(ttl_s * 1000)):
            return True
        if self.r.get(key) == worker.encode():
            self.r.pexpire(key, int(ttl_s * 1000))
            return True
        return False

    def release(self, job_id: str, item: int) -> None:
        self.r.delete(keys.lease(job_id, item))

    def mark_done(self, job_id: str, item: int) -> None:
        pipe = self.r.pipeline()
        pipe.sadd(keys.job(job_id).items, item)
        pipe.delete(keys.lease(job_id, item))
        pipe.execute()

    def done(self, job_id: str) -> set[int]:
        return {int(i) for i in self.r.smembers(keys.job(job_id).items)}
