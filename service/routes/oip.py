"""The Open Inference Protocol v2 (KServe, Triton), so existing inference clients work:
health, server and model metadata, readiness, and inference on decoded frames. Inference
goes through the same queue, batching and predict workers as /predict; it answers every
class's probability, in class order (`parameters.labels` of the model metadata names them).

    frames  UINT8  [T, H, W, 3]   RGB frames in temporal order (any count and size)
    flow    UINT8  [T, H, W, 2]   flow models: x and y flow images
    -> probabilities  FP32  [1, C]
"""
from __future__ import annotations

import asyncio
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response

from service import oip, uploads
from service.deps import QueueDep, SettingsDep, StoreDep
from service.errors import Problem, field_error
from service.jobs import new_id
from service.routes.health import readyz
from service.routes.predict import enqueue

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
public = APIRouter(prefix="/v2", tags=["open inference protocol"])  # health: open, as /healthz and /readyz
TENSORS = {"rgb": ("frames", 3, "RGB frames in temporal order"), "flow": ("flow", 2, "x and y optical flow images")}


def _model(store, model_id: str) -> dict:
    meta = store.get_model(model_id)
    if meta is None:
        raise Problem(404, f"model '{model_id}' not found", kind="unknown-model")
    return meta


@router.get("", summary="Server metadata")
def server_metadata(request: Request) -> dict:
    return {"name": "fpar-serve", "version": request.app.version, "extensions": ["binary_tensor_data"]}


@public.get("/health/live", summary="Liveness")
def live() -> dict:
    return {"live": True}


@public.get("/health/ready", summary="Readiness: Redis reachable and a worker alive (503 otherwise)")
def ready(store: StoreDep) -> dict:
    readyz(store)
    return {"ready": True}


@router.get("/models/{model_id}", summary="Model metadata: its tensors, and its class labels in parameters.labels")
def model_metadata(model_id: str, store: StoreDep) -> dict:
    meta = _model(store, model_id)
    inputs = [{"name": TENSORS[i][0], "datatype": "UINT8", "shape": [-1, -1, -1, TENSORS[i][1]]}
              for i in meta["inputs"]]
    return {"name": model_id, "versions": ["1"], "platform": "fpar-serve", "inputs": inputs,
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [1, len(meta["classes"])]}],
            "parameters": {"labels": meta["classes"], "frames": meta["frames"], "image_size": meta["image_size"],
                           "arch": meta["arch"], "preset": meta.get("preset")}}


@router.get("/models/{model_id}/ready", summary="The model is registered and a worker is alive")
def model_ready(model_id: str, store: StoreDep) -> dict:
    _model(store, model_id)
    readyz(store)
    return {"name": model_id, "ready": True}


@router.post("/models/{model_id}/infer", summary="Inference: JSON tensors, or the binary tensor data extension",
             responses={200: {"content": {"application/json": {}, "application/octet-stream": {}},
                              "description": "probabilities, JSON or binary as asked for"}})
async def infer(model_id: str, request: Request, settings: SettingsDep, store: StoreDep, queue: QueueDep,
                inference_header_content_length: Annotated[str | None, Header()] = None) -> Response:
    meta = _model(store, model_id)
    parsed = oip.parse(await request.body(), inference_header_content_length)
    arrays = prepare(meta, parsed.tensors, settings)
    job_id = new_id("predict")
    enqueue(store, queue, settings, job_id, {"model": model_id, "top_k": len(meta["classes"]), "explain": False,
                                            "protocol": "v2"}, arrays, None)
    job = await wait(store, job_id, settings.max_wait_s)
    probabilities = np.zeros((1, len(meta["classes"])), np.float32)
    for row in job["result"]["top_k"]:
        probabilities[0, row["index"]] = row["probability"]
    body, headers = oip.answer(model_id, parsed, {"probabilities": ("FP32", probabilities)})
    return Response(body, headers=headers, media_type=headers.pop("content-type"))


def prepare(meta: dict, tensors: dict[str, np.ndarray], settings) -> dict[str, np.ndarray]:
    """The model's inputs from the request's tensors; a 422 names the one missing or misshapen."""
    expected = {TENSORS[i][0] for i in meta["inputs"]}
    unknown = sorted(set(tensors) - expected)
    if unknown:
        raise field_error(["inputs"], f"unknown input {unknown}; model '{meta['id']}' takes {sorted(expected)}")
    arrays = {}
    for kind in meta["inputs"]:
        name, channels, what = TENSORS[kind]
        tensor = tensors.get(name)
        if tensor is None:
            raise field_error(["inputs"], f"model '{meta['id']}' needs `{name}`: {what}, UINT8 [T, H, W, {channels}]")
        if tensor.dtype != np.uint8 or tensor.ndim != 4 or tensor.shape[3] != channels or 0 in tensor.shape:
            raise field_error(["inputs", name], f"UINT8 [T, H, W, {channels}] with T, H, W > 0 expected, "
                              f"got {oip.datatype(tensor.dtype)} {list(tensor.shape)}")
        if len(tensor) > settings.max_frames:
            raise field_error(["inputs", name], f"{len(tensor)} frames; at most {settings.max_frames} "
                              "(FPAR_MAX_FRAMES)")
        if kind == "rgb":
            arrays["rgb"] = uploads.rgb_from_array(tensor, meta["frames"], meta["image_size"], name,
                                                   settings.upload_limits)
        else:
            arrays["flow"] = uploads.flow_from_array(tensor, meta["stack_size"], meta["eval_stacks"],
                                                     meta["image_size"], name, settings.upload_limits)
    return arrays


async def wait(store, job_id: str, timeout_s: float) -> dict:
    await asyncio.to_thread(store.wait_done, job_id, timeout_s)
    job = store.get(job_id, metrics=False)
    if job["status"] == "succeeded":
        return job
    if job["status"] in ("failed", "cancelled"):
        error = job.get("error") or {}
        status = 422 if error.get("type") == "invalid_input" else 503
        raise Problem(status, f"inference job {job_id} {job['status']}: {error.get('message', job['status'])}",
                      kind="invalid-field" if status == 422 else "unavailable")
    raise Problem(503, f"no answer within {timeout_s:g} s (job {job_id} is still {job['status']}); retry later",
                  kind="unavailable", headers={"Retry-After": "5"})
