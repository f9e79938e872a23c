"""The job store: jobs, their metrics rows (a timeline's window rows and picture), their end
tokens, and a prediction's entry in the predict queue (key layout: core.store.keys; reading
the queue: core.store.predictions; a prediction's frames: core.frames).

Status changes are the Lua scripts of core.store.transitions, so they are atomic and only
go forward. Used by the gateway and the workers alike.
"""
from __future__ import annotations

import json
import time
from typing import Any, NamedTuple

import redis

from core.store import keys, tokens
from core.store.records import TERMINAL, JobKind, JobRecord, JobStatus, PredictOptions, kind_of, new_id
from core.store.transitions import CANCEL, CLAIM, REAP, TRANSITION

DONE_TTL_S = 120  # end-of-job tokens only need to outlive the waiters


class Ending(NamedTuple):
    """How a running job ends (JobStore.finish_many)."""
    job_id: str
    status: JobStatus
    result: dict | None = None
    error: dict | None = None
    batch_size: int | None = None


class PredictionRequest(NamedTuple):
    job_id: str
    options: PredictOptions | None  # None: the job expired
    cancel: bool


def transition_args(to: JobStatus, allowed_from: tuple[JobStatus, ...], fields: dict[str, Any]) -> list[Any]:
    """The TRANSITION script's arguments after the index prefix and the job id."""
    return [to, " ".join(allowed_from), *(x for pair in JobRecord.hash_fields(**fields).items() for x in pair)]


