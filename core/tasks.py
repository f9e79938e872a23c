"""The contract between the gateway and the workers: the tasks, by name, with what each
takes, and the Celery settings both sides use. The gateway sends by name and never
imports worker code; the workers register their functions under these names.

    fpar.train    (job_id)                       queue train    a training job
    fpar.analyse  (key, model_id, kind, video)   queue predict  confusion | cam | heads -> an Answer
    fpar.export   (key, model_id, format)        queue predict  onnx | openvino | torchscript -> an Answer
    fpar.ingest   (job_id)                       queue ingest   an ingest job (several copies share its videos)
    fpar.timeline (job_id)                       queue predict  a timeline job (several copies share its windows)

Predictions are not Celery tasks: JobStore.create queues them in a Redis stream that a
thread of every predict worker reads in batches (core.store.predictions, worker.batcher).

Timelines run on the predict workers, which hold the models loaded and compiled: a chunk
of windows at a time, so predictions queued meanwhile are not kept waiting behind an hour
of video.
"""
from __future__ import annotations

from celery import Celery

from core.store.records import JobKind

TRAIN, ANALYSE, EXPORT, INGEST, TIMELINE = "fpar.train", "fpar.analyse", "fpar.export", "fpar.ingest", "fpar.timeline"
JOB_TASKS = {JobKind.train: TRAIN, JobKind.ingest: INGEST, JobKind.timeline: TIMELINE}
QUEUE_OF = {JobKind.train: "train", JobKind.predict: "predict", JobKind.ingest: "ingest", JobKind.timeline: "predict"}
QUEUES = tuple(dict.fromkeys(QUEUE_OF.values()))

CELERY_CONFIG = dict(
    task_ignore_result=True,          # Redis holds job state in our own keys: no result backend
    task_serializer="json",           # messages carry ids; nothing is ever unpickled
    accept_content=["json"],
    task_acks_late=True,              # a task is acked when done, so a lost worker means a redelivery
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,     # a long training must not sit on queued work
    broker_connection_retry_on_startup=True,
    # the reaper requeues jobs whose worker died within seconds; kombu's own redelivery of
    # unacked messages is only a backstop, and must not fire while a long training runs
    broker_transport_options={"visibility_timeout": 7 * 24 * 3600},
    task_default_queue=JobKind.predict,
    worker_hijack_root_logger=False,
)


def make_celery(broker_url: str, **options) -> Celery:
    app = Celery("fpar", broker=broker_url, **options)
    app.conf.update(CELERY_CONFIG)
    return app


class TaskQueue:
    """Sends the tasks above, by name."""

    def __init__(self, broker_url: str):
        self.app = make_celery(broker_url)

    def send(self, kind: JobKind, job_id: str, copies: int = 1) -> None:
        """A job's task, to the queue of its kind (an ingest's or a timeline's in copies:
        each worker that takes one works on the job's shares beside the others)."""
        for _ in range(copies):
            self._send(JOB_TASKS[kind], [job_id], queue=QUEUE_OF[kind])

    def analyse(self, key: str, model_id: str, kind: str, video: str | None) -> None:
        self._send(ANALYSE, [key, model_id, kind, video], queue=JobKind.predict)

    def export(self, key: str, model_id: str, fmt: str) -> None:
        self._send(EXPORT, [key, model_id, fmt], queue=JobKind.predict)

    def _send(self, name: str, args: list, *, queue: str) -> None:
        self.app.send_task(name, args=args, queue=str(queue), retry=True,
                           retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5})
