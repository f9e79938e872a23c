"""fpar.analyse and fpar.export: short work on a model for a gateway that waits for the
answer (core.store.answers): a confusion matrix, CAM or head pictures on the model's
dataset, a deployable export. Each is computed once per model and kept beside it in the
model store; an error is an answer too, so the gateway never waits on a crash."""
from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from core import tasks
from fpar_models.analysis import NoPicture, cam_picture, confusion_matrix, heads_picture, video_batch
from fpar_models.data.gtea61 import DatasetError
from fpar_models.models import motion_map_grid
from fpar_models.serving import export
from worker.app import app

log = logging.getLogger("fpar.worker")


@app.task(name=tasks.ANALYSE)
def analyse(key: str, model_id: str, kind: str, video: str | None = None) -> None:
    """A model's confusion matrix ('confusion'), CAM grid ('cam') or head pictures ('heads')."""
    answer(key, f"the {kind} of model '{model_id}'", lambda: analysis(model_id, kind, video))


@app.task(name=tasks.EXPORT)
def export_model(key: str, model_id: str, fmt: str) -> None:
    """The model as a deployable zip in the model store; the answer names its path relative
    to the store (the gateway streams it from there)."""
    answer(key, f"the {fmt} export of model '{model_id}'", lambda: ("application/json", json.dumps(
        {"file": export_artefact(model_id, fmt)}).encode()))


def answer(key: str, what: str, compute: Callable[[], tuple[str, bytes]]) -> None:
    answers = app.stores.answers
    try:
        with app.models.exclusive:  # the batcher's thread waits meanwhile, as predictions did behind a task
            media, body = compute()
    except NoPicture as e:
        answers.fail(key, 404, str(e))
    except (LookupError, DatasetError, FileNotFoundError) as e:
        answers.fail(key, 404, str(e).strip("'\""))
    except Exception as e:  # never leave the gateway waiting on a crash
        log.exception("%s failed", what)
        answers.fail(key, 500, f"{what} failed: {type(e).__name__}: {e}")
    else:
        answers.succeed(key, media, body)


def analysis(model_id: str, kind: str, video: str | None) -> tuple[str, bytes]:
    media, suffix = ("application/json", "json") if kind == "confusion" else ("image/png", "png")
    name = f"{kind}-{video.replace('/', '_')}" if video else kind
    key = f"{model_id}/analysis/{name}.{suffix}"
    try:  # drawn before: one read, not a check and then a read
        return media, app.model_store.path(key).read_bytes()
    except FileNotFoundError:
        pass
    predictor, compute = app.models.get(model_id), app.models.compute
    cfg, classes = predictor.config, predictor.classes
    app.settings.data.mirror(cfg.dataset)
    if kind == "confusion":
        matrix = confusion_matrix(predictor.model, cfg, classes, app.settings.data_dir, compute)
        body = json.dumps({"classes": classes, "matrix": matrix.tolist()}).encode()
    else:
        batch = video_batch(cfg, classes, app.settings.data_dir, video,
                            maps=kind == "heads" and motion_map_grid(cfg) is not None)
        draw = cam_picture if kind == "cam" else heads_picture
        body = draw(predictor.model, cfg, classes, batch, compute, f"{model_id} ({cfg.preset}): {video}")
    with staged(f"picture.{suffix}") as file:
        file.write_bytes(body)
        app.model_store.put(key, file)
    return media, body


def export_artefact(model_id: str, fmt: str) -> str:
    relative = f"{model_id}/export/{fmt}.zip"
    if not app.model_store.exists(relative):
        predictor = app.models.get(model_id)
        with staged(f"{fmt}.zip") as built:
            export.build(predictor.model, predictor.config, predictor.classes, fmt, built, model_id)
            app.model_store.put(relative, built)
    return relative


@contextmanager
def staged(name: str):
    """A local file to write before it goes to the model store (then removed)."""
    app.settings.model_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=app.settings.model_dir, prefix=".staged-") as tmp:
        yield Path(tmp) / name
