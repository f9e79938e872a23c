from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response

from fpar_models.config import STREAM_SOURCES, TrainConfig, deep_merge
from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR, class_names
from fpar_models.presets import UnknownPreset, resolve_config
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
    cfg = runnable(body, cfg, store, settings)
    job_id = new_id("train")
    prior = idempotency.claim(store, "train", idempotency_key, idempotency.fingerprint(body), job_id, 24 * 3600)
    if prior:
        return job_response(store, prior, response)
    try:
        check_queue_room(store, settings, "train")
        store.create("train", cfg.model_dump(mode="json"), warnings=cfg.start_warnings(), job_id=job_id)
        accepted = job_response(store, job_id, response)  # as accepted: queued, however fast a worker is
        queue.send("train", job_id)
    except Exception:
        idempotency.release(store, "train", idempotency_key)
        raise
    return accepted


def runnable(body: dict[str, Any], cfg: TrainConfig, store, settings: Settings) -> TrainConfig:
    """What a worker would fail on and the gateway can see, refused here: the dataset and
    its users, ImageNet weights, two-stream starting models (whose shapes it adopts)."""
    check_dataset(cfg, settings)
    if cfg.pretrained == "imagenet" and find_imagenet_weights(settings.weights_dir) is None:
        raise field_error(["pretrained"], missing_weights_message(settings.weights_dir))
    return fit_stream_sources(body, cfg, store, settings)


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


def fit_stream_sources(body: dict[str, Any], cfg: TrainConfig, store, settings: Settings) -> TrainConfig:
    """Two-stream jobs start from trained models, whose weights fix some shapes (mem_size,
    attention, stack_size). A shape the request leaves to the preset is taken from the
    model; one the request sets must agree with it. The models must exist, be of the right
    arch and know the dataset's classes: all of it is refused here, not 200 epochs later."""
    if cfg.model.arch != "two-stream":
        return cfg
    requested = body.get("model") if isinstance(body.get("model"), dict) else {}
    adopted: dict[str, Any] = {}
    for field, (arch, shape_fields) in STREAM_SOURCES.items():
        ref = getattr(cfg.model, field)
        if not ref:
            continue
        source = store.get_model(ref)
        if source is None:
            raise Problem(404, f"model '{ref}' not found", kind="unknown-model",
                          errors=[{"loc": ["model", field], "msg": "not found"}])
        if source["arch"] != arch:
            raise field_error(["model", field], f"model '{ref}' is a {source['arch']} model, not {arch}")
        if source["classes"] != class_names(settings.data_dir / cfg.dataset):
            raise field_error(["model", field], f"model '{ref}' was trained on other classes than those of "
                              f"dataset '{cfg.dataset}'")
        for name in shape_fields:
            theirs, ours = source["config"]["model"][name], getattr(cfg.model, name)
            if theirs == ours:
                continue
            if name in requested:
                raise field_error(["model", name], f"{field} '{ref}' was trained with {name} {theirs}; "
                                  f"the two-stream model must match it (drop model.{name} to take it)")
            adopted[name] = theirs
    return resolve_config(deep_merge(body, {"model": adopted})) if adopted else cfg
