"""Trained models: the registry, opt-in serving precision, removal, the presets, and exports
built by a worker."""
from __future__ import annotations

import json
from typing import Literal

from fastapi import APIRouter, Response
from fastapi.responses import FileResponse

from core.store.answers import answer_key
from fpar_models.presets import PRESETS
from service.answers import ask_worker
from service.deps import (
    AnswersDep,
    JobsDep,
    ModelDep,
    ModelsDep,
    ModelStoreDep,
    QueueDep,
    SettingsDep,
    WorkersDep,
    unknown_model,
)
from service.errors import Problem
from service.schemas import ModelOut, ModelPatch, PresetOut

router = APIRouter(tags=["models"])


@router.get("/models", response_model=list[ModelOut], summary="Trained models, newest first")
def list_models(models: ModelsDep, workers: WorkersDep) -> list[ModelOut]:
    served = workers.serving()
    return [ModelOut.from_record(m, served.get(m.id)) for m in models.newest()]


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model: ModelDep, workers: WorkersDep) -> ModelOut:
    return ModelOut.from_record(model, workers.serving().get(model.id))


@router.patch("/models/{model_id}", response_model=ModelOut,
              summary="Serve the model in another precision (opt-in bf16/int8; cost reported)")
def patch_model(model: ModelDep, change: ModelPatch, models: ModelsDep, workers: WorkersDep) -> ModelOut:
    changed = models.set_precision(model.id, change.inference_precision)
    if changed is None:  # deleted meanwhile
        raise unknown_model(model.id)
    return ModelOut.from_record(changed, workers.serving().get(model.id))


@router.delete("/models/{model_id}", status_code=204, response_class=Response,
               summary="Remove a model: its registry entry and its files (409 while a job uses it)")
def delete_model(model: ModelDep, store: ModelStoreDep, models: ModelsDep, jobs: JobsDep) -> Response:
    for job_id, request in jobs.active_requests():
        if model.id in uses(request):
            raise Problem(409, f"job '{job_id}' uses model '{model.id}': wait for it or cancel it", kind="wrong-state")
    models.delete(model.id)
    store.delete(f"{model.id}/")  # the model's own folder (an id is one path segment), nothing else
    return Response(status_code=204)


def uses(request: dict) -> set[str]:
    """The models a job's request names: a prediction's model, a two-stream training's
    sources, the model a training starts from."""
    model = request.get("model")
    if isinstance(model, str):
        return {model}
    named = [model.get(k) for k in ("rgb_model", "flow_model")] if isinstance(model, dict) else []
    source = request.get("init_from")
    named.append(source.get("model") if isinstance(source, dict) else None)
    return {ref for ref in named if isinstance(ref, str)}


@router.get("/presets", response_model=list[PresetOut], summary="The papers' configurations")
def list_presets() -> list[PresetOut]:
    return [PresetOut(name=p.name, description=p.description, source=p.source, config=p.config)
            for p in PRESETS.values()]


@router.get("/models/{model_id}/export", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}, "description": "a zip: the graph, metadata.json "
                             "(classes, inputs, preprocessing), labels.txt (and config.pbtxt for Triton)"}},
            summary="The model as an artefact for ONNX Runtime / Triton, OpenVINO (Model Server) or TorchScript")
def export_model(model: ModelDep, settings: SettingsDep, store: ModelStoreDep, answers: AnswersDep, queue: QueueDep,
                 format: Literal["onnx", "openvino", "torchscript"] = "onnx") -> FileResponse:
    key = answer_key(model.id, "export", format)
    answer = ask_worker(answers, settings, key, lambda: queue.export(key, model.id, format),
                        f"the {format} export of model '{model.id}'")
    try:
        path = store.path(json.loads(answer.body)["file"])
    except FileNotFoundError:
        raise Problem(503, f"the {format} artefact is in the workers' model store, which this gateway does not "
                      f"read ({store.url}): give it the workers' FPAR_MODEL_STORE", kind="unavailable") from None
    return FileResponse(path, media_type="application/zip", filename=f"{model.id}-{format}.zip")
