"""Dataset names taken by ingest jobs. A name is taken at submit (SET NX semantics), so
two ingests never write one dataset. (How an ingest's workers share its videos: core.store.shares.)
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
