"""The job store: Redis is the one source of truth for jobs and models.

    fpar:job:{id}            hash: status, kind, timestamps, request, progress, result, error ...
    fpar:job:{id}:metrics    list: one JSON row per epoch, appended as the trainer reports them
    fpar:job:{id}:done       list: a token pushed when the job ends (waiters BLPOP it)
    fpar:frames:{id}         string: a predict job's prepared frames (service.arrays), expiring
    fpar:idx:{all|kind|status|kind:status}  sorted sets of job ids by creation time
    fpar:model:{id}, fpar:idx:models         registered models
    fpar:worker:{name}       a live worker's heartbeat (expiring)

State changes run as Lua scripts, so they are atomic and only go forward:
queued -> running -> succeeded | failed | cancelled. A running job whose worker stopped
beating stays `running`: the reaper marks it `released` and sends its task again, and
the next worker claims it (`attempts` counts the tries). Used by the gateway and the
workers alike; torch-free.
"""
from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import redis

P = "fpar:"
KINDS = ("train", "predict")
STATES = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
JSON_FIELDS = ("request", "progress", "result", "error", "warnings")
DONE_TTL_S = 120  # end-of-job tokens only need to outlive the waiters

# Moves a job between the status indexes; prepended to every script that changes status.
_MOVE = """
local function move(id, key, from, to)
  local kind = redis.call('HGET', key, 'kind')
  local score = redis.call('HGET', key, 'score')
  redis.call('ZREM', 'fpar:idx:status:' .. from, id)
  redis.call('ZREM', 'fpar:idx:' .. kind .. ':' .. from, id)
  redis.call('ZADD', 'fpar:idx:status:' .. to, score, id)
  redis.call('ZADD', 'fpar:idx:' .. kind .. ':' .. to, score, id)
  redis.call('HSET', key, 'status', to)
end
local function hset_pairs(key, first)
  for i = first, #ARGV, 2 do redis.call('HSET', key, ARGV[i], ARGV[i + 1]) end
end
"""

# ARGV: id, to, allowed-from (space separated), field, value, ...
_TRANSITION = _MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
for s in string.gmatch(ARGV[3], '%S+') do
  if s == cur then move(ARGV[1], KEYS[1], cur, ARGV[2]); hset_pairs(KEYS[1], 4); return 'ok' end
end
return cur
"""

# ARGV: id, now, stale_before, worker. Takes a queued job, or a running one whose worker died
# (released by the reaper, or not yet noticed); one asked to stop meanwhile ends cancelled.
_CLAIM = _MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
if cur == 'queued' then
  move(ARGV[1], KEYS[1], 'queued', 'running')
elseif not (cur == 'running' and tonumber(redis.call('HGET', KEYS[1], 'heartbeat') or '0') < tonumber(ARGV[3])) then
  return cur
elseif redis.call('HGET', KEYS[1], 'cancel') == '1' then
  move(ARGV[1], KEYS[1], 'running', 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
  return 'stopped'
end
redis.call('HINCRBY', KEYS[1], 'attempts', 1)
redis.call('HSET', KEYS[1], 'heartbeat', ARGV[2], 'worker', ARGV[4], 'released', '0')
if not redis.call('HGET', KEYS[1], 'started_at') then redis.call('HSET', KEYS[1], 'started_at', ARGV[2]) end
return 'ok'
"""

# ARGV: id, now, stale_before, max_attempts, error-json. A running job whose worker went silent
# is released to run again (its task is sent again, once), unless it was asked to stop (then
# it is cancelled) or has used up its attempts (failed).
_REAP = _MOVE + """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 'gone' end
if tonumber(redis.call('HGET', KEYS[1], 'heartbeat') or '0') >= tonumber(ARGV[3]) then return 'alive' end
if redis.call('HGET', KEYS[1], 'released') == '1' then return 'released' end
if redis.call('HGET', KEYS[1], 'cancel') == '1' then
  move(ARGV[1], KEYS[1], 'running', 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
  return 'cancelled'
end
if tonumber(redis.call('HGET', KEYS[1], 'attempts') or '0') >= tonumber(ARGV[4]) then
  move(ARGV[1], KEYS[1], 'running', 'failed')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[2], 'error', ARGV[5])
  return 'failed'
end
redis.call('HSET', KEYS[1], 'released', '1')
return 'requeued'
"""

# ARGV: id, now. Queued jobs, and running ones no worker holds (released), end at once;
# running ones are asked to stop.
_CANCEL = _MOVE + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return 'missing' end
if cur == 'queued' or (cur == 'running' and redis.call('HGET', KEYS[1], 'released') == '1') then
  move(ARGV[1], KEYS[1], cur, 'cancelled')
  redis.call('HSET', KEYS[1], 'finished_at', ARGV[2])
  return 'stopped'
