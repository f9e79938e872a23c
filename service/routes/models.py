from __future__ import annotations

from fastapi import APIRouter

from fpar_models.presets import PRESETS
from service.deps import StoreDep
from service.errors import Problem
from service.schemas import ModelOut, PresetOut

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


@router.get("/presets", response_model=list[PresetOut], summary="The papers' configurations")
def list_presets() -> list[PresetOut]:
    return [PresetOut(name=p.name, description=p.description, source=p.source, config=p.config)
            for p in PRESETS.values()]
