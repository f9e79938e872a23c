"""Answers from a worker to the gateway, for short work only a worker can do (a model's
confusion matrix, its pictures, an export): the gateway sends the task and waits; the
worker leaves the answer here (records.Answer), where it stays a while for the next asker.
One worker computes each answer however many gateways ask at once (`claim`)."""
from __future__ import annotations

import hashlib

import redis

from core.store import keys, tokens
from core.store.records import Answer

ANSWER_TTL_S = 3600
ERROR_TTL_S = 30  # an error may be transient: ask again soon
TOKEN_TTL_S = 60


def answer_key(*parts: str | None) -> str:
    """A short stable key for what was asked (model, kind, options)."""
    return hashlib.sha1("|".join(p or "" for p in parts).encode()).hexdigest()[:20]


class AnswerStore:
    def __init__(self, client: redis.Redis):
        self.r = client

    def get(self, key: str) -> Answer | None:
        raw = self.r.hgetall(keys.answer(key).record)
        return Answer.from_hash(raw) if raw else None

    def claim(self, key: str, seconds: float) -> bool:
        """True for the one caller that should send the task; the others just wait."""
        return bool(self.r.set(keys.answer(key).run, 1, nx=True, ex=max(1, int(seconds))))

    def wait(self, key: str, seconds: float) -> None:
        tokens.wait(self.r, keys.answer(key).done, seconds, TOKEN_TTL_S)

    def succeed(self, key: str, media: str, body: bytes) -> None:
        self._finish(key, Answer(status="ok", media=media, body=body), ANSWER_TTL_S)

    def fail(self, key: str, http: int, detail: str) -> None:
        self._finish(key, Answer(status="error", http=http, detail=detail), ERROR_TTL_S)

    def _finish(self, key: str, answer: Answer, ttl_s: int) -> None:
        at, pipe = keys.answer(key), self.r.pipeline()
        pipe.delete(at.record)
        pipe.hset(at.record, mapping={k: v for k, v in answer.model_dump().items() if v is not None})
        pipe.expire(at.record, ttl_s)
        pipe.delete(at.run)
        tokens.push(pipe, at.done, 1, TOKEN_TTL_S)
        pipe.execute()
