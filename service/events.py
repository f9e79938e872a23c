"""Server-sent events for a job or an experiment: what changed, as it changes.

The streams are derived from the state in Redis, read a few times a second, not from
messages the workers publish: nothing a worker writes can be missed, a stream needs no
publisher to be alive, and a client that connects late (or again) is told the rows so far.
Each event's id is the position of the stream (`<rows>.<status>`); a client that sends it
back as `Last-Event-ID` resumes after it (for an experiment, whose `job` events are states
rather than deltas, it is told every child's current state again).

    event: status    {"job_id", "status", "error", "result", "progress"}  each change of state
    event: progress  the job's progress object                 at most twice a second
    event: metrics   one epoch's row                           as the trainer reports it
    event: window    (timelines) one window's {index, start, end, top_k}    as its chunk lands
    event: job       (experiments) a child's {id, point, trial, status, best_val_acc, after}
    event: shared    (experiments) a shared stage's {id, stages, dependants, status, ...}

The stream ends after the terminal state.
"""
from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from fastapi.responses import StreamingResponse

from core.store.experiments import ExperimentStore
from core.store.jobs import JobStore
from core.store.records import JobKind, JobRecord
from service.schemas import public_window

# the rows a job's stream tells as they land: a training's epochs, a timeline's windows
ROWS = {JobKind.train: ("metrics", JobStore.metrics_since), JobKind.timeline: ("window", JobStore.windows_since)}
POLL_S = 0.25
PROGRESS_EVERY_S = 0.5
KEEPALIVE_S = 15


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})  # proxies: no buffering


def event(kind: str, data: Any, event_id: str) -> str:
    return f"id: {event_id}\nevent: {kind}\ndata: {json.dumps(finite(data), separators=(',', ':'))}\n\n"


def finite(data: Any) -> Any:
    """NaN and infinities as null: browsers' JSON.parse takes nothing else."""
    if isinstance(data, float) and not math.isfinite(data):
        return None
    if isinstance(data, dict):
        return {k: finite(v) for k, v in data.items()}
    if isinstance(data, list):
        return [finite(v) for v in data]
    return data


@dataclass
class Position:
    """What the client has been told: how many rows, and the last status."""
    rows: int = 0
    status: str = ""

    @classmethod
    def parse(cls, last_event_id: str | None) -> Position:
        rows, _, status = (last_event_id or "").partition(".")
        return cls(int(rows), status) if rows.isdigit() else cls()

    def __str__(self) -> str:
        return f"{self.rows}.{self.status}"


async def job_events(store: JobStore, job_id: str, last_event_id: str | None = None) -> AsyncIterator[str]:
    at = Position.parse(last_event_id)
    progress, progress_at, quiet_since = None, 0.0, time.monotonic()
    while True:
        job = await asyncio.to_thread(store.get, job_id, metrics=False)
        if job is None:  # deleted, or a predict job that expired
            yield event("status", {"job_id": job_id, "status": "gone"}, str(at))
            return
        sent = []
        if job.status != at.status and not job.ended:
            at.status = job.status
            sent.append(event("status", _status(job), str(at)))
        if job.kind in ROWS:
            name, since = ROWS[job.kind]
            for row in await asyncio.to_thread(since, store, job_id, at.rows):
                at.rows += 1
                sent.append(event(name, public_window(row) if job.kind == JobKind.timeline else row, str(at)))
        if job.ended:
            if job.status != at.status:
                at.status = job.status
                sent.append(event("status", _status(job), str(at)))
            for chunk in sent:
                yield chunk
            return
        now = time.monotonic()
        if job.progress and job.progress != progress and now - progress_at >= PROGRESS_EVERY_S:
            progress, progress_at = job.progress, now
            sent.append(event("progress", progress, str(at)))
        if not sent and now - quiet_since > KEEPALIVE_S:
            sent.append(": keep-alive\n\n")  # proxies close connections that say nothing
        for chunk in sent:
            yield chunk
        if sent:
            quiet_since = now
        await asyncio.sleep(POLL_S)


def _status(job: JobRecord) -> dict:
    """A status event; it carries the progress too, so the last one (sent at most twice a
    second as its own event) reaches the client with the end."""
    return {"job_id": job.id, "status": job.status, "error": job.error, "result": job.result,
            "progress": job.progress}


async def experiment_events(experiments: ExperimentStore, exp_id: str,
                            last_event_id: str | None = None) -> AsyncIterator[str]:
    """The experiment's status, each child's and shared stage's state as it changes (`job`,
    `shared`: states, not deltas, so a client that connects or reconnects is first told
    every current state) and `progress` (jobs ended, of all)."""
    at = Position.parse(last_event_id)
    seen: dict[str, tuple] = {}
    quiet_since = time.monotonic()
    while True:
        exp = await asyncio.to_thread(experiments.get, exp_id)
        if exp is None:
            yield event("status", {"experiment_id": exp_id, "status": "gone"}, str(at))
            return
        sent = []
        if exp.status != at.status and not exp.ended:
            at.status = exp.status
            sent.append(event("status", {"experiment_id": exp_id, "status": exp.status}, str(at)))
        changed = [(name, j) for name, states in (("shared", exp.shared), ("job", exp.jobs)) for j in states
                   if seen.get(j.id) != (j.status, j.best_val_acc)]
        for name, state in changed:
            seen[state.id] = (state.status, state.best_val_acc)
            at.rows += 1
            sent.append(event(name, state.model_dump(exclude={"finished_at"}), str(at)))
        if changed:
            sent.append(event("progress", exp.progress.model_dump(), str(at)))
        if exp.ended:
            at.status = exp.status
            sent.append(event("status", {"experiment_id": exp_id, "status": exp.status, "table": exp.table}, str(at)))
        now = time.monotonic()
        if not sent and now - quiet_since > KEEPALIVE_S:
            sent.append(": keep-alive\n\n")
        for chunk in sent:
            yield chunk
        if exp.ended:
            return
        if sent:
            quiet_since = now
        await asyncio.sleep(4 * POLL_S)
