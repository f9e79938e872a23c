"""The Open Inference Protocol v2 (KServe, Triton), so existing inference clients work:
health, server and model metadata, readiness, and inference on decoded frames. Inference
goes through the same queue, batching and predict workers as /predict; it answers every
class's probability, in class order (`parameters.labels` of the model metadata names them).

    frames  UINT8  [T, H, W, 3]   RGB frames in temporal order (any count and size)
    flow    UINT8  [T, H, W, 2]   flow models: x and y flow images
    -> probabilities  FP32  [1, C]
"""
from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Header, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from core.store.jobs import JobStore
from core.store.records import JobKind, JobRecord, JobStatus, ModelRecord, PredictOptions, new_id
from service import oip, uploads
from service.checks import ready_workers
from service.deps import JobsDep, ModelDep, SettingsDep, WorkersDep
from service.errors import Problem, field_error
from service.submit import enqueue_prediction

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
public = APIRouter(prefix="/v2", tags=["open inference protocol"])  # health: open, as /healthz and /readyz
TENSORS = {"rgb": ("frames", 3, "RGB frames in temporal order"), "flow": ("flow", 2, "x and y optical flow images")}


@router.get("", summary="Server metadata")
def server_metadata(request: Request) -> dict:
    return {"name": "fpar-serve", "version": request.app.version, "extensions": ["binary_tensor_data"]}


@public.get("/health/live", summary="Liveness")
def live() -> dict:
    return {"live": True}


@public.get("/health/ready", summary="Readiness: Redis reachable and a worker alive (503 otherwise)")
def ready(workers: WorkersDep) -> dict:
    ready_workers(workers)
    return {"ready": True}


@router.get("/models/{model_id}", summary="Model metadata: its tensors, and its class labels in parameters.labels")
def model_metadata(model: ModelDep) -> dict:
    inputs = [{"name": TENSORS[i][0], "datatype": "UINT8", "shape": [-1, -1, -1, TENSORS[i][1]]}
              for i in model.inputs]
    return {"name": model.id, "versions": ["1"], "platform": "fpar-serve", "inputs": inputs,
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [1, len(model.classes)]}],
            "parameters": {"labels": model.classes, "frames": model.frames, "image_size": model.image_size,
                           "arch": model.arch, "preset": model.preset}}


@router.get("/models/{model_id}/ready", summary="The model is registered and a worker is alive")
def model_ready(model: ModelDep, workers: WorkersDep) -> dict:
    ready_workers(workers)
    return {"name": model.id, "ready": True}


@router.post("/models/{model_id}/infer", summary="Inference: JSON tensors, or the binary tensor data extension",
             responses={200: {"content": {"application/json": {}, "application/octet-stream": {}},
                              "description": "probabilities, JSON or binary as asked for"}})
async def infer(model: ModelDep, request: Request, settings: SettingsDep, jobs: JobsDep,
                inference_header_content_length: Annotated[str | None, Header()] = None) -> Response:
    body = await request.body()
    # the rest on a thread: decoding, the queue and the wait would hold up the event loop
    return await run_in_threadpool(answer, model, body, inference_header_content_length, settings, jobs)


def answer(model: ModelRecord, body: bytes, header_length: str | None, settings, jobs: JobStore) -> Response:
    parsed = oip.parse(body, header_length)
    arrays = prepare(model, parsed.tensors, settings)
    job_id = new_id(JobKind.predict)
    options = PredictOptions(model=model.id, top_k=len(model.classes), explain=False, protocol="v2")
    enqueue_prediction(jobs, settings, job_id, options, arrays)
    job = ended(jobs.wait_done(job_id, settings.max_wait_s, queued_now=True), job_id, settings.max_wait_s)
    probabilities = np.zeros((1, len(model.classes)), np.float32)
    for row in job.result["top_k"]:
        probabilities[0, row["index"]] = row["probability"]
    body, headers = oip.answer(model.id, parsed, {"probabilities": ("FP32", probabilities)})
    return Response(body, headers=headers, media_type=headers.pop("content-type"))


def prepare(model: ModelRecord, tensors: dict[str, np.ndarray], settings) -> dict[str, np.ndarray]:
    """The model's inputs from the request's tensors; a 422 names the one missing or misshapen."""
    expected = {TENSORS[i][0] for i in model.inputs}
    unknown = sorted(set(tensors) - expected)
    if unknown:
        raise field_error(["inputs"], f"unknown input {unknown}; model '{model.id}' takes {sorted(expected)}")
    limits = uploads.Limits.of(settings)
    arrays = {}
    for kind in model.inputs:
        name, channels, what = TENSORS[kind]
        tensor = tensors.get(name)
        if tensor is None:
            raise field_error(["inputs"], f"model '{model.id}' needs `{name}`: {what}, UINT8 [T, H, W, {channels}]")
        if tensor.dtype != np.uint8 or tensor.ndim != 4 or tensor.shape[3] != channels or 0 in tensor.shape:
            raise field_error(["inputs", name], f"UINT8 [T, H, W, {channels}] with T, H, W > 0 expected, "
                              f"got {oip.datatype(tensor.dtype)} {list(tensor.shape)}")
        if len(tensor) > settings.max_frames:
            raise field_error(["inputs", name], f"{len(tensor)} frames; at most {settings.max_frames} "
                              "(FPAR_MAX_FRAMES)")
        if kind == "rgb":
            arrays["rgb"] = uploads.rgb_from_array(tensor, model.frames, model.image_size, name, limits,
                                                   model.config.sampling)
        else:
            arrays["flow"] = uploads.flow_from_array(tensor, model.stack_size, model.eval_stacks, model.image_size,
                                                     name, limits, model.config.sampling)
    return arrays


def ended(job: JobRecord | None, job_id: str, timeout_s: float) -> JobRecord:
    """The job when it succeeded; otherwise the problem to answer."""
    if job is None:
        raise Problem(503, f"inference job {job_id} expired before it ended; retry", kind="unavailable")
    if job.status == JobStatus.succeeded:
        return job
    if job.ended:
        error = job.error or {}
        status = 422 if error.get("type") == "invalid_input" else 503
        raise Problem(status, f"inference job {job_id} {job.status}: {error.get('message', job.status)}",
                      kind="invalid-field" if status == 422 else "unavailable")
    raise Problem(503, f"no answer within {timeout_s:g} s (job {job_id} is still {job.status}); retry later",
                  kind="unavailable", headers={"Retry-After": "5"})
