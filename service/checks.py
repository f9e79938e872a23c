"""What the gateway checks before it accepts work, shared by the routes: room in the
queue, a runnable training config (its dataset, weights and two-stream sources), a
listing's cursor, a ready stack. Each failure is the problem a client should see."""
from __future__ import annotations

import math
from typing import Any

import redis

from core.settings import Settings
from core.store.jobs import JobStore
from core.store.models import ModelRegistry
from core.store.records import JobKind, WorkerRecord
from core.store.workers import WorkerRegistry
from fpar_models.config import STREAM_SOURCES, TrainConfig, deep_merge
from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR, class_names
from fpar_models.presets import resolve_config
from fpar_models.weights import find_imagenet_weights, missing_weights_message
from service.deps import unknown_model
from service.errors import Problem, field_error


def check_queue_room(jobs: JobStore, settings: Settings, kind: JobKind, count: int = 1) -> None:
    """With FPAR_QUEUE_LIMIT set, refuse work beyond it rather than queue without bound."""
    if not settings.queue_limit or jobs.queued_count(kind) + count <= settings.queue_limit:
        return
    what = f"the {kind} queue is full ({settings.queue_limit} jobs waiting)" if count == 1 else \
        f"{count} jobs do not fit in the {kind} queue (FPAR_QUEUE_LIMIT {settings.queue_limit})"
    retry = "2" if kind == JobKind.predict else "30" if count == 1 else "60"  # a grid waits for a few trainings
    raise Problem(429, f"{what}; retry later", kind="queue-full", headers={"Retry-After": retry})


def page_before(cursor: str | None) -> float | None:
    """A listing's `cursor` (the `next` of the previous page): list what was created before it."""
    if cursor is None:
        return None
    try:
        before = float(cursor)
    except ValueError:
        before = math.nan
    if not math.isfinite(before):  # nan or inf would reach Redis as a score it refuses
        raise field_error(["query", "cursor"], "not a cursor returned by this endpoint")
    return before


def ready_workers(workers: WorkerRegistry) -> list[WorkerRecord]:
    """The live workers; a 503 when Redis is down or none is alive."""
    try:
        alive = workers.live()
    except redis.RedisError:
        raise Problem(503, "Redis is not reachable", kind="unavailable", headers={"Retry-After": "5"}) from None
    if not alive:
        raise Problem(503, "no worker has sent a heartbeat in the last 15 s", kind="not-ready",
                      headers={"Retry-After": "5"})
    return alive


def runnable(body: dict[str, Any], cfg: TrainConfig, models: ModelRegistry, settings: Settings) -> TrainConfig:
    """What a worker would fail on and the gateway can see, refused here: the dataset and
    its users, ImageNet weights, two-stream starting models and an init_from model (whose
    shapes, and stages, it adopts)."""
    check_dataset(cfg, settings)
    if cfg.pretrained == "imagenet" and not cfg.init_from and find_imagenet_weights(settings.weights_dir) is None:
        raise field_error(["pretrained"], missing_weights_message(settings.weights_dir))
    cfg = fit_stream_sources(body, cfg, models, settings)
    return fit_init_from(body, cfg, models, settings)


def check_dataset(cfg: TrainConfig, settings: Settings) -> None:
    """The dataset must be a folder inside FPAR_DATA_DIR (links that lead out are refused)
    holding every user the config names."""
    base = settings.data_dir.resolve()
    root = (settings.data_dir / cfg.dataset).resolve()
    if not root.is_relative_to(base):
        raise field_error(["dataset"], "resolves outside the data directory")
    # an s3:// data store's dataset is one it publishes (brought here), not an old copy here
    published = settings.data.shared or cfg.dataset in settings.data.published()
    if published:
        settings.data.mirror(cfg.dataset)
    if not (published and root.is_dir()):
        raise Problem(404, f"dataset '{cfg.dataset}' not found in the data directory", kind="unknown-dataset",
                      errors=[{"loc": ["dataset"], "msg": "not found"}])
    users_dir = root / (RGB_DIR if cfg.uses_rgb else FLOW_DIRS[0])
    for field in ("train_users", "val_users"):
        for i, user in enumerate(getattr(cfg, field)):
            if not (users_dir / user).is_dir():
                raise field_error([field, i], f"user '{user}' not found in dataset '{cfg.dataset}'")


