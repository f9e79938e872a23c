"""End tokens: a list a finished piece of work pushes to, which any number of waiters BLPOP.
Each waiter puts the token back after reading it, so the next one wakes too; the list
expires, since it only needs to outlive the waiters."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis


def push(pipe: redis.client.Pipeline, key: str, value: str | int, ttl_s: int) -> None:
    pipe.lpush(key, value)
    pipe.expire(key, ttl_s)


def wait(client: redis.Redis, key: str, timeout_s: float, ttl_s: int,
         then: Callable[[redis.client.Pipeline], Any] | None = None) -> list | None:
    """Block until the token is there or the timeout passes; None when it did not come,
    otherwise the replies of what `then(pipe)` added to the round trip putting it back."""
    token = client.blpop([key], timeout=timeout_s)
    if token is None:
        return None
    pipe = client.pipeline()
    push(pipe, key, token[1], ttl_s)
    if then is not None:
        then(pipe)
    return pipe.execute()[2:]
