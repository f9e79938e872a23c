"""End tokens: a list a finished piece of work pushes to, which any number of waiters BLPOP.
Each waiter puts the token back after reading it, so the next one wakes too; the list
expires, since it only needs to outlive the waiters."""
from __future__ import annotations

import redis


def push(pipe: redis.client.Pipeline, key: str, value: str | int, ttl_s: int) -> None:
    pipe.lpush(key, value)
    pipe.expire(key, ttl_s)


def wait(client: redis.Redis, key: str, timeout_s: float, ttl_s: int) -> bool:
    """Block until the token is there or the timeout passes; True when it came."""
    token = client.blpop([key], timeout=timeout_s)
    if token is None:
        return False
    pipe = client.pipeline()
    push(pipe, key, token[1], ttl_s)
    pipe.execute()
    return True
