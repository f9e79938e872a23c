"""What every job task does around its work: claim the job atomically (queued -> running,
or a running job whose worker died), so a redelivered or duplicated message never runs a
job twice at once and a cancelled job never starts; keep its heartbeat fresh while it
runs; end it with a reason a user can read."""
from __future__ import annotations

import errno
import logging
import threading
from contextlib import contextmanager

from core.store.jobs import JobStore
from core.store.records import JobStatus
from fpar_models.data.gtea61 import DatasetError
from fpar_models.distributed import RankLost
from worker.app import app

log = logging.getLogger("fpar.worker")
HEARTBEAT_S = 5.0


def jobs() -> JobStore:
    return app.stores.jobs


class Stopped(Exception):
    """The job ended elsewhere (cancelled, failed by another worker) or was asked to stop."""


def claimed(job_id: str, *, quiet: bool = False) -> bool:
    outcome = jobs().claim(job_id, app.worker_name, app.settings.heartbeat_timeout_s)
    if outcome != "ok" and not quiet:
        log.info("job %s not run: %s", job_id, outcome)
    return outcome == "ok"


def joinable(job_id: str) -> bool:
    """A job another worker runs, still going: a copy of its task helps with its shares
    (an ingest's videos, a timeline's windows)."""
    record = jobs().get(job_id, metrics=False)
    return record is not None and record.status == JobStatus.running and not record.cancel


@contextmanager
def running(*job_ids: str):
    """Keeps the jobs' heartbeats fresh while they run, so the reaper leaves them alone."""
    done = threading.Event()

    def beat():
        while not done.wait(HEARTBEAT_S):
            for job_id in job_ids:
                try:
                    jobs().heartbeat(job_id)
                except Exception:
                    log.warning("heartbeat for %s failed", job_id, exc_info=True)
    thread = threading.Thread(target=beat, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()


def failure(exc: Exception) -> dict:
    """A job's `error`: a type a client can act on, and the message."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return {"type": "disk_full", "message": exc.strerror or str(exc)}
    if isinstance(exc, RankLost):
        return {"type": "rank_lost", "message": str(exc)}
    if isinstance(exc, DatasetError):
        return {"type": "dataset_error", "message": str(exc)}
    if isinstance(exc, (ValueError, FileNotFoundError, KeyError)):
        return {"type": "invalid_input", "message": str(exc).strip("'\"")}
    return {"type": "internal_error", "message": f"{type(exc).__name__}: {exc}"}
