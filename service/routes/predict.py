"""POST /predict: frames, a video or flow images in, prepared and checked here (a bad file
is a 422 naming it), queued as a prediction job; `wait` answers it when it ends in time."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Header, Response, UploadFile

from core.cpu import meter
from core.store.models import ModelRegistry
from core.store.records import JobKind, ModelRecord, PredictOptions, new_id
from service import idempotency, uploads
from service.deps import IdempotencyDep, JobsDep, ModelsDep, SettingsDep, unknown_job, unknown_model
from service.errors import Problem, field_error
from service.forms import WholeFormRoute
from service.schemas import JobOut
from service.submit import enqueue_prediction, job_response

router = APIRouter(tags=["jobs"], route_class=WholeFormRoute)
Named = list[tuple[str | None, bytes]]
INPUT_NAMES = {"rgb": "frames", "flow": "flow images (flow_x, flow_y)"}


@router.post("/predict", status_code=202, response_model=JobOut,
             responses={200: {"model": JobOut, "description": "the job finished within `wait`"}},
             summary="Queue a prediction on frames (images in temporal order) or one video")
def predict(settings: SettingsDep, jobs: JobsDep, models: ModelsDep, slots: IdempotencyDep,
            frames: Annotated[list[UploadFile] | None, File(description="PNG/JPEG frames, in temporal order")] = None,
            video: Annotated[UploadFile | None, File(description="one video file")] = None,
            flow_x: Annotated[list[UploadFile] | None, File(description="flow models: x-flow images")] = None,
            flow_y: Annotated[list[UploadFile] | None, File(description="flow models: y-flow images")] = None,
            model: Annotated[str | None, Form(description="model id; default: the newest")] = None,
            top_k: Annotated[int, Form(ge=1, le=100)] = 5,
            explain: Annotated[bool, Form(description="return a CAM overlay per frame")] = False,
            wait: Annotated[float, Form(ge=0, description="seconds to wait for the answer")] = 0,
            idempotency_key: Annotated[str | None, Header(description="retries return the same job")] = None
            ) -> Response:
    if wait > settings.max_wait_s:
        raise field_error(["wait"], f"at most {settings.max_wait_s:g} seconds")
    carried = {"rgb"} if frames or video else set()
    carried |= {"flow"} if flow_x or flow_y else set()
    meta = models.get(model) if model else default_model(models, carried)
    if meta is None:
        if model:
            raise unknown_model(model, ["model"])
        raise Problem(404, "no trained model yet: POST /train first", kind="unknown-model",
                      errors=[{"loc": ["model"], "msg": "not found"}])
    for field, files in (("frames", frames), ("flow_x", flow_x), ("flow_y", flow_y)):
        if files and len(files) > settings.max_frames:
            raise field_error([field], f"{len(files)} files; at most {settings.max_frames} (FPAR_MAX_FRAMES)")
    uploaded = {"frames": _read(frames), "video": _read([video] if video else None),
                "flow_x": _read(flow_x), "flow_y": _read(flow_y)}
    arrays = prepare_inputs(meta, uploaded, explain, settings.max_frames, uploads.Limits.of(settings))

    job_id = new_id(JobKind.predict)
    options = PredictOptions(model=meta.id, top_k=top_k, explain=explain)
    with meter.stage("submit"):
        prior = None
        if idempotency_key is not None:  # the fingerprint hashes every uploaded byte: only when it is needed
            fp = idempotency.fingerprint(options.model_dump(exclude_none=True),
                                         *(d for files in uploaded.values() for _, d in files))
            prior = idempotency.claim(slots, jobs, JobKind.predict, idempotency_key, fp, job_id,
                                      settings.predict_ttl_s)
        if prior is None:
            try:
                queued = enqueue_prediction(jobs, settings, job_id, options, arrays)
            except Exception:
                idempotency.release(slots, JobKind.predict, idempotency_key)
                raise
            if wait <= 0:  # a promise to answer 202 with the job queued, however fast the worker
                return job_response(queued, 202)
    with meter.stage("answer"):
        job = jobs.wait_done(prior or job_id, wait, queued_now=prior is None)
        if job is None:  # a retry's first job, expired since
            raise unknown_job(prior or job_id)
        return job_response(job, 200 if wait > 0 and job.ended else 202)


def default_model(models: ModelRegistry, carried: set[str]) -> ModelRecord | None:
    """The newest model that takes what the request carries (frames -> an RGB model, frames
    and flow -> any), so a newly trained flow model does not capture frame-only requests."""
    newest = models.newest()
    if not newest or not carried:
        return newest[0] if newest else None
    fitting = next((m for m in newest if m.takes(carried)), None)
    if fitting is None:
        sent = " and ".join(INPUT_NAMES[i] for i in sorted(carried))
        needed = " and ".join(INPUT_NAMES[i] for i in newest[0].inputs)
        raise field_error(["model"], f"no trained model takes {sent} alone; the newest model needs {needed}: "
                          "send those, or name a model")
    return fitting


def _read(files: list[UploadFile] | None) -> Named:
    return [(f.filename, f.file.read()) for f in files or []]


def prepare_inputs(meta: ModelRecord, uploaded: dict[str, Named], explain: bool, max_frames: int,
                   limits: uploads.Limits) -> dict:
    """The arrays the model takes, from what was uploaded; a 422 names what is missing or bad."""
    t, size, sampling = meta.frames, meta.image_size, meta.config.sampling  # as it was trained
    frames, video = uploaded["frames"], uploaded["video"]
    arrays = {}
    if "rgb" in meta.inputs:
        if frames and video:
            raise field_error(["video"], "send frames or a video, not both")
        if frames:
            arrays["rgb"] = uploads.rgb_from_images(frames, t, size, limits, sampling)
        elif video:
            arrays["rgb"] = uploads.rgb_from_video(video[0][1], t, size, max_frames, limits, sampling)
        else:
            raise field_error(["frames"], "no frames: send one or more images as `frames`, or a `video`")
    elif explain:
        raise field_error(["explain"], f"model '{meta.id}' sees only optical flow: no CAM to show")
    if "flow" in meta.inputs:
        flow_x, flow_y = uploaded["flow_x"], uploaded["flow_y"]
        if not flow_x or not flow_y:
            raise field_error(["flow_x" if not flow_x else "flow_y"],
                              f"model '{meta.id}' needs flow images: send `flow_x` and `flow_y`")
        arrays["flow"] = uploads.flow_from_images(flow_x, flow_y, meta.stack_size, meta.eval_stacks, size, limits,
                                                  sampling)
    return arrays
