"""The pictures: training curves of a job, an experiment's curves, and, from a predict
worker, a model's confusion matrix, CAMs and head predictions on its dataset's videos."""
from __future__ import annotations

import json
import re
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Query, Response

from core.settings import Settings
from core.store.answers import answer_key
from core.store.jobs import JobStore
from core.store.records import Answer, Experiment, JobKind, JobStatus, ModelRecord
from fpar_models import plots
from fpar_models.data.gtea61 import RGB_DIR
from fpar_models.formatting import format_value
from service.answers import ask_worker
from service.deps import AnswersDep, ExperimentDep, JobDep, JobsDep, ModelDep, QueueDep, SettingsDep
from service.errors import Problem, field_error

router = APIRouter(tags=["pictures"])
PNG = {200: {"content": {"image/png": {}}, "description": "a PNG image"}}
VIDEO = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}/[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
VideoParam = Annotated[str, Query(description="a video of the model's dataset: user/action/number, e.g. S2/lift_cup/1")]


def _png(data: bytes) -> Response:
    return Response(data, media_type="image/png", headers={"Cache-Control": "no-cache"})


@router.get("/jobs/{job_id}/plot.png", response_class=Response, responses=PNG,
            summary="Loss and accuracy per epoch, training and validation, stages marked")
def job_plot(job: JobDep) -> Response:
    if job.kind != JobKind.train:
        raise Problem(404, f"training job '{job.id}' not found", kind="unknown-job")
    if not job.metrics:
        raise Problem(409, f"job '{job.id}' has no finished epoch yet ({job.status})", kind="wrong-state")
    cfg = job.request
    title = f"{job.id}: {cfg.get('preset')}, {cfg.get('frames')} frames, {job.status}"
    return _png(plots.training_curves(job.metrics, title))


@router.get("/experiments/{exp_id}/plot.png", response_class=Response, responses=PNG,
            summary="Validation accuracy per epoch of every grid point: mean over trials, min-max band")
def experiment_plot(exp: ExperimentDep, jobs: JobsDep) -> Response:
    if exp.search:
        return search_plot(exp, jobs)
    series, bounds = [], []
    for row in exp.table:
        children = [jobs.get(j.id) for j in exp.jobs if j.point == row["point"]]
        curves = [job.metrics for job in children if job and job.metrics]
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
        raise Problem(409, f"experiment '{exp.id}' has no finished epoch yet ({exp.status})", kind="wrong-state")
    return _png(plots.experiment_curves(series, f"{exp.name} ({exp.id}, {exp.status})", bounds))


def search_plot(exp: Experiment, jobs: JobStore) -> Response:
    trials, bounds = [], []
    for child in sorted(exp.jobs, key=lambda j: j.trial):
        job = jobs.get(child.id)
        rows = (job.metrics or []) if job else []
        bounds = bounds or plots.stage_bounds(rows)
        label = ", ".join(f"{path}={value:.3g}" if isinstance(value, float) else f"{path}={format_value(value)}"
                          for path, value in child.point.items())  # a sampled float: three digits say enough
        trials.append({"number": child.trial, "label": label, "val_acc": [r["val_acc"] for r in rows],
                       "value": child.best_val_acc if child.status == JobStatus.succeeded else None,
                       "pruned": child.reason == "pruned"})
    if not any(t["val_acc"] for t in trials):
        raise Problem(409, f"experiment '{exp.id}' has no finished epoch yet ({exp.status})", kind="wrong-state")
    return _png(plots.search_curves(trials, f"{exp.name} ({exp.id}, {exp.status}, {exp.search.method} search, "
                                            f"{exp.search.pruner or 'no'} pruner)", bounds))


# -- a model on its dataset, computed by a predict worker ----------------------------------

def analysis(model: ModelRecord, kind: str, answers, queue, settings: Settings, video: str | None = None) -> Answer:
    key = answer_key(model.id, kind, video)
    return ask_worker(answers, settings, key, lambda: queue.analyse(key, model.id, kind, video),
                      f"the {kind} of model '{model.id}'")


def _video(model: ModelRecord, video: str, settings: Settings) -> str:
    if not VIDEO.match(video):
        raise field_error(["query", "video"], f"'{video}' is not user/action/number (e.g. S2/lift_cup/1)")
    dataset = model.config.dataset
    if not (settings.data.mirror(dataset) / RGB_DIR / video).is_dir():
        raise Problem(404, f"video '{video}' not found in dataset '{dataset}'", kind="unknown-video",
                      errors=[{"loc": ["query", "video"], "msg": "not found"}])
    return video


@router.get("/models/{model_id}/confusion", summary="Confusion matrix on the model's validation users "
            "(rows: true class)")
def model_confusion(model: ModelDep, settings: SettingsDep, answers: AnswersDep, queue: QueueDep) -> dict[str, Any]:
    return json.loads(analysis(model, "confusion", answers, queue, settings).body)


@router.get("/models/{model_id}/confusion.png", response_class=Response, responses=PNG,
            summary="The confusion matrix as a picture")
def model_confusion_png(model: ModelDep, settings: SettingsDep, answers: AnswersDep, queue: QueueDep) -> Response:
    found = json.loads(analysis(model, "confusion", answers, queue, settings).body)
    matrix = np.asarray(found["matrix"])
    title = (f"{model.id} ({model.preset}) on {', '.join(model.config.val_users)}: "
             f"accuracy {100 * np.trace(matrix) / max(matrix.sum(), 1):.1f}% of {int(matrix.sum())} videos")
    return _png(plots.confusion(found["classes"], matrix, title))


@router.get("/models/{model_id}/cam.png", response_class=Response, responses=PNG,
            summary="A dataset video's sampled frames with the model's CAM over each")
def model_cam(model: ModelDep, video: VideoParam, settings: SettingsDep, answers: AnswersDep,
              queue: QueueDep) -> Response:
    if "rgb" not in model.inputs:
        raise field_error(["model"], f"model '{model.id}' sees only optical flow: it has no class activation map")
    return _png(analysis(model, "cam", answers, queue, settings, _video(model, video, settings)).body)


@router.get("/models/{model_id}/heads.png", response_class=Response, responses=PNG,
            summary="What the self-supervised heads predict on a dataset video, beside the truth")
def model_heads(model: ModelDep, video: VideoParam, settings: SettingsDep, answers: AnswersDep,
                queue: QueueDep) -> Response:
    if not model.config.model.heads:
        raise Problem(404, f"model '{model.id}' has no self-supervised heads", kind="no-picture")
    return _png(analysis(model, "heads", answers, queue, settings, _video(model, video, settings)).body)
