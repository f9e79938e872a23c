"""The Celery app of the workers: `train` and `predict` queues, one task at a time per
process, acked late. Run one process per GPU (CPU works too), with the solo pool so
the process that touches CUDA is never forked (and DataLoader workers may fork from it):

    celery -A worker.app worker --pool solo --queues train,predict -n gpu0@%h

The app owns what its tasks share in the process (the stores, the task queue, the model
cache), each made on first use; the tasks are registered by `include`. Besides its tasks
every worker runs a few threads: a heartbeat (GET /readyz looks for it); the reaper,
which sends again the jobs whose worker went silent (they stay `running` until the next
worker claims them), or fails them after FPAR_MAX_ATTEMPTS runs; the release of jobs
queued behind another; a round of every search; the sweep of expired prediction frames.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
from functools import cached_property

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

from core import search
from core.cpu import meter
from core.frames import open_frames
from core.object_store import ObjectStore
from core.settings import Settings, get_settings
from core.store import Stores
from core.store.records import JobKind, JobStatus, WorkerRecord, kind_of
from core.tasks import CELERY_CONFIG, TaskQueue
from worker.model_cache import ModelCache

log = logging.getLogger("fpar.worker")
TASK_MODULES = ["worker.tasks.train", "worker.tasks.answers", "worker.tasks.ingest", "worker.tasks.timeline",
                "worker.batcher"]  # (no task: it starts its thread once the worker is ready)


class WorkerApp(Celery):
    def __init__(self, settings: Settings):
        super().__init__("fpar", broker=settings.redis_url, include=TASK_MODULES)
        self.conf.update(CELERY_CONFIG)
        self.settings = settings
        self.worker_name = f"{socket.gethostname()}:{os.getpid()}"  # the worker's name once it is ready
        self.queues: list[str] = []
        self.stopping = threading.Event()
        self.batcher = None  # predict workers: the thread that runs predictions (worker.batcher)

    @cached_property
    def stores(self) -> Stores:
        return Stores.connect(self.settings.redis_url, predict_ttl_s=self.settings.predict_ttl_s)

    @cached_property
    def requeue(self) -> TaskQueue:
        """The reaper sends lost jobs' tasks again."""
        return TaskQueue(self.settings.redis_url)

    @cached_property
    def model_store(self) -> ObjectStore:
        return self.settings.open_model_store()

    @cached_property
    def models(self) -> ModelCache:
        return ModelCache(self.stores.models, self.settings, self.model_store)

    def beat(self) -> None:
        record = WorkerRecord(name=self.worker_name, queues=self.queues, pid=os.getpid(), seen=time.time(),
                              rss_mb=rss_mb(), models=self.models.served(), cpu=meter.totals())
        self.stores.workers.alive(record)

    def sweep(self) -> None:
        """Frames no job will read any more: their prediction expired, or never was made."""
        gone = open_frames(self.settings, self.stores.client).sweep(self.settings.predict_ttl_s)
        if gone:
            log.info("%d expired prediction frame file(s) removed", gone)

    def reap(self) -> None:
        for job_id in self.stores.jobs.running_ids():
            outcome = self.stores.jobs.reap(job_id, self.settings.heartbeat_timeout_s, self.settings.max_attempts)
            if outcome == "requeued":
                log.warning("job %s lost its worker: requeued", job_id)
                if kind_of(job_id) == JobKind.predict:
                    self.stores.predictions.add(job_id)
                else:
                    self.requeue.send(kind_of(job_id), job_id)
            elif outcome == JobStatus.failed:
                log.warning("job %s lost its worker too often: failed", job_id)

    def release_waiting(self) -> None:
        """Jobs queued behind another (an experiment's runs behind their shared stage): sent
        once it succeeded, ended as it ended otherwise. A training that ends calls it, and
        the reaper's loop too, in case that worker died in between (a task sent twice runs
        once: its claim)."""
        jobs = self.stores.jobs
        for job, before in jobs.waiting():
            if job.ended:  # cancelled meanwhile, say
                jobs.unwait(job.id)
                continue
            if before is not None and not before.ended:
                continue
            if before is not None and before.status == JobStatus.succeeded:
                self.requeue.send(job.kind, job.id)
            elif before is not None and before.status == JobStatus.cancelled:
                jobs.cancel(job.id)
            else:
                why = (before.error or {}).get("message", "no reason given") if before else "it was deleted"
                jobs.end_queued(job.id, JobStatus.failed, error={
                    "type": "prerequisite_failed", "message": f"job {job.after}, which this one starts from, "
                    f"did not succeed: {why}"})
            jobs.unwait(job.id)

    def advance_searches(self) -> None:
        """Every search one round on (core.search): a trial whose worker died before it
        could, or a search the gateway started, is never left waiting."""
        for exp_id in self.stores.experiments.searching():
            search.advance(self.stores, self.requeue, self.settings.redis_url, exp_id)

    def every(self, seconds: float, fn) -> None:
        def loop():
            while not self.stopping.wait(seconds):
                try:
                    fn()
                except Exception:  # Redis restarting, say: try again next round
                    log.warning("background %s failed", fn.__name__, exc_info=True)
        threading.Thread(target=loop, name=fn.__name__, daemon=True).start()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        kb = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    return round(kb / 1024, 1)


app = WorkerApp(get_settings())


@worker_ready.connect
def _started(sender=None, **_) -> None:
    """Load and warm the newest models before announcing the worker: /readyz lists it
    only once its first prediction will be as fast as the rest."""
    import torch

    if sender is not None:
        app.worker_name = f"{sender.hostname}:{os.getpid()}"
    app.queues = sorted(app.amqp.queues.consume_from or [])
    log.info("worker %s: queues %s, device %s, torch threads %d", app.worker_name, app.queues,
             app.models.compute.device, torch.get_num_threads())
    if "predict" in app.queues:
        app.models.preload()  # before worker.batcher starts taking predictions (it is told next)
    app.beat()
    app.every(5, app.beat)
    app.every(5, app.reap)
    app.every(5, app.release_waiting)
    app.every(5, app.advance_searches)
    app.every(60, app.sweep)


@worker_shutdown.connect
def _stopping(**_) -> None:
    app.stopping.set()
    if app.batcher is not None:
        app.batcher.stop(timeout_s=30)
    try:  # leave /readyz at once rather than when the heartbeat expires
        app.stores.workers.gone(app.worker_name)
    except Exception:
        log.warning("could not withdraw the heartbeat", exc_info=True)
