"""How the workers of one job share its work: an ingest's videos, a timeline's chunks of
windows. A worker leases share i for a while (renewed as it works), marks it done and
moves on; a lease whose worker died expires, and the next worker to pass takes it again.
Share -1 is the job's finish (publishing a dataset, assembling a timeline), leased by one
worker. Whoever lists the shares done and finds them all is the one to finish.
"""
from __future__ import annotations

import json
from typing import Any

import redis

from core.store import keys

FINISH = -1

# KEYS: done set, lease, rows list; ARGV: share, row, row, ... A share's rows land once,
# together with its mark, however many workers computed it (a lease can expire under a slow one).
COMPLETE = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 0 end
for i = 2, #ARGV do redis.call('RPUSH', KEYS[3], ARGV[i]) end
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('DEL', KEYS[2])
return 1
"""


class Shares:
    def __init__(self, client: redis.Redis):
        self.r = client
        self._complete = client.register_script(COMPLETE)

    def lease(self, job_id: str, share: int, worker: str, ttl_s: float) -> bool:
        """Take (or renew, when ours) share `share` of the job for ttl_s."""
        key = keys.lease(job_id, share)
        if self.r.set(key, worker, nx=True, px=int(ttl_s * 1000)):
            return True
        if self.r.get(key) == worker.encode():
            self.r.pexpire(key, int(ttl_s * 1000))
            return True
        return False

    def release(self, job_id: str, share: int) -> None:
        self.r.delete(keys.lease(job_id, share))

    def mark_done(self, job_id: str, share: int) -> None:
        pipe = self.r.pipeline()
        pipe.sadd(keys.job(job_id).items, share)
        pipe.delete(keys.lease(job_id, share))
        pipe.execute()

    def complete(self, job_id: str, share: int, rows: list[dict[str, Any]]) -> bool:
        """Append the share's rows to the job's window rows and mark it done, atomically;
        False (nothing written) when it was done already."""
        job = keys.job(job_id)
        return bool(self._complete(keys=[job.items, keys.lease(job_id, share), job.windows],
                                   args=[share, *(json.dumps(row, separators=(",", ":")) for row in rows)]))

    def done(self, job_id: str) -> set[int]:
        return {int(i) for i in self.r.smembers(keys.job(job_id).items)}