def fit_stream_sources(body: dict[str, Any], cfg: TrainConfig, models: ModelRegistry,
                       settings: Settings) -> TrainConfig:
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
        source = models.get(ref)
        if source is None:
            raise unknown_model(ref, ["model", field])
        if source.arch != arch:
            raise field_error(["model", field], f"model '{ref}' is a {source.arch} model, not {arch}")
        if source.classes != class_names(settings.data_dir / cfg.dataset):
            raise field_error(["model", field], f"model '{ref}' was trained on other classes than those of "
                              f"dataset '{cfg.dataset}'")
        adopted |= adopt_shapes(requested, source.config.model, cfg.model, shape_fields, f"{field} '{ref}'",
                                "the two-stream model")
    return resolve_config(deep_merge(body, {"model": adopted})) if adopted else cfg


def adopt_shapes(requested: dict[str, Any], theirs: Any, ours: Any, names: tuple[str, ...], source: str,
                 what: str) -> dict[str, Any]:
    """The model fields (`names`) a trained model fixes: those where the config differs
    from it, to be taken from it; a `422` if the request set one of them itself."""
    adopted = {}
    for name in names:
        value = getattr(theirs, name)
        if value == getattr(ours, name):
            continue
        if name in requested:
            raise field_error(["model", name], f"{source} was trained with {name} {value}; {what} must match "
                              f"it (drop model.{name} to take it)")
        adopted[name] = value
    return adopted


SHAPE_FIELDS = ("arch", "attention", "mem_size", "stack_size")  # what a model's weights fix, with its heads


def fit_init_from(body: dict[str, Any], cfg: TrainConfig, models: ModelRegistry, settings: Settings) -> TrainConfig:
    """A run that starts after stage k of a trained model takes that model's weights, so
    its shapes (SHAPE_FIELDS, the heads) and its first k stages, which that model trained:
    as with two-stream sources, what the request leaves to the preset is adopted and what
    it sets must agree. The stage must be one the model trained itself, and its classes
    the dataset's unless the classifier is reset."""
    source_ref = cfg.init_from
    if source_ref is None:
        return cfg
    source = models.get(source_ref.model)
    if source is None:
        raise unknown_model(source_ref.model, ["init_from", "model"])
    k, trained = source_ref.stage, source.config.trained_stages
    if k - 1 not in trained:
        before = f"; stage {k} is that of the model it started from, " \
                 f"'{source.config.init_from.model}'" if source.config.init_from and k <= trained.start else ""
        raise field_error(["init_from", "stage"], f"model '{source.id}' trained stages {trained.start + 1} to "
                          f"{trained.stop}{before}")
    if source_ref.classes == "keep" and source.classes != class_names(settings.data_dir / cfg.dataset):
        raise field_error(["init_from", "classes"], f"model '{source.id}' was trained on other classes than "
                          f"those of dataset '{cfg.dataset}' (\"reset\" gives it a new classifier)")
    requested = body.get("model") if isinstance(body.get("model"), dict) else {}
    theirs, ours = source.config.model, cfg.model
    adopted = adopt_shapes(requested, theirs, ours, SHAPE_FIELDS, f"init_from model '{source.id}'",
                           "a run starting from it")
    if _head_shapes(theirs.heads) != _head_shapes(ours.heads):
        if "heads" in requested:
            raise field_error(["model", "heads"], f"init_from model '{source.id}' has other heads: "
                              f"{[h.kind for h in theirs.heads]}; drop model.heads to take its")
        adopted["heads"] = [h.model_dump(mode="json") for h in theirs.heads]
    asked = body.get("stages") if isinstance(body.get("stages"), list) else []
    for i in range(k):
        if i < len(asked) and asked[i] and cfg.stages[i] != source.config.stages[i]:
            raise field_error(["stages", i], f"stage {i + 1} is init_from model '{source.id}'s, trained with "
                              f"{source.config.stages[i].model_dump(mode='json')}; drop stages.{i} to take it")
    stages = [s.model_dump(mode="json") for s in (*source.config.stages[:k], *cfg.stages[k:])]
    merged = {**cfg.model_dump(mode="json"), "stages": stages}
    merged["model"] = {**merged["model"], **adopted}
    return TrainConfig.model_validate(merged)


def _head_shapes(heads: list) -> list[dict[str, Any]]:
    """The heads as their weights see them: everything but their loss weights."""
    return [h.model_dump(mode="json", exclude={"alpha"}) for h in heads]
