"""Liveness, readiness (Redis reachable and a worker alive) and Prometheus metrics."""
from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.checks import ready_workers
from service.deps import WorkersDep

router = APIRouter(tags=["health"])
secured = APIRouter(tags=["health"])  # needs the API key when keys are configured


@router.get("/healthz", summary="Liveness: the gateway answers")
def healthz() -> dict:
    return {"status": "ok"}


@router.get("/readyz", summary="Readiness: Redis reachable and a worker alive")
def readyz(workers: WorkersDep) -> dict:
    return {"status": "ready", "workers": [w.model_dump() for w in ready_workers(workers)]}


@secured.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
