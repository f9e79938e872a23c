"""Asking a worker for what only a worker can compute (a model's confusion matrix, its
pictures, an export): the gateway never runs a model. The answer comes from Redis when a
worker computed it already; otherwise one task is sent for all concurrent askers, and each
waits at most FPAR_MAX_WAIT_S for it."""
from __future__ import annotations

from collections.abc import Callable

from core.settings import Settings
from core.store.answers import AnswerStore
from core.store.records import Answer
from service.errors import Problem


def ask_worker(answers: AnswerStore, settings: Settings, key: str, send: Callable[[], None], what: str) -> Answer:
    """The answer under `key`; `send` sends the task that computes it. A 503 with
    Retry-After when it is still being computed; the worker's error as its problem."""
    answer = answers.get(key)
    if answer is None:
        if answers.claim(key, settings.max_wait_s + 60):
            send()
        answers.wait(key, settings.max_wait_s)
        answer = answers.get(key)
    if answer is None:
        raise Problem(503, f"{what} is still being computed; retry shortly", kind="being-computed",
                      headers={"Retry-After": "5"})
    if answer.status != "ok":
        raise Problem(answer.http, answer.detail, kind="no-picture" if answer.http == 404 else None)
    return answer
