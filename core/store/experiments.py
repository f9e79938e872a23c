"""Experiments. An experiment's record holds what was asked for and its children's ids; its
status, table and end time are derived from the children whenever it is read, so there
is no second copy of any job state to fall out of step."""
from __future__ import annotations

import json
import math

import redis

from core.store import keys
from core.store.records import (
    TERMINAL,
    ChildState,
    Experiment,
    ExperimentChild,
    ExperimentCost,
    ExperimentProgress,
    ExperimentRecord,
    JobStatus,
    SharedStage,
    SharedState,
)
from fpar_models.experiment import summarize


def experiment_status(children: list[JobStatus], cancel_requested: bool,
                      shared: list[JobStatus] = (), more_to_come: bool = False) -> JobStatus:
    """queued until a job (a child or a shared stage) starts; running until every one
    ended (and a search has asked for all its trials); then cancelled (if asked),
    succeeded (at least one child did) or failed."""
    every = [*children, *shared]
    if all(s == JobStatus.queued for s in every):
        return JobStatus.cancelled if cancel_requested else JobStatus.queued
    if not all(s in TERMINAL for s in every) or (more_to_come and not cancel_requested):
        return JobStatus.running
    if cancel_requested:
        return JobStatus.cancelled
    return JobStatus.succeeded if JobStatus.succeeded in children else JobStatus.failed


class ExperimentStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def create(self, record: ExperimentRecord) -> None:
        pipe = self.r.pipeline()
        fields = ExperimentRecord.hash_fields(**record.model_dump(mode="json"))
        pipe.hset(keys.experiment(record.id), mapping=fields)
        pipe.zadd(keys.EXPERIMENTS, {record.id: record.created_at})
        pipe.execute()

    def exists(self, exp_id: str) -> bool:
        return bool(self.r.exists(keys.experiment(exp_id)))

    def request_cancel(self, exp_id: str) -> None:
        self.r.hset(keys.experiment(exp_id), "cancel", 1)

    def record(self, exp_id: str) -> ExperimentRecord | None:
        raw = self.r.hgetall(keys.experiment(exp_id))
        return ExperimentRecord.from_hash(raw) if raw else None

    def set_children(self, exp_id: str, children: list[ExperimentChild]) -> None:
        """A search's children, as it adds them (its driver holds the search's lock)."""
        self.r.hset(keys.experiment(exp_id), "children", json.dumps([c.model_dump(mode="json") for c in children]))

    def searching(self) -> list[str]:
        return sorted(i.decode() for i in self.r.smembers(keys.SEARCHING))

    def set_searching(self, exp_id: str, on: bool) -> None:
        (self.r.sadd if on else self.r.srem)(keys.SEARCHING, exp_id)

    def is_searching(self, exp_id: str) -> bool:
        return bool(self.r.sismember(keys.SEARCHING, exp_id))

    def get(self, exp_id: str) -> Experiment | None:
        raw = self.r.hgetall(keys.experiment(exp_id))
        if not raw:
            return None
        record = ExperimentRecord.from_hash(raw)
        pipe = self.r.pipeline()
        for job in (*record.children, *record.shared):
            pipe.hmget(keys.job(job.id).record, "status", "result", "finished_at", "epochs_trained", "error", "reason")
        found = pipe.execute()
        jobs = [_state(child, *fields) for child, fields in zip(record.children, found)]
        shared = [_shared(share, *fields) for share, fields in zip(record.shared, found[len(jobs):])]
        table = summarize([(j.point, j.best_val_acc if j.status == JobStatus.succeeded else None) for j in jobs])
        search = record.search
        if search:  # the search's best first
            table.sort(key=lambda row: -row["mean"] if row["mean"] is not None else math.inf)
        more_to_come = bool(search) and len(jobs) < search.trials and self.is_searching(exp_id)
        statuses = [j.status for j in (*jobs, *shared)]
        cost = ExperimentCost(naive_epochs=record.naive_epochs, planned_epochs=record.planned_epochs,
                              trained_epochs=sum(int(fields[3] or 0) for fields in found))
        exp = Experiment(**record.model_dump(exclude={"children", "shared", "cancel", "naive_epochs",
                                                      "planned_epochs"}),
                         jobs=jobs, shared=shared, table=table, cost=cost, finished_at=None,
                         status=experiment_status([j.status for j in jobs], record.cancel, [j.status for j in shared],
                                                  more_to_come),
                         progress=ExperimentProgress(ended=sum(s in TERMINAL for s in statuses),
                                                     total=len(statuses) + (search.trials - len(jobs)
                                                                            if more_to_come else 0)))
        finished = [j.finished_at for j in jobs if j.finished_at]
        if exp.ended and finished:  # it ended when its last child did
            exp.finished_at = max(finished)
        return exp

    def list(self, limit: int, before: float | None = None) -> tuple[list[Experiment], float | None]:
        """Newest first. Returns the page and the score to continue before (None at the end)."""
        top = f"({before}" if before is not None else "+inf"
        found = self.r.zrevrangebyscore(keys.EXPERIMENTS, top, "-inf", start=0, num=limit + 1, withscores=True)
        page = [self.get(raw.decode()) for raw, _ in found[:limit]]
        more = found[limit - 1][1] if len(found) > limit else None
        return [e for e in page if e], more


def _state(child: ExperimentChild, status: bytes | None, result: bytes | None, finished: bytes | None,
           _epochs, _error, reason: bytes | None) -> ChildState:
    """A child's state from its job's fields; a job that is gone counts as failed."""
    return ChildState(**child.model_dump(), status=status.decode() if status else JobStatus.failed,
                      best_val_acc=json.loads(result).get("best_val_acc") if result else None,
                      finished_at=float(finished) if finished else None, reason=reason.decode() if reason else None)


def _shared(share: SharedStage, status: bytes | None, result: bytes | None, _finished, _epochs,
            error: bytes | None, _reason) -> SharedState:
    return SharedState(**share.model_dump(), status=status.decode() if status else JobStatus.failed,
                       best_val_acc=json.loads(result).get("best_val_acc") if result else None,
                       error=json.loads(error) if error else None)
