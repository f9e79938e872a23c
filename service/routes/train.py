from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from fpar_models.config import TrainConfig, UnknownPreset, resolve_config
from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR
from fpar_models.weights import find_imagenet_weights, missing_weights_message
from service import idempotency
from service.deps import QueueDep, SettingsDep, StoreDep
from service.errors import Problem, field_error
from service.jobs import new_id
from service.routes.common import check_queue_room, job_response
from service.schemas import JobOut
from service.settings import Settings

router = APIRouter(tags=["jobs"])

BODY_SCHEMA = {"requestBody": {"required": True, "content": {"application/json": {
    "schema": {"$ref": "#/components/schemas/TrainRequest"}}}}}


@router.post("/train", status_code=202, response_model=JobOut, openapi_extra=BODY_SCHEMA,
             summary="Queue a training run: a preset plus any overrides")
def submit_training(body: Annotated[dict[str, Any], Body()], response: Response, settings: SettingsDep,
                    store: StoreDep, queue: QueueDep,
                    idempotency_key: Annotated[str | None, Header(description="retries return the same job")] = None
                    ) -> JobOut:
    try:
        cfg = resolve_config(body)
    except UnknownPreset as e:
        raise field_error(["preset"], str(e)) from None
    check_dataset(cfg, settings)
    if cfg.pretrained == "imagenet" and find_imagenet_weights(settings.weights_dir) is None:
        raise field_error(["pretrained"], missing_weights_message(settings.weights_dir))
    check_starting_models(cfg, store)
    job_id = new_id("train")
    prior = idempotency.claim(store, "train", idempotency_key, idempotency.fingerprint(body), job_id, 24 * 3600)
    if prior:
        return job_response(store, prior, response)
    try:
        check_queue_room(store, settings, "train")
        store.create("train", cfg.model_dump(mode="json"), warnings=cfg.start_warnings(), job_id=job_id)
        queue.send("train", job_id)
    except Exception:
        idempotency.release(store, "train", idempotency_key)
        raise
    return job_response(store, job_id, response)


def check_dataset(cfg: TrainConfig, settings: Settings) -> None:
    """The dataset must be a folder inside FPAR_DATA_DIR (links that lead out are refused)
    holding every user the config names."""
    base = settings.data_dir.resolve()
    root = (settings.data_dir / cfg.dataset).resolve()
    if not root.is_relative_to(base):
        raise field_error(["dataset"], "resolves outside the data directory")
    if not root.is_dir():
        raise Problem(404, f"dataset '{cfg.dataset}' not found in the data directory", kind="unknown-dataset",
                      errors=[{"loc": ["dataset"], "msg": "not found"}])
    users_dir = root / (RGB_DIR if cfg.uses_rgb else FLOW_DIRS[0])
    for field in ("train_users", "val_users"):
        for i, user in enumerate(getattr(cfg, field)):
            if not (users_dir / user).is_dir():
                raise field_error([field, i], f"user '{user}' not found in dataset '{cfg.dataset}'")


def check_starting_models(cfg: TrainConfig, store) -> None:
    for field, arch in (("rgb_model", "egornn"), ("flow_model", "flow")):
        ref = getattr(cfg.model, field)
        if not ref:
            continue
        model = store.get_model(ref)
        if model is None:
            raise Problem(404, f"model '{ref}' not found", kind="unknown-model",
                          errors=[{"loc": ["model", field], "msg": "not found"}])
        if model["arch"] != arch:
            raise field_error(["model", field], f"model '{ref}' is a {model['arch']} model, not {arch}")
