"""Idempotency-Key: a client that retries a POST (after a timeout, say) gets the job its
first attempt created, not a second one. The same key with another request is a 422."""
from __future__ import annotations

import hashlib
import json
import re
import time
from typing import Any, Protocol

from core.store.idempotency import IdempotencyStore
from core.store.records import IdempotencySlot
from service.errors import field_error

_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


def fingerprint(*parts: Any) -> str:
    digest = hashlib.sha256()
    for part in parts:
        data = part if isinstance(part, bytes) else json.dumps(part, sort_keys=True, default=str).encode()
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


class Records(Protocol):
    """Where what a request creates is kept: the job store, the experiment store."""
    def exists(self, record_id: str) -> bool: ...


def claim(slots: IdempotencyStore, records: Records, kind: str, key: str | None, request_fingerprint: str,
          job_id: str, ttl_s: int) -> str | None:
    """None when this request is the first with `key` (go on and create `job_id`, a job's
    or an experiment's id), else the id of the one the first request created."""
    if key is None:
        return None
    if not _KEY.match(key):
        raise field_error(["header", "Idempotency-Key"], "1 to 255 visible ASCII characters")
    for _ in range(2):
        if slots.reserve(kind, key, IdempotencySlot(job=job_id, fingerprint=request_fingerprint), ttl_s):
            return None
        prior = slots.get(kind, key)
        if prior is None:
            continue  # expired between the two calls
        if prior.fingerprint != request_fingerprint:
            raise field_error(["header", "Idempotency-Key"], "already used with a different request")
        deadline = time.monotonic() + 2
        while not records.exists(prior.job):  # the first request is still creating it
            if time.monotonic() > deadline:
                slots.release(kind, key)  # the first attempt died before creating its job
                break
            time.sleep(0.02)
        else:
            return prior.job
    return None


def release(slots: IdempotencyStore, kind: str, key: str | None) -> None:
    """The request failed before its job existed: let a retry start afresh."""
    if key is not None:
        slots.release(kind, key)
