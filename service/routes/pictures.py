"""The pictures: training curves of a job, an experiment's curves, and, from a predict
worker, a model's confusion matrix, CAMs and head predictions on its dataset's videos."""
from __future__ import annotations

import json
import re
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Request, Response

from fpar_models import plots
from fpar_models.data.gtea61 import RGB_DIR
from fpar_models.formatting import format_value
from service.analyses import ask_worker
from service.deps import QueueDep, SettingsDep, StoreDep
from service.errors import Problem, field_error
from service.routes.experiments import _get as get_experiment
from service.settings import Settings

router = APIRouter(tags=["pictures"])
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
VIDEO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VideoParam = Annotated[str, Query(description="a video of the model's dataset: user/action/number, e.g. S2/lift_cup/1")]


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/jobs/{job_id}/plot.png", response_class=Response, responses=PNG,
            summary="Loss and accuracy per epoch, training and validation, stages marked")
def job_plot(job_id: str, store: StoreDep) -> Response:
    job = store.get(job_id)
    if job is None or job["kind"] != "train":
        raise Problem(404, f"training job '{job_id}' not found", kind="unknown-job")
    if not job["metrics"]:
        raise Problem(409, f"job '{job_id}' has no finished epoch yet ({job['status']})", kind="wrong-state")
    cfg = job["request"]
    title = f"{job_id}: {cfg.get('preset')}, {cfg.get('frames')} frames, {job['status']}"
    return _png(plots.training_curves(job["metrics"], title))


@router.get("/experiments/{exp_id}/plot.png", response_class=Response, responses=PNG,
            summary="Validation accuracy per epoch of every grid point: mean over trials, min-max band")
def experiment_plot(exp_id: str, request: Request, store: StoreDep) -> Response:
    exp = get_experiment(request, exp_id)
    series, bounds = [], []
    for row in exp["table"]:
        jobs = [store.get(j["id"]) for j in exp["jobs"] if j["point"] == row["point"]]
        curves = [job["metrics"] for job in jobs if job and job["metrics"]]
        if not curves:
            continue
        bounds = bounds or plots.stage_bounds(max(curves, key=len))
        longest = max(len(c) for c in curves)
        acc = np.full((len(curves), longest), np.nan)
        for i, c in enumerate(curves):
            acc[i, :len(c)] = [r["val_acc"] for r in c]
        label = ", ".join(f"{path}={format_value(value)}" for path, value in row["point"].items()) or "base"
        series.append({"label": f"{label} (n={len(curves)})", "mean": np.nanmean(acc, 0),
                       "low": np.nanmin(acc, 0), "high": np.nanmax(acc, 0)})
    if not series:
        raise Problem(409, f"experiment '{exp_id}' has no finished epoch yet ({exp['status']})", kind="wrong-state")
    return _png(plots.experiment_curves(series, f"{exp['name']} ({exp_id}, {exp['status']})", bounds))


# -- a model on its dataset, computed by a predict worker ----------------------------------

def model_record(store, model_id: str) -> dict[str, Any]:
    meta = store.get_model(model_id)
    if meta is None:
        raise Problem(404, f"model '{model_id}' not found", kind="unknown-model")
    return meta


def _video(meta: dict[str, Any], video: str, settings: Settings) -> str:
    if not VIDEO.match(video):
        raise field_error(["query", "video"], f"'{video}' is not user/action/number (e.g. S2/lift_cup/1)")
    dataset = meta["config"]["dataset"]
    if not (settings.data_dir / dataset / RGB_DIR / video).is_dir():
        raise Problem(404, f"video '{video}' not found in dataset '{dataset}'", kind="unknown-video",
                      errors=[{"loc": ["query", "video"], "msg": "not found"}])
    return video


@router.get("/models/{model_id}/confusion", summary="Confusion matrix on the model's validation users "
            "(rows: true class)")
def model_confusion(model_id: str, request: Request, settings: SettingsDep, store: StoreDep,
                    queue: QueueDep) -> dict[str, Any]:
    model_record(store, model_id)
    return json.loads(ask_worker(request.app.state.store.r, settings, queue, model_id, "confusion")["body"])


@router.get("/models/{model_id}/confusion.png", response_class=Response, responses=PNG,
            summary="The confusion matrix as a picture")
def model_confusion_png(model_id: str, request: Request, settings: SettingsDep, store: StoreDep,
                        queue: QueueDep) -> Response:
    meta = model_record(store, model_id)
    found = json.loads(ask_worker(request.app.state.store.r, settings, queue, model_id, "confusion")["body"])
    matrix = np.asarray(found["matrix"])
    title = (f"{model_id} ({meta['preset']}) on {', '.join(meta['config']['val_users'])}: "
             f"accuracy {100 * np.trace(matrix) / max(matrix.sum(), 1):.1f}% of {int(matrix.sum())} videos")
    return _png(plots.confusion(found["classes"], matrix, title))


@router.get("/models/{model_id}/cam.png", response_class=Response, responses=PNG,
            summary="A dataset video's sampled frames with the model's CAM over each")
def model_cam(model_id: str, video: VideoParam, request: Request, settings: SettingsDep, store: StoreDep,
              queue: QueueDep) -> Response:
    meta = model_record(store, model_id)
    if "rgb" not in meta["inputs"]:
        raise field_error(["model"], f"model '{model_id}' sees only optical flow: it has no class activation map")
    found = ask_worker(request.app.state.store.r, settings, queue, model_id, "cam", _video(meta, video, settings))
    return _png(found["body"])


@router.get("/models/{model_id}/heads.png", response_class=Response, responses=PNG,
            summary="What the self-supervised heads predict on a dataset video, beside the truth")
def model_heads(model_id: str, video: VideoParam, request: Request, settings: SettingsDep, store: StoreDep,
                queue: QueueDep) -> Response:
    meta = model_record(store, model_id)
    if not meta["config"]["model"]["heads"]:
        raise Problem(404, f"model '{model_id}' has no self-supervised heads", kind="no-picture")
    found = ask_worker(request.app.state.store.r, settings, queue, model_id, "heads", _video(meta, video, settings))
    return _png(found["body"])