end
if cur == 'running' then redis.call('HSET', KEYS[1], 'cancel', '1'); return 'requested' end
return cur
"""


def iso(ts: str | float | None) -> str | None:
    if ts in (None, ""):
        return None
    return datetime.fromtimestamp(float(ts), UTC).isoformat().replace("+00:00", "Z")


def new_id(kind: str) -> str:
    return f"{kind[:2]}_{uuid.uuid4().hex[:16]}"


def kind_of(job_id: str) -> str:
    """A job id names its kind (`tr_...`, `pr_...`): see new_id."""
    return next(k for k in KINDS if job_id.startswith(f"{k[:2]}_"))


class JobStore:
    def __init__(self, client: redis.Redis, *, predict_ttl_s: int = 3600):
        self.r = client
        self.predict_ttl = predict_ttl_s
        self._transition = client.register_script(_TRANSITION)
        self._claim = client.register_script(_CLAIM)
        self._reap = client.register_script(_REAP)
        self._cancel = client.register_script(_CANCEL)

    @classmethod
    def from_url(cls, url: str, *, socket_timeout_s: float = 90, **kw: Any) -> JobStore:
        """Connections fail fast when Redis is down (3 s) and wait long enough on a
        blocking read (a predict `wait`) when it is up."""
        client = redis.Redis.from_url(url, decode_responses=False, socket_timeout=socket_timeout_s,
                                      socket_connect_timeout=3, health_check_interval=15)
        return cls(client, **kw)

    # -- jobs -------------------------------------------------------------------------
    def create(self, kind: str, request: dict[str, Any], *, warnings: list[str] | None = None,
               job_id: str | None = None, experiment: str | None = None) -> str:
        """Write the job as `queued` and index it. Done before the task is sent, so a
        worker (or a client polling) never meets an unknown id. `experiment` names the
        experiment a training job belongs to."""
        job_id = job_id or new_id(kind)
        now = time.time()
        key = f"{P}job:{job_id}"
        fields = {"id": job_id, "kind": kind, "status": "queued", "created_at": now, "score": now,
                  "attempts": 0, "cancel": 0, "request": json.dumps(request),
                  "warnings": json.dumps(warnings or [])}
        if experiment:
            fields["experiment"] = experiment
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=fields)
        if kind == "predict":
            pipe.expire(key, self.predict_ttl)
            pending = f"{P}pending:{request['model']}"  # where a batching worker finds companions
            pipe.rpush(pending, job_id)
            pipe.expire(pending, self.predict_ttl)
        for index in ("all", f"kind:{kind}", "status:queued", f"{kind}:queued"):
            pipe.zadd(f"{P}idx:{index}", {job_id: now})
        pipe.execute()
        return job_id

    def get(self, job_id: str, *, metrics: bool = True) -> dict[str, Any] | None:
        raw = self.r.hgetall(f"{P}job:{job_id}")
        if not raw or b"status" not in raw:
            return None
        job = {k.decode(): v.decode() for k, v in raw.items()}
        for name in JSON_FIELDS:
            job[name] = json.loads(job[name]) if job.get(name) else None
        job["metrics"] = ([json.loads(row) for row in self.r.lrange(f"{P}job:{job_id}:metrics", 0, -1)]
                          if metrics and job["kind"] == "train" else None)
        return job

    def list(self, *, kind: str | None, status: str | None, limit: int, before: float | None = None
             ) -> tuple[list[dict[str, Any]], float | None]:
        """Newest first. Returns the page and the score to continue before (None at the end)."""
        index = f"{kind}:{status}" if kind and status else f"kind:{kind}" if kind else \
            f"status:{status}" if status else "all"
        key = f"{P}idx:{index}"
        top = f"({before}" if before is not None else "+inf"
        jobs, expired = [], []
        while len(jobs) < limit:
            ids = self.r.zrevrangebyscore(key, top, "-inf", start=0, num=limit - len(jobs), withscores=True)
            if not ids:
                return jobs, None
            for raw_id, score in ids:
                job = self.get(raw_id.decode(), metrics=False)
                (jobs.append(job) if job else expired.append(raw_id))
                top = f"({score}"
            if expired:  # predict jobs expire; drop their index entries as we meet them
                self._forget(expired)
                expired = []
        more = self.r.zcount(key, "-inf", top) > 0
        return jobs, (float(top[1:]) if more else None)

    def delete(self, job_id: str) -> str:
        """Remove an ended job, its metrics and its index entries: 'deleted', 'missing', or
        the status of a job that has not ended (not deleted)."""
        key = f"{P}job:{job_id}"
        status = self.r.hget(key, "status")
        if status is None:
            return "missing"
        if status.decode() not in TERMINAL:
            return status.decode()
        self.r.delete(key, f"{key}:metrics", f"{key}:done", f"{P}frames:{job_id}")
        self._forget([job_id.encode()])
        return "deleted"

    def _forget(self, ids: list[bytes]) -> None:
        pipe = self.r.pipeline()
        for kind in KINDS:
            for state in STATES:
                pipe.zrem(f"{P}idx:{kind}:{state}", *ids)
        for index in ["all", *(f"kind:{k}" for k in KINDS), *(f"status:{s}" for s in STATES)]:
            pipe.zrem(f"{P}idx:{index}", *ids)
        pipe.execute()

    def transition(self, job_id: str, to: str, allowed_from: tuple[str, ...], **fields: Any) -> str:
        """Atomically move a job to `to` if it is in one of `allowed_from`. Returns 'ok',
        'missing' or the job's current status."""
        args = [job_id, to, " ".join(allowed_from)]
        for name, value in fields.items():
            args += [name, json.dumps(value) if name in JSON_FIELDS else value]
        return self._transition(keys=[f"{P}job:{job_id}"], args=args).decode()

    def claim(self, job_id: str, worker: str, heartbeat_timeout_s: float) -> str:
        """'ok' (now ours), 'cancelled' (asked to stop while no worker held it), or why not."""
        now = time.time()
        outcome = self._claim(keys=[f"{P}job:{job_id}"], args=[job_id, now, now - heartbeat_timeout_s, worker]).decode()
        if outcome == "stopped":  # it ended here
            self._ended(job_id, "cancelled")
            return "cancelled"
        return outcome

    def requests(self, *job_ids: str) -> list[dict[str, Any] | None]:
        """The `request` field of several jobs, in one round trip."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(f"{P}job:{job_id}", "request")
        return [json.loads(raw) if raw else None for raw in pipe.execute()]

    def heartbeat(self, job_id: str) -> None:
        self.r.hset(f"{P}job:{job_id}", "heartbeat", time.time())

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self.r.hset(f"{P}job:{job_id}", mapping={"progress": json.dumps(progress), "heartbeat": time.time()})

    def add_metrics(self, job_id: str, row: dict[str, Any]) -> None:
        self.r.rpush(f"{P}job:{job_id}:metrics", json.dumps(row))

    def metrics_since(self, job_id: str, first: int) -> list[dict[str, Any]]:
        return [json.loads(row) for row in self.r.lrange(f"{P}job:{job_id}:metrics", first, -1)]

    def reset_metrics(self, job_id: str, rows: list[dict[str, Any]]) -> None:
        """A resumed run restarts from its checkpoint's history: make the job agree."""
        pipe = self.r.pipeline()
        pipe.delete(f"{P}job:{job_id}:metrics")
        if rows:
            pipe.rpush(f"{P}job:{job_id}:metrics", *(json.dumps(r) for r in rows))
        pipe.execute()

    def cancel(self, job_id: str) -> str:
        """'stopped' (ended at once: queued, or released by the reaper), 'requested' (running),
        'missing', or the terminal status."""
        outcome = self._cancel(keys=[f"{P}job:{job_id}"], args=[job_id, time.time()]).decode()
        if outcome == "stopped":
            self._ended(job_id, "cancelled")
        return outcome

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.cancels_requested(job_id))

    def cancels_requested(self, *job_ids: str) -> set[str]:
        """Those of the jobs asked to stop, in one round trip."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(f"{P}job:{job_id}", "cancel")
        return {job_id for job_id, flag in zip(job_ids, pipe.execute()) if flag == b"1"}

    def finish(self, job_id: str, status: str, *, result: Any = None, error: Any = None, **extra: Any) -> str:
        fields: dict[str, Any] = {"finished_at": time.time(), **extra}
        if result is not None:
            fields["result"] = result
        if error is not None:
            fields["error"] = error
        outcome = self.transition(job_id, status, ("running",), **fields)
        self._ended(job_id, status)
        return outcome

    def _ended(self, job_id: str, status: str) -> None:
        """Wake the job's waiters; a prediction's record starts to expire, its frames go."""
        pipe = self.r.pipeline()
        done = f"{P}job:{job_id}:done"
        pipe.lpush(done, status)
        pipe.expire(done, DONE_TTL_S)
        if kind_of(job_id) == "predict":
            pipe.expire(f"{P}job:{job_id}", self.predict_ttl)
            pipe.delete(f"{P}frames:{job_id}")
        pipe.execute()

    def wait_done(self, job_id: str, timeout_s: float) -> None:
        """Block until the job ends or the timeout passes. The end token is put back
        after reading, so every waiter (a retried request, say) wakes up too."""
        if timeout_s <= 0 or (self.r.hget(f"{P}job:{job_id}", "status") or b"").decode() in TERMINAL:
            return
        done = f"{P}job:{job_id}:done"
        token = self.r.blpop([done], timeout=timeout_s)
        if token is not None:
            self.r.pipeline().lpush(done, token[1]).expire(done, DONE_TTL_S).execute()

    def running_ids(self) -> list[str]:
        return [i.decode() for i in self.r.zrange(f"{P}idx:status:running", 0, -1)]

    def reap(self, job_id: str, heartbeat_timeout_s: float, max_attempts: int) -> str:
        now = time.time()
        error = json.dumps({"type": "worker_lost", "message": f"the worker running this job stopped "
                            f"{max_attempts} times (killed, out of memory, or crashed); not retrying"})
        outcome = self._reap(keys=[f"{P}job:{job_id}"],
                             args=[job_id, now, now - heartbeat_timeout_s, max_attempts, error]).decode()
        if outcome in TERMINAL:
            self._ended(job_id, outcome)
        return outcome

    def queued_count(self, kind: str) -> int:
        return self.r.zcard(f"{P}idx:{kind}:queued")

    def counts(self) -> dict[tuple[str, str], int]:
        pipe = self.r.pipeline()
        keys = [(k, s) for k in KINDS for s in STATES]
        for k, s in keys:
            pipe.zcard(f"{P}idx:{k}:{s}")
        return dict(zip(keys, pipe.execute()))

    def take_pending(self, model_id: str, count: int) -> list[str]:
        """Up to `count` ids of predict jobs for this model, oldest first (some may have
        been run already by their own task: claiming them tells)."""
        ids = self.r.lpop(f"{P}pending:{model_id}", count) if count > 0 else None
        return [i.decode() for i in ids or []]

    # -- frames of predict jobs -----------------------------------------------------------
    def put_frames(self, job_id: str, data: bytes) -> None:
        self.r.set(f"{P}frames:{job_id}", data, ex=self.predict_ttl)

    def get_frames(self, *job_ids: str) -> list[bytes | None]:
        return self.r.mget([f"{P}frames:{i}" for i in job_ids])

    # -- models ---------------------------------------------------------------------------
    def add_model(self, model: dict[str, Any]) -> None:
        pipe = self.r.pipeline()
        pipe.set(f"{P}model:{model['id']}", json.dumps(model))
        pipe.zadd(f"{P}idx:models", {model["id"]: model["created_at"]})
        pipe.execute()

    def get_model(self, model_id: str) -> dict[str, Any] | None:
        raw = self.r.get(f"{P}model:{model_id}")
        return json.loads(raw) if raw else None

    def set_model_precision(self, model_id: str, precision: str) -> dict[str, Any] | None:
        """The precision predict workers serve the model in (they read it per batch)."""
        model = self.get_model(model_id)
        if model is not None:
            model["inference_precision"] = precision
            self.r.set(f"{P}model:{model_id}", json.dumps(model))
        return model

    def delete_model(self, model_id: str) -> None:
        pipe = self.r.pipeline()
        pipe.delete(f"{P}model:{model_id}")
        pipe.zrem(f"{P}idx:models", model_id)
        pipe.execute()

    def active_requests(self) -> list[tuple[str, dict[str, Any]]]:
        """(id, request) of every queued or running job."""
        ids = [i.decode() for s in ("queued", "running") for i in self.r.zrange(f"{P}idx:status:{s}", 0, -1)]
        return [(i, r) for i, r in zip(ids, self.requests(*ids)) if r is not None]

    def models(self, limit: int = 1000) -> list[dict[str, Any]]:
        ids = [i.decode() for i in self.r.zrevrange(f"{P}idx:models", 0, limit - 1)]
        raws = self.r.mget([f"{P}model:{i}" for i in ids]) if ids else []
        return [json.loads(r) for r in raws if r]

    def newest_model(self) -> dict[str, Any] | None:
        found = self.models(limit=1)
        return found[0] if found else None

    # -- workers --------------------------------------------------------------------------
    def worker_alive(self, name: str, info: dict[str, Any], ttl_s: int = 15) -> None:
        self.r.set(f"{P}worker:{name}", json.dumps(info), ex=ttl_s)

    def worker_gone(self, name: str) -> None:
        self.r.delete(f"{P}worker:{name}")

    def workers(self) -> list[dict[str, Any]]:
        keys = list(self.r.scan_iter(f"{P}worker:*", count=100))
        return [json.loads(v) for v in self.r.mget(keys) if v] if keys else []
