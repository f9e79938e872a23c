"""POST /train: a preset plus overrides, resolved and checked here, queued as a training job."""
from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from core.store.records import JobKind, new_id
from fpar_models.presets import UnknownPreset, resolve_config
from service import idempotency
from service.checks import check_queue_room, runnable
from service.deps import IdempotencyDep, JobsDep, ModelsDep, QueueDep, SettingsDep
from service.errors import field_error
from service.schemas import JobOut
from service.submit import accepted

router = APIRouter(tags=["jobs"])

BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/TrainRequest"}}}}}


@router.post("/train", status_code=202, response_model=JobOut, openapi_extra=BODY_SCHEMA,
             summary="Queue a training run: a preset plus any overrides")
def submit_training(body: Annotated[dict[str, Any], Body()], response: Response, settings: SettingsDep,
                    jobs: JobsDep, models: ModelsDep, slots: IdempotencyDep, queue: QueueDep,
                    idempotency_key: Annotated[str | None, Header(description="retries return the same job")] = None
                    ) -> JobOut:
    try:
        cfg = resolve_config(body)
    except UnknownPreset as e:
        raise field_error(["preset"], str(e)) from None
    cfg = runnable(body, cfg, models, settings)
    job_id = new_id(JobKind.train)
    fingerprint = idempotency.fingerprint(body)
    prior = idempotency.claim(slots, jobs, JobKind.train, idempotency_key, fingerprint, job_id, 24 * 3600)
    if prior:
        return accepted(jobs, prior, response)
    try:
        check_queue_room(jobs, settings, JobKind.train)
        jobs.create(JobKind.train, cfg.model_dump(mode="json"), warnings=cfg.start_warnings(), job_id=job_id)
        answer = accepted(jobs, job_id, response)
        queue.send(JobKind.train, job_id)
    except Exception:
        idempotency.release(slots, JobKind.train, idempotency_key)
        raise
    return answer