class JobStore:
    def __init__(self, client: redis.Redis, *, predict_ttl_s: int = 3600):
        self.r = client
        self.predict_ttl = predict_ttl_s
        self._transition = client.register_script(TRANSITION)
        self._claim = client.register_script(CLAIM)
        self._reap = client.register_script(REAP)
        self._cancel = client.register_script(CANCEL)

    def _run(self, script, job_id: str, *args: Any) -> str:
        return script(keys=[keys.job(job_id).record], args=[keys.INDEX, job_id, *args]).decode()

    def _run_many(self, script, calls: list[tuple[str, list[Any]]], after=None) -> list[str]:
        """One script over many jobs in one round trip, `after(pipe)` adding more commands to
        it. The script's text goes with each call (EVAL: Redis finds it in its cache by its
        hash), so the commands after it never run without it (after a Redis restart, say), and
        no round trip asks first whether Redis has it."""
        pipe = self.r.pipeline(transaction=False)
        for job_id, args in calls:
            pipe.eval(script.script, 1, keys.job(job_id).record, keys.INDEX, job_id, *args)
        if after is not None:
            after(pipe)
        return [o.decode() for o in pipe.execute()[:len(calls)]]

    # -- a job's life -------------------------------------------------------------------
    def create(self, kind: JobKind, request: dict[str, Any], *, warnings: list[str] | None = None,
               job_id: str | None = None, experiment: str | None = None, after: str | None = None) -> str:
        """Write the job as `queued` and index it. Done before the task is sent, so a
        worker (or a client polling) never meets an unknown id. `experiment` names the
        experiment a training job belongs to; `after`, the job it waits for (its task is
        sent once that one succeeded: release_waiting). A prediction is queued here too, in
        the same transaction: there is no task to send (its frames are in the spool, core.frames)."""
        pipe, job_id = self._creation(kind, request, warnings, job_id, experiment, after)
        pipe.execute()
        return job_id

    def create_prediction(self, request: dict[str, Any], job_id: str) -> JobRecord:
        """create() for a prediction, and the job as written, read in the same transaction:
        a worker may claim it the moment it is queued, and the answer shows it queued."""
        pipe, _ = self._creation(JobKind.predict, request, None, job_id, None, None)
        pipe.hgetall(keys.job(job_id).record)
        return self._record(job_id, pipe.execute()[-1], metrics=False)

    def _creation(self, kind: JobKind, request: dict[str, Any], warnings: list[str] | None, job_id: str | None,
                  experiment: str | None, after: str | None) -> tuple[redis.client.Pipeline, str]:
        """The transaction that writes a new job, not yet sent, and the job's id."""
        job_id = job_id or new_id(kind)
        now = time.time()
        key = keys.job(job_id).record
        fields = JobRecord.hash_fields(id=job_id, kind=kind, status=JobStatus.queued, created_at=now, score=now,
                                       attempts=0, cancel=False, request=request, warnings=warnings or [],
                                       experiment=experiment, after=after)
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=fields)
        if kind == JobKind.predict:
            pipe.expire(key, self.predict_ttl)
            pipe.xadd(keys.PREDICTIONS, {"job": job_id})
        if after is not None:
            pipe.zadd(keys.WAITING, {job_id: now})
        for index in ("all", f"kind:{kind}", f"status:{JobStatus.queued}", f"{kind}:{JobStatus.queued}"):
            pipe.zadd(keys.index(index), {job_id: now})
        return pipe, job_id

    def get(self, job_id: str, *, metrics: bool = True) -> JobRecord | None:
        return self._record(job_id, self.r.hgetall(keys.job(job_id).record), metrics)

    def _record(self, job_id: str, raw: dict[bytes, bytes], metrics: bool = True) -> JobRecord | None:
        if not raw or b"status" not in raw:
            return None
        rows = windows = None
        if metrics and raw.get(b"kind") == JobKind.train.encode():
            rows = self.metrics_since(job_id, 0)
        elif metrics and raw.get(b"kind") == JobKind.timeline.encode() and raw.get(b"result"):
            # only with the result: an hour's windows are MBs, and a client polls a running job
            windows = sorted(self.windows_since(job_id, 0), key=lambda w: w["index"])
        return JobRecord.from_hash(raw, metrics=rows, windows=windows)

    def exists(self, job_id: str) -> bool:
        return bool(self.r.hexists(keys.job(job_id).record, "status"))

    def transition(self, job_id: str, to: JobStatus, allowed_from: tuple[JobStatus, ...], **fields: Any) -> str:
        """Atomically move a job to `to` if it is in one of `allowed_from`. Returns 'ok',
        'missing' or the job's current status."""
        return self._run(self._transition, job_id, *transition_args(to, allowed_from, fields))

    def claim(self, job_id: str, worker: str, heartbeat_timeout_s: float) -> str:
        """'ok' (now ours), 'cancelled' (asked to stop while no worker held it), or why not."""
        return self.claim_many([job_id], worker, heartbeat_timeout_s)[0]

    def claim_many(self, job_ids: list[str], worker: str, heartbeat_timeout_s: float) -> list[str]:
        """claim() for each job, in one round trip."""
        now = time.time()
        outcomes = self._run_many(self._claim, [(i, [now, now - heartbeat_timeout_s, worker]) for i in job_ids])
        for job_id, outcome in zip(job_ids, outcomes):
            if outcome == "stopped":  # it ended here
                self._ended(job_id, JobStatus.cancelled)
        return [JobStatus.cancelled if o == "stopped" else o for o in outcomes]

    def heartbeat(self, job_id: str) -> None:
        self.r.hset(keys.job(job_id).record, "heartbeat", time.time())

    def set_progress(self, job_id: str, progress: dict[str, Any]) -> None:
        self.r.hset(keys.job(job_id).record, mapping=JobRecord.hash_fields(progress=progress, heartbeat=time.time()))

    def cancel(self, job_id: str) -> str:
        """'stopped' (ended at once: queued, or released by the reaper), 'requested' (running),
        'missing', or the terminal status."""
        outcome = self._run(self._cancel, job_id, time.time())
        if outcome == "stopped":
            self._ended(job_id, JobStatus.cancelled)
        return outcome

    def cancels_requested(self, *job_ids: str) -> set[str]:
        """Those of the jobs asked to stop, in one round trip."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(keys.job(job_id).record, "cancel")
        return {job_id for job_id, flag in zip(job_ids, pipe.execute()) if flag == b"1"}

    def cancel_requested(self, job_id: str) -> bool:
        return bool(self.cancels_requested(job_id))

    def finish(self, job_id: str, status: JobStatus, *, result: dict | None = None, error: dict | None = None,
               batch_size: int | None = None) -> str:
        return self.finish_many([Ending(job_id, status, result, error, batch_size)])[0]

    def finish_many(self, endings: list[Ending], after=None) -> list[str]:
        """End running jobs, each as its Ending says, in one round trip (`after(pipe)` adds
        to it: acking the queue entries, say)."""
        now = time.time()
        calls = [(e.job_id, transition_args(e.status, (JobStatus.running,), dict(
            finished_at=now, result=e.result, error=e.error, batch_size=e.batch_size))) for e in endings]

        def and_then(pipe):
            for e in endings:
                self._end_into(pipe, e.job_id, e.status)
            if after is not None:
                after(pipe)
        return self._run_many(self._transition, calls, and_then)

    def end_queued(self, job_id: str, status: JobStatus, error: dict | None = None) -> str:
        """End a job no worker has claimed (one whose prerequisite failed, say)."""
        outcome = self.transition(job_id, status, (JobStatus.queued,), finished_at=time.time(), error=error)
        if outcome == "ok":
            self._ended(job_id, status)
        return outcome

    def set_reason(self, job_id: str, reason: str) -> None:
        """Why a job is about to be cancelled though no one asked (records.JobRecord.reason)."""
        self.r.hset(keys.job(job_id).record, "reason", reason)

    def waiting(self) -> list[tuple[JobRecord, JobRecord | None]]:
        """Each job waiting for another, with that one (None: it is gone), oldest first."""
        ids = [i.decode() for i in self.r.zrange(keys.WAITING, 0, -1)]
        found = [self.get(i, metrics=False) for i in ids]
        gone = [i for i, job in zip(ids, found) if job is None]
        if gone:
            self.unwait(*gone)
        return [(job, self.get(job.after, metrics=False)) for job in found if job is not None]

    def unwait(self, *job_ids: str) -> None:
        self.r.zrem(keys.WAITING, *job_ids)

    def reap(self, job_id: str, heartbeat_timeout_s: float, max_attempts: int) -> str:
        now = time.time()
        error = json.dumps({"type": "worker_lost", "message": f"the worker running this job stopped "
                            f"{max_attempts} times (killed, out of memory, or crashed); not retrying"})
        outcome = self._run(self._reap, job_id, now, now - heartbeat_timeout_s, max_attempts, error)
        if outcome in TERMINAL:
            self._ended(job_id, JobStatus(outcome))
        return outcome

    def _ended(self, job_id: str, status: JobStatus) -> None:
        pipe = self.r.pipeline()
        self._end_into(pipe, job_id, status)
        pipe.execute()

    def _end_into(self, pipe: redis.client.Pipeline, job_id: str, status: JobStatus) -> None:
        """Wake the job's waiters; a prediction's record starts to expire."""
        job = keys.job(job_id)
        tokens.push(pipe, job.done, status, DONE_TTL_S)
        if kind_of(job_id) == JobKind.predict:
            pipe.expire(job.record, self.predict_ttl)

    def wait_done(self, job_id: str, timeout_s: float, *, queued_now: bool = False) -> JobRecord | None:
        """The job once it has ended, or as it is when the timeout passes. The end token is
        put back after reading (so every waiter, a retried request say, wakes up too) in the
        round trip that reads the job. `queued_now`: the caller has just queued it, so it
        need not look whether it has ended before waiting."""
        record = keys.job(job_id).record
        if not queued_now or timeout_s <= 0:
            job = self.get(job_id)
            if job is None or job.ended or timeout_s <= 0:
                return job
        raw = tokens.wait(self.r, keys.job(job_id).done, timeout_s, DONE_TTL_S, then=lambda pipe: pipe.hgetall(record))
        return self._record(job_id, raw[0]) if raw is not None else self.get(job_id)

    # -- metrics rows ---------------------------------------------------------------------
    def add_metrics(self, job_id: str, row: dict[str, Any]) -> None:
        """An epoch's row, and one more epoch trained."""
        pipe = self.r.pipeline()
        pipe.rpush(keys.job(job_id).metrics, json.dumps(row))
        pipe.hincrby(keys.job(job_id).record, "epochs_trained", 1)
        pipe.execute()

    def metrics_since(self, job_id: str, first: int) -> list[dict[str, Any]]:
        return [json.loads(row) for row in self.r.lrange(keys.job(job_id).metrics, first, -1)]

    def windows_since(self, job_id: str, first: int) -> list[dict[str, Any]]:
        """A timeline's window rows from the `first`, in the order they landed (chunks end in any order)."""
        return [json.loads(row) for row in self.r.lrange(keys.job(job_id).windows, first, -1)]

    def put_picture(self, job_id: str, png: bytes) -> None:
        self.r.set(keys.job(job_id).picture, png)

    def picture(self, job_id: str) -> bytes | None:
        return self.r.get(keys.job(job_id).picture)

    def reset_metrics(self, job_id: str, rows: list[dict[str, Any]]) -> None:
        """A run starts from this history (a resumed run from its checkpoint's, one started
        from a trained model with that model's rows): make the job agree."""
        pipe, key = self.r.pipeline(), keys.job(job_id).metrics
        pipe.delete(key)
        if rows:
            pipe.rpush(key, *(json.dumps(r) for r in rows))
        pipe.execute()

    # -- reading many -----------------------------------------------------------------------
    def list(self, *, kind: JobKind | None, status: JobStatus | None, limit: int, before: float | None = None
             ) -> tuple[list[JobRecord], float | None]:
        """Newest first. Returns the page and the score to continue before (None at the end)."""
        key = keys.job_index(kind, status)
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

    def requests(self, *job_ids: str) -> list[dict[str, Any] | None]:
        """The `request` field of several jobs, in one round trip."""
        pipe = self.r.pipeline()
        for job_id in job_ids:
            pipe.hget(keys.job(job_id).record, "request")
        return [json.loads(raw) if raw else None for raw in pipe.execute()]

    def active_requests(self) -> list[tuple[str, dict[str, Any]]]:
        """(id, request) of every queued or running job."""
        ids = [i.decode() for s in (JobStatus.queued, JobStatus.running)
               for i in self.r.zrange(keys.index(f"status:{s}"), 0, -1)]
        return [(i, r) for i, r in zip(ids, self.requests(*ids)) if r is not None]

    def running_ids(self) -> list[str]:
        return [i.decode() for i in self.r.zrange(keys.index(f"status:{JobStatus.running}"), 0, -1)]

    def queued_count(self, kind: JobKind) -> int:
        return self.r.zcard(keys.job_index(kind, JobStatus.queued))

    def counts(self) -> dict[tuple[JobKind, JobStatus], int]:
        pipe = self.r.pipeline()
        pairs = [(k, s) for k in JobKind for s in JobStatus]
        for k, s in pairs:
            pipe.zcard(keys.job_index(k, s))
        return dict(zip(pairs, pipe.execute()))

    # -- forgetting ---------------------------------------------------------------------------
    def delete(self, job_id: str) -> str:
        """Remove an ended job, its metrics and its index entries: 'deleted', 'missing', or
        the status of a job that has not ended (not deleted)."""
        status = self.r.hget(keys.job(job_id).record, "status")
        if status is None:
            return "missing"
        if status.decode() not in TERMINAL:
            return status.decode()
        self.r.delete(*keys.job(job_id))  # the record, its rows, its token, its frames
        self._forget([job_id.encode()])
        return "deleted"

    def _forget(self, ids: list[bytes]) -> None:
        pipe = self.r.pipeline()
        for kind in (None, *JobKind):
            for status in (None, *JobStatus):
                pipe.zrem(keys.job_index(kind, status), *ids)
        pipe.execute()

    # -- predictions --------------------------------------------------------------------------
    def prediction_requests(self, *job_ids: str) -> list[PredictionRequest]:
        """Each prediction's options and cancel flag, in one round trip."""
        pipe = self.r.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job(job_id).record, "request", "cancel")
        return [PredictionRequest(job_id, PredictOptions.model_validate_json(request) if request else None,
                                  cancel == b"1") for job_id, (request, cancel) in zip(job_ids, pipe.execute())]
