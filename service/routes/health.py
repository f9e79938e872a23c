from __future__ import annotations

import redis
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import StoreDep
from service.errors import Problem

router = APIRouter(tags=["health"])
secured = APIRouter(tags=["health"])  # needs the API key when keys are configured


@router.get("/healthz", summary="Liveness: the gateway answers")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Redis reachable and a worker alive")
def readyz(store: StoreDep) -> dict:
    try:
        store.r.ping()
        workers = store.workers()
    except redis.RedisError:
        raise Problem(503, "Redis is not reachable", kind="unavailable", headers={"Retry-After": "5"}) from None
    if not workers:
        raise Problem(503, "no worker has sent a heartbeat in the last 15 s", kind="not-ready",
                      headers={"Retry-After": "5"})
    return {"status": "ready", "workers": workers}


@secured.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
