"""Sending work to the Celery workers, by task name: the gateway never imports worker
code. The same settings configure the workers' app (worker/app.py)."""
from __future__ import annotations

from celery import Celery

TASKS = {"train": "fpar.train", "predict": "fpar.predict"}  # queue name == job kind

CELERY_CONFIG = dict(
    task_ignore_result=True,          # Redis holds job state in our own keys: no result backend
    task_serializer="json",           # messages carry a job id; nothing is ever unpickled
    accept_content=["json"],
    task_acks_late=True,              # a task is acked when done, so a lost worker means a redelivery
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,     # a long training must not sit on queued work
    broker_connection_retry_on_startup=True,
    # the reaper requeues jobs whose worker died within seconds; kombu's own redelivery of
    # unacked messages is only a backstop, and must not fire while a long training runs
    broker_transport_options={"visibility_timeout": 7 * 24 * 3600},
    task_default_queue="predict",
    worker_hijack_root_logger=False,
)


def make_celery(broker_url: str) -> Celery:
    app = Celery("fpar", broker=broker_url)
    app.conf.update(CELERY_CONFIG)
    return app


class TaskQueue:
    def __init__(self, broker_url: str):
        self.app = make_celery(broker_url)

    def send(self, kind: str, job_id: str) -> None:
        self.send_task(TASKS[kind], [job_id], queue=kind)

    def send_task(self, name: str, args: list, *, queue: str) -> None:
        self.app.send_task(name, args=args, queue=queue, retry=True,
                           retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5})
