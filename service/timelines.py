"""Accepting a timeline: the video found (a file under the data directory, or an upload
streamed into the spool the workers read), probed, the model resolved and the window
checked against what the model samples, the job queued once per live predict worker. Every
refusal is the problem a client should see, and an upload refused leaves nothing behind."""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from fastapi import Response
from starlette.datastructures import UploadFile

from core.settings import Settings
from core.store import Stores
from core.store.records import JobKind, ModelRecord
from core.tasks import QUEUE_OF, TaskQueue
from fpar_models.ingest.video import VideoError, VideoInfo, probe
from fpar_models.timeline.options import (
    TimelineJob,
    TimelineOptions,
    TrainingData,
    plan_windows,
    spool,
    upload_prefix,
)
from fpar_models.timeline.sampler import ModelInputs
from service import archives, idempotency
from service.checks import check_queue_room
from service.deps import unknown_model
from service.errors import Problem, field_error
from service.schemas import JobOut
from service.submit import accepted

MAX_WINDOWS = 100_000
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def submit_upload(options: TimelineOptions, video: UploadFile, job_id: str, response: Response, settings: Settings,
                  stores: Stores, queue: TaskQueue, key: str | None = None) -> JobOut:
    """Stream the upload into the spool (never whole into memory, hashed on the way for
    Idempotency-Key), then submit it."""
    name = _UNSAFE.sub("_", Path(video.filename or "").name).strip("._") or "video.mp4"
    folder = spool(settings.data_dir, job_id)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        with open(folder / name, "wb") as out:
            while chunk := video.file.read(archives.CHUNK):
                digest.update(chunk)
                out.write(chunk)
        settings.data.put(upload_prefix(job_id) + name, folder / name)  # (to an s3:// data store: the workers')
        answer = submit(options, folder / name, name, True, job_id, response, settings, stores, queue, key=key,
                        content=digest.hexdigest())
    except BaseException:
        remove_upload(settings, job_id)
        raise
    if answer.id != job_id:  # a retry: the first attempt's job has the video
        remove_upload(settings, job_id)
    return answer


def submit(options: TimelineOptions, video: Path, name: str, uploaded: bool, job_id: str, response: Response,
           settings: Settings, stores: Stores, queue: TaskQueue, *, key: str | None = None,
           content: str | None = None) -> JobOut:
    """Check everything a worker could fail on, then queue the job once per predict worker.
    `content`: the upload's hash; a source file is known by its path, size and time."""
    field = "video" if uploaded else "source"
    check_queue_room(stores.jobs, settings, JobKind.timeline)
    model = _model(options.model, stores)
    info = _probe(video, name, field)
    if info.duration_s > settings.max_video_s:
        raise field_error([field], f"'{name}' is {info.duration_s:.0f} s long; at most {settings.max_video_s:g} s "
                          "(FPAR_MAX_VIDEO_S)")
    data = training_data(model, options, settings)
    plan = _plan(options, model, data, info, video, name, uploaded, settings)
    stat = video.stat()
    fingerprint = idempotency.fingerprint(options.model_dump(), name, content or [plan.video, stat.st_size,
                                                                                  stat.st_mtime_ns])
    prior = idempotency.claim(stores.idempotency, stores.jobs, JobKind.timeline, key, fingerprint, job_id, 24 * 3600)
    if prior:
        return accepted(stores.jobs, prior, response)
    try:
        stores.jobs.create(JobKind.timeline, json.loads(plan.model_dump_json()), job_id=job_id,
                           warnings=_warnings(model, data))
        answer = accepted(stores.jobs, job_id, response)
        helpers = sum(QUEUE_OF[JobKind.timeline] in w.queues for w in stores.workers.live())
        queue.send(JobKind.timeline, job_id, copies=max(1, min(helpers, plan.chunks)))
    except Exception:
        idempotency.release(stores.idempotency, JobKind.timeline, key)
        raise
    return answer


