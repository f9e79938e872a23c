"""Idempotency-Key slots: the first request with a key reserves it for the job it creates
(records.IdempotencySlot); the gateway's service.idempotency decides what a retry gets."""
from __future__ import annotations

import redis

from core.store import keys
from core.store.records import IdempotencySlot


class IdempotencyStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def reserve(self, kind: str, key: str, slot: IdempotencySlot, ttl_s: int) -> bool:
        """True when no request used the key before (it is now this one's)."""
        return bool(self.r.set(keys.idempotency(kind, key), slot.model_dump_json(), nx=True, ex=ttl_s))

    def get(self, kind: str, key: str) -> IdempotencySlot | None:
        raw = self.r.get(keys.idempotency(kind, key))
        return IdempotencySlot.model_validate_json(raw) if raw else None

    def release(self, kind: str, key: str) -> None:
        self.r.delete(keys.idempotency(kind, key))
