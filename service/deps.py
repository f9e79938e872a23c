"""Dependencies the routes declare: settings, the job store, the task queue, the API key check."""
from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from service.errors import Problem
from service.jobs import JobStore
from service.queue import TaskQueue
from service.settings import Settings


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> JobStore:
    return request.app.state.store


def _queue(request: Request) -> TaskQueue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[JobStore, Depends(_store)]
QueueDep = Annotated[TaskQueue, Depends(_queue)]


def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With FPAR_API_KEYS set, a valid `Authorization: Bearer <key>` is required.
    Every key is compared, in constant time, so timing tells nothing about any of them."""
    if not settings.api_keys:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "this call needs an Authorization: Bearer <key> header",
                      headers={"WWW-Authenticate": "Bearer"})
    matches = [hmac.compare_digest(token.encode(), key.encode()) for key in settings.api_keys]
    if not any(matches):
        raise Problem(403, "the API key is not valid")