def _model(model_id: str | None, stores: Stores) -> ModelRecord:
    if model_id:
        model = stores.models.get(model_id)
        if model is None:
            raise unknown_model(model_id, ["model"])
        return model
    newest = stores.models.newest(limit=1)
    if not newest:
        raise Problem(404, "no trained model yet: POST /train first", kind="unknown-model",
                      errors=[{"loc": ["model"], "msg": "not found"}])
    return newest[0]


def _probe(video: Path, name: str, field: str) -> VideoInfo:
    try:
        info = probe(video)
    except VideoError as e:
        raise field_error([field], str(e).replace(str(video), f"'{name}'")) from None  # no server paths
    if info.duration_s <= 0:
        raise field_error([field], f"'{name}' does not say how long it is: re-encode it (e.g. with ffmpeg)")
    return info


def training_data(model: ModelRecord, options: TimelineOptions, settings: Settings) -> TrainingData:
    """How the model's training videos were made: as registered, else read off its dataset
    (models registered before it was kept), else assumed, when the window is given."""
    cfg = model.config
    data = model.training_data or TrainingData.of(settings.data.mirror(cfg.dataset), cfg.train_users)
    if data is not None:
        return data
    if options.window is None:
        raise field_error(["window"], f"model '{model.id}' keeps no record of its training clips' length and "
                          f"its dataset '{cfg.dataset}' is not at hand: give `window` (seconds)")
    return TrainingData(clip_frames=model.frames)


def _plan(options: TimelineOptions, model: ModelRecord, data: TrainingData, info: VideoInfo, video: Path, name: str,
          uploaded: bool, settings: Settings) -> TimelineJob:
    """The options resolved and checked: the window holds the frames the model samples, the
    stride fits in it."""
    fps = data.fps or info.fps
    need = ModelInputs.of(model.config).min_frames
    # training clips shorter than the frames the model samples had frames repeated: the default
    # window is never shorter than those frames, or the default itself would be refused below
    window = options.window or round(max(data.clip_frames, need) / fps, 3)
    stride = options.stride or round(window / 2, 3)
    if stride > window:
        raise field_error(["stride"], f"{stride:g} s is longer than the window ({window:g} s): frames between "
                          "windows would be skipped")
    held = round(window * fps)
    if held < need:
        raise field_error(["window"], f"{window:g} s holds {held} frame(s) at {fps:g} fps; model '{model.id}' "
                          f"samples {need}: at least {need / fps:.3f} s")
    field = "video" if uploaded else "source"
    if round(info.duration_s * fps) < need:
        raise field_error([field], f"'{name}' holds {round(info.duration_s * fps)} frame(s) at {fps:g} fps; "
                          f"model '{model.id}' samples {need}")
    windows = len(plan_windows(info.duration_s, window, stride))
    if windows > MAX_WINDOWS:
        raise field_error(["stride"], f"{windows} windows; at most {MAX_WINDOWS}: a longer stride")
    resolved = options.model_copy(update={"model": model.id, "window": window, "stride": stride})
    relative = video.resolve().relative_to(settings.data_dir.resolve())
    return TimelineJob(options=resolved, video=str(relative), name=name, uploaded=uploaded,
                       duration_s=info.duration_s, fps=fps, data=data, windows=windows)


def _warnings(model: ModelRecord, data: TrainingData) -> list[str]:
    """What a user should know: windows made by guesswork where the dataset did not say."""
    if data.source == "manifest":
        return []
    said = [f"frames at the recording's own rate and {data.shorter_side} px at most"]
    if "flow" in model.inputs:
        said.append(f"{data.flow} warp flow, bound {data.bound:g}")
    return [f"model '{model.id}' was trained on a dataset that does not say how its frames were made (no "
            f"manifest: copied in by hand): its windows are made with the ingest's defaults, "
            f"{' and '.join(said)}"]


def remove_upload(settings: Settings, job_id: str) -> None:
    """A timeline's upload, once its job ended (cancelled while queued, or deleted), or
    was never made."""
    settings.data.delete(upload_prefix(job_id))
