"""The Celery app of the workers: `train` and `predict` queues, one task at a time per
process, acked late. Run one process per GPU (CPU works too), with the solo pool so
the process that touches CUDA is never forked (and DataLoader workers may fork from it):

    celery -A worker.app worker --pool solo --queues train,predict -n gpu0@%h

Besides its tasks every worker runs two threads: a heartbeat (GET /readyz looks for
it) and the reaper, which sends again the jobs whose worker went silent (they stay
`running` until the next worker claims them), or fails them after
FPAR_MAX_ATTEMPTS runs.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time

from celery.signals import worker_ready, worker_shutdown

from service.jobs import JobStore, kind_of
from service.queue import TaskQueue, make_celery
from service.settings import get_settings

log = logging.getLogger("fpar.worker")
settings = get_settings()
app = make_celery(settings.redis_url)
store = JobStore.from_url(settings.redis_url, predict_ttl_s=settings.predict_ttl_s)
requeue = TaskQueue(settings.redis_url)  # the reaper sends lost jobs' tasks again
_stop = threading.Event()
WORKER = {"name": f"{socket.gethostname()}:{os.getpid()}", "queues": []}


def _every(seconds: float, fn) -> None:
    def loop():
        while not _stop.wait(seconds):
            try:
                fn()
            except Exception:  # Redis restarting, say: try again next round
                log.warning("background %s failed", fn.__name__, exc_info=True)
    threading.Thread(target=loop, name=fn.__name__, daemon=True).start()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return round(kb / 1024, 1)


def beat() -> None:
    from worker.tasks import MODELS

    store.worker_alive(WORKER["name"], {"name": WORKER["name"], "queues": WORKER["queues"],
                                        "pid": os.getpid(), "seen": time.time(), "rss_mb": rss_mb(),
                                        "models": MODELS.served()})


def reap() -> None:
    for job_id in store.running_ids():
        outcome = store.reap(job_id, settings.heartbeat_timeout_s, settings.max_attempts)
        if outcome == "requeued":
            log.warning("job %s lost its worker: requeued", job_id)
            requeue.send(kind_of(job_id), job_id)
        elif outcome == "failed":
            log.warning("job %s lost its worker too often: failed", job_id)


@worker_ready.connect
def _started(sender=None, **_) -> None:
    """Load and warm the newest models before announcing the worker: /readyz lists it
    only once its first prediction will be as fast as the rest."""
    from worker.tasks import MODELS

    WORKER["name"] = f"{sender.hostname}:{os.getpid()}" if sender is not None else WORKER["name"]
    WORKER["queues"] = sorted(app.amqp.queues.consume_from or [])
    compute = MODELS.compute
    log.info("worker %s: queues %s, device %s, torch threads %d", WORKER["name"], WORKER["queues"],
             compute.device, torch_threads())
    if "predict" in WORKER["queues"]:
        MODELS.preload()
    beat()
    _every(5, beat)
    _every(5, reap)


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


@worker_shutdown.connect
def _stopping(**_) -> None:
    _stop.set()
    try:  # leave /readyz at once rather than when the heartbeat expires
        store.worker_gone(WORKER["name"])
    except Exception:
        log.warning("could not withdraw the heartbeat", exc_info=True)


import worker.tasks  # noqa: E402,F401  (registers the tasks)
