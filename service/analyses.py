"""Short work on a model that needs the model and its dataset (a confusion matrix, CAM and
head pictures): the gateway never runs it. It asks a predict worker (task `fpar.analyse`)
and waits for the answer, which stays in Redis for an hour; the worker keeps its own copy
in the model store, so a result is computed once per model.

    fpar:analysis:{key}        hash: status (ok|error), media, body | http, detail
    fpar:analysis:{key}:run    string: set while a worker has the request (one at a time)
    fpar:analysis:{key}:done   list: a token pushed when the answer is in (waiters BLPOP it)
"""
from __future__ import annotations

import hashlib
from typing import Any

import redis

P = "fpar:analysis:"
TTL_S = 3600


def analysis_key(model_id: str, kind: str, video: str | None) -> str:
    return hashlib.sha1(f"{model_id}|{kind}|{video or ''}".encode()).hexdigest()[:20]


class Analyses:
    def __init__(self, client: redis.Redis):
        self.r = client

    def answer(self, key: str) -> dict[str, Any] | None:
        raw = self.r.hgetall(P + key)
        return {k.decode(): (v if k == b"body" else v.decode()) for k, v in raw.items()} if raw else None

    def claim(self, key: str, seconds: float) -> bool:
        """True for the one caller that should send the task; others just wait."""
        return bool(self.r.set(f"{P}{key}:run", 1, nx=True, ex=max(1, int(seconds))))

    def wait(self, key: str, seconds: float) -> None:
        token = self.r.blpop([f"{P}{key}:done"], timeout=seconds)
        if token is not None:  # put it back for the other waiters
            self.r.pipeline().lpush(f"{P}{key}:done", token[1]).expire(f"{P}{key}:done", 60).execute()

    def _finish(self, key: str, fields: dict[str, Any], ttl_s: int) -> None:
        pipe = self.r.pipeline()
        pipe.delete(P + key)
        pipe.hset(P + key, mapping=fields)
        pipe.expire(P + key, ttl_s)
        pipe.delete(f"{P}{key}:run")
        pipe.lpush(f"{P}{key}:done", 1)
        pipe.expire(f"{P}{key}:done", 60)
        pipe.execute()

    def succeed(self, key: str, media: str, body: bytes) -> None:
        self._finish(key, {"status": "ok", "media": media, "body": body}, TTL_S)

    def fail(self, key: str, http: int, detail: str) -> None:
        self._finish(key, {"status": "error", "http": http, "detail": detail}, 30)  # may be transient


def ask_worker(client: redis.Redis, settings, queue, model_id: str, kind: str,
               video: str | None = None) -> dict[str, Any]:
    """The answer to `kind` for the model: from Redis if a worker computed it already, else
    from a predict worker asked now (one task for concurrent askers), waiting at most
    FPAR_MAX_WAIT_S; a 503 with Retry-After when it is still being computed."""
    from service.errors import Problem

    answers = Analyses(client)
    key = analysis_key(model_id, kind, video)
    answer = answers.answer(key)
    if answer is None:
        if answers.claim(key, settings.max_wait_s + 60):
            queue.send_task("fpar.analyse", [key, model_id, kind, video], queue="predict")
        answers.wait(key, settings.max_wait_s)
        answer = answers.answer(key)
    if answer is None:
        raise Problem(503, f"the {kind} of model '{model_id}' is still being computed; retry shortly",
                      kind="being-computed", headers={"Retry-After": "5"})
    if answer["status"] != "ok":
        raise Problem(int(answer["http"]), answer["detail"], kind="no-picture" if answer["http"] == "404" else None)
    return answer
