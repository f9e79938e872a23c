"""Live workers: each sends a heartbeat that expires, so a dead worker drops out by itself
(records.WorkerRecord)."""
from __future__ import annotations

import redis

from core.store import keys
from core.store.records import WorkerRecord

HEARTBEAT_TTL_S = 15


class WorkerRegistry:
    def __init__(self, client: redis.Redis):
        self.r = client

    def alive(self, worker: WorkerRecord, ttl_s: int = HEARTBEAT_TTL_S) -> None:
        self.r.set(keys.worker(worker.name), worker.model_dump_json(), ex=ttl_s)

    def gone(self, name: str) -> None:
        self.r.delete(keys.worker(name))

    def live(self) -> list[WorkerRecord]:
        found = list(self.r.scan_iter(keys.WORKERS, count=100))
        return [WorkerRecord.model_validate_json(v) for v in self.r.mget(found) if v] if found else []

    def serving(self) -> dict[str, list[dict]]:
        """model id -> how each live predict worker serves it (from the heartbeats)."""
        found: dict[str, list[dict]] = {}
        for worker in self.live():
            for model_id, choice in worker.models.items():
                found.setdefault(model_id, []).append({"worker": worker.name, **choice})
        return found
