from __future__ import annotations

import json
import shutil
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse

from fpar_models.presets import PRESETS
from service.analyses import ask_worker
from service.deps import QueueDep, SettingsDep, StoreDep
from service.errors import Problem
from service.schemas import ModelOut, ModelPatch, PresetOut

router = APIRouter(tags=["models"])


def serving(store) -> dict[str, list[dict]]:
    """model id -> how each live predict worker serves it (from the workers' heartbeats)."""
    found: dict[str, list[dict]] = {}
    for worker in store.workers():
        for model_id, choice in (worker.get("models") or {}).items():
            found.setdefault(model_id, []).append({"worker": worker["name"], **choice})
    return found


@router.get("/models", response_model=list[ModelOut], summary="Trained models, newest first")
def list_models(store: StoreDep) -> list[ModelOut]:
    served = serving(store)
    return [ModelOut.from_record(m, served.get(m["id"])) for m in store.models()]


@router.get("/models/{model_id}", response_model=ModelOut)
def get_model(model_id: str, store: StoreDep) -> ModelOut:
    model = store.get_model(model_id)
    if model is None:
        raise Problem(404, f"model '{model_id}' not found", kind="unknown-model")
    return ModelOut.from_record(model, serving(store).get(model_id))


@router.patch("/models/{model_id}", response_model=ModelOut,
              summary="Serve the model in another precision (opt-in bf16/int8; cost reported)")
def patch_model(model_id: str, change: ModelPatch, store: StoreDep) -> ModelOut:
    model = store.set_model_precision(model_id, change.inference_precision)
    if model is None:
        raise Problem(404, f"model '{model_id}' not found", kind="unknown-model")
    return ModelOut.from_record(model, serving(store).get(model_id))


@router.delete("/models/{model_id}", status_code=204, response_class=Response,
               summary="Remove a model: its registry entry and its files (409 while a job uses it)")
def delete_model(model_id: str, settings: SettingsDep, store: StoreDep) -> Response:
    meta = store.get_model(model_id)
    if meta is None:
        raise Problem(404, f"model '{model_id}' not found", kind="unknown-model")
    for job_id, request in store.active_requests():
        if model_id in uses(request):
            raise Problem(409, f"job '{job_id}' uses model '{model_id}': wait for it or cancel it", kind="wrong-state")
    store.delete_model(model_id)
    folder = (settings.model_dir / meta["path"]).parent
    if folder.resolve().parent == settings.model_dir.resolve():  # the model's own folder, nothing else
        shutil.rmtree(folder, ignore_errors=True)
    return Response(status_code=204)


def uses(request: dict) -> set[str]:
    """The models a job's request names: a prediction's model, a two-stream training's sources."""
    model = request.get("model")
    if isinstance(model, str):
        return {model}
    if isinstance(model, dict):
        return {model[k] for k in ("rgb_model", "flow_model") if isinstance(model.get(k), str)}
    return set()


@router.get("/presets", response_model=list[PresetOut], summary="The papers' configurations")
def list_presets() -> list[PresetOut]:
    return [PresetOut(name=p.name, description=p.description, source=p.source, config=p.config)
            for p in PRESETS.values()]


@router.get("/models/{model_id}/export", response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}, "description": "a zip: the graph, metadata.json "
                             "(classes, inputs, preprocessing), labels.txt (and config.pbtxt for Triton)"}},
            summary="The model as an artefact for ONNX Runtime / Triton, OpenVINO (Model Server) or TorchScript")
def export_model(model_id: str, request: Request, settings: SettingsDep, store: StoreDep, queue: QueueDep,
                 format: Literal["onnx", "openvino", "torchscript"] = "onnx") -> FileResponse:
    if store.get_model(model_id) is None:
        raise Problem(404, f"model '{model_id}' not found", kind="unknown-model")
    answer = ask_worker(request.app.state.store.r, settings, queue, model_id, f"export-{format}")
    path = settings.model_dir / json.loads(answer["body"])["file"]
    if not path.is_file():
        raise Problem(503, f"the {format} artefact is in the model store, which this gateway cannot read "
                      f"({settings.model_dir}): share FPAR_MODEL_DIR with the workers", kind="unavailable")
    return FileResponse(path, media_type="application/zip", filename=f"{model_id}-{format}.zip")
