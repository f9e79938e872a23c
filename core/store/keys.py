"""The key map: every key fpar-serve keeps in Redis is built here, and nowhere else.

    fpar:job:{id}              hash    a job (records.JobRecord)
    fpar:job:{id}:metrics      list    one JSON row per epoch, appended as the trainer reports them
    fpar:job:{id}:done         list    a token pushed when the job ends (waiters BLPOP it; expires)
    fpar:job:{id}:items        set     the shares of a job done (an ingest's videos, a timeline's chunks)
    fpar:job:{id}:lease:{i}    string  the worker doing share i of the job now (an ingest's video, a timeline's
                                       chunk of windows; expires)
    fpar:job:{id}:windows      list    a timeline's window rows, as its chunks are done (any order)
    fpar:job:{id}:picture      string  a timeline's PNG, drawn when it succeeds
    fpar:waiting               zset    jobs queued behind another (records.JobRecord.after), by creation time
    fpar:searching             set     experiments whose search has not ended (core.search advances them)
    fpar:search:{id}:lock      string  held by the process advancing that search (expires)
    optuna:*                   ...     the searches' Optuna journals (JournalRedisBackend, prefix "optuna:")
    fpar:predictions           stream  predict job ids, queued; the predict workers read it as one group
    fpar:idx:all | kind:{k} | status:{s} | {k}:{s}    zsets  job ids by creation time
    fpar:model:{id}            string  a registered model (records.ModelRecord, JSON)
    fpar:idx:models            zset    model ids by creation time
    fpar:exp:{id}              hash    an experiment (records.ExperimentRecord)
    fpar:idx:experiments       zset    experiment ids by creation time
    fpar:worker:{name}         string  a live worker's heartbeat (records.WorkerRecord; expires)
    fpar:answer:{key}          hash    a worker's answer to the gateway (records.Answer; expires)
    fpar:answer:{key}:run      string  set while a worker computes it (one at a time)
    fpar:answer:{key}:done     list    a token pushed when the answer is in
    fpar:idem:{kind}:{key}     string  an Idempotency-Key's first job (records.IdempotencySlot)
    fpar:dataset:{name}        hash    a dataset name taken by an ingest job (records.DatasetRecord)
    train, predict, ingest     lists   Celery's queues (kombu's keys, named by the queue; predictions are not
                                       sent through Celery)

The status-changing Lua scripts (core.store.transitions) take INDEX as an argument and build the
status index names from it, so this module is still the only one that spells a key.
"""
from __future__ import annotations

from typing import NamedTuple

PREFIX = "fpar:"
INDEX = f"{PREFIX}idx:"


class JobKeys(NamedTuple):
    record: str   # the JobRecord hash
    metrics: str  # its epoch rows
    done: str     # its end token
    items: str    # the shares done (an ingest's videos, a timeline's chunks)
    windows: str  # a timeline's window rows
    picture: str  # a timeline's PNG


def job(job_id: str) -> JobKeys:
    record = f"{PREFIX}job:{job_id}"
    return JobKeys(record, f"{record}:metrics", f"{record}:done", f"{record}:items", f"{record}:windows",
                   f"{record}:picture")


def lease(job_id: str, item: int) -> str:
    """Who does share `item` of a job now (-1: who finishes it)."""
    return f"{PREFIX}job:{job_id}:lease:{item}"


def index(name: str) -> str:
    """A job index: 'all', 'kind:{kind}', 'status:{status}' or '{kind}:{status}'."""
    return f"{INDEX}{name}"


def job_index(kind: str | None, status: str | None) -> str:
    """The index listing jobs of this kind and status (either may be None: any)."""
    if kind and status:
        return index(f"{kind}:{status}")
    return index(f"kind:{kind}" if kind else f"status:{status}" if status else "all")


WAITING = f"{PREFIX}waiting"          # jobs whose task is sent once the job they wait for succeeds
SEARCHING = f"{PREFIX}searching"      # experiments whose search asks for more trials or waits for some
PREDICTIONS = f"{PREFIX}predictions"  # the predict queue (core.store.predictions)
PREDICTORS = "predict"                # its consumer group: every predict worker


def model(model_id: str) -> str:
    return f"{PREFIX}model:{model_id}"


MODELS = index("models")


def search_lock(exp_id: str) -> str:
    return f"{PREFIX}search:{exp_id}:lock"


def experiment(exp_id: str) -> str:
    return f"{PREFIX}exp:{exp_id}"


EXPERIMENTS = index("experiments")


def worker(name: str) -> str:
    return f"{PREFIX}worker:{name}"


WORKERS = worker("*")  # a SCAN pattern


class AnswerKeys(NamedTuple):
    record: str  # the Answer hash
    run: str     # set while a worker computes it
    done: str    # its end token


def answer(key: str) -> AnswerKeys:
    record = f"{PREFIX}answer:{key}"
    return AnswerKeys(record, f"{record}:run", f"{record}:done")


def dataset(name: str) -> str:
    return f"{PREFIX}dataset:{name}"


DATASETS = dataset("*")  # a SCAN pattern


def idempotency(kind: str, key: str) -> str:
    return f"{PREFIX}idem:{kind}:{key}"
