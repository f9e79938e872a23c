"""The predict queue: a Redis stream of job ids (JobStore.create adds a prediction's entry
with the job), read by every predict worker as one consumer group, so a worker takes a
batch of clips in one round trip and no Celery message is paid per clip.

At least once, as Celery's late acks were: an entry stays in its reader's pending list
until `settle`, after the batch ended. A worker killed with entries it had claimed leaves
`running` jobs, which the reaper sends again (`add`) as it does every job's task; entries
it had read but not claimed are taken over by another worker after the heartbeat timeout
(`take_over`). Whoever meets an entry twice learns from the job's CLAIM that it is not to run.
"""
from __future__ import annotations

import redis

from core.store import keys


class PredictQueue:
    def __init__(self, client: redis.Redis):
        self.r = client

    def join(self) -> None:
        """Create the consumer group (and the stream) if they are not there yet."""
        try:
            self.r.xgroup_create(keys.PREDICTIONS, keys.PREDICTORS, id="0", mkstream=True)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise

    def add(self, job_id: str) -> None:
        """Queue a prediction again (the reaper's resend)."""
        self.r.xadd(keys.PREDICTIONS, {"job": job_id})

    def read(self, reader: str, count: int, block_ms: int | None) -> list[tuple[bytes, str]]:
        """Up to `count` new (entry, job id), waiting up to `block_ms` for the first (None: not at all)."""
        out = self.r.xreadgroup(keys.PREDICTORS, reader, {keys.PREDICTIONS: ">"}, count=count, block=block_ms)
        return [(entry, fields[b"job"].decode()) for _, entries in out or [] for entry, fields in entries]

    def take_over(self, reader: str, idle_ms: int, count: int = 100) -> list[tuple[bytes, str]]:
        """Entries read by another worker at least `idle_ms` ago and never settled (it died)."""
        _, entries, *_ = self.r.xautoclaim(keys.PREDICTIONS, keys.PREDICTORS, reader, idle_ms, "0-0", count=count)
        return [(entry, fields[b"job"].decode()) for entry, fields in entries if fields]

    def settle(self, pipe: redis.client.Pipeline, entries: list[bytes]) -> None:
        """Done with these entries (run, or not ours to run): acked and removed."""
        if entries:
            pipe.xack(keys.PREDICTIONS, keys.PREDICTORS, *entries)
            pipe.xdel(keys.PREDICTIONS, *entries)

    def depth(self) -> int:
        """Predictions queued or being run."""
        return self.r.xlen(keys.PREDICTIONS)
