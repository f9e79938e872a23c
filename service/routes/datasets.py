"""Datasets: what the data directory holds (ready, ingesting, failed), one in detail with
the report of what a training would meet, its preview, deleting it, and ingesting new ones
from recordings: a folder under the data directory, or an uploaded zip/tar archive."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from core.settings import Settings
from core.store import Stores
from core.store.records import ACTIVE, JobKind, new_id
from core.tasks import TaskQueue
from fpar_models.ingest.labels import LabelError
from fpar_models.ingest.options import IngestJob, IngestRequest
from fpar_models.ingest.plan import plan
from fpar_models.ingest.preview import preview_png
from fpar_models.ingest.run import UPLOADS
from fpar_models.ingest.video import VideoError
from service import archives
from service.checks import check_queue_room
from service.datasets import delete, describe, is_dataset, list_datasets, unknown_dataset
from service.deps import QueueDep, SettingsDep, StoresDep
from service.errors import Problem, field_error
from service.schemas import DatasetDetail, DatasetList, JobOut
from service.submit import accepted

router = APIRouter(tags=["datasets"])
PNG = {200: {"content": {"image/png": {}}}}

UPLOAD_SCHEMA = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": {"$ref": "#/components/schemas/IngestRequest"}},
    "multipart/form-data": {"schema": {"type": "object", "required": ["archive", "name"], "properties": {
        "archive": {"type": "string", "format": "binary", "description": "a zip or tar of the recordings "
                    "(and their labels), streamed to disk"},
        "name": {"type": "string"}}, "additionalProperties": {"type": "string", "description": "any field of "
                                                                 "IngestRequest but `source`"}}}}}}


@router.get("/datasets", response_model=DatasetList, summary="Every dataset in the data directory")
def list_all(settings: SettingsDep, stores: StoresDep) -> DatasetList:
    return DatasetList(datasets=list_datasets(settings, stores))


@router.get("/datasets/{name}", response_model=DatasetDetail,
            summary="One dataset: counts per user and class, and every problem a training would meet")
def show(name: str, settings: SettingsDep, stores: StoresDep) -> DatasetDetail:
    found = describe(_named(name), settings, stores, detail=True)
    if found is None:
        raise unknown_dataset(name)
    return found


@router.delete("/datasets/{name}", status_code=204, response_class=Response,
               summary="Delete a dataset (or a failed ingest's name): 409 while a queued or running job uses it")
def remove(name: str, settings: SettingsDep, stores: StoresDep) -> Response:
    delete(_named(name), settings, stores)
    return Response(status_code=204)


@router.get("/datasets/{name}/preview.png", response_class=Response, responses=PNG,
            summary="One video's frames, raw flow, warp flow and motion maps, a row each")
def preview(name: str, settings: SettingsDep,
            video: Annotated[str | None, Query(description="user/class/video; default: the first")] = None
            ) -> Response:
    root = settings.data_dir / _named(name)
    if not is_dataset(root):
        raise unknown_dataset(name)
    try:
        png = preview_png(root, video)
    except (KeyError, FileNotFoundError, ValueError) as e:
        raise field_error(["query", "video"], str(e).strip("'\"")) from None
    return Response(png, media_type="image/png")


@router.post("/datasets", status_code=202, response_model=JobOut, openapi_extra=UPLOAD_SCHEMA,
             summary="Ingest recordings into a new dataset (frames, warp flow, motion maps) as a job")
async def ingest(request: Request, response: Response, settings: SettingsDep, stores: StoresDep,
                 queue: QueueDep) -> JobOut:
    job_id = new_id(JobKind.ingest)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=40)
        archive = form.get("archive")
        if not isinstance(archive, UploadFile):
            raise field_error(["archive"], "a zip or tar file of recordings is required in a multipart request")
        fields: dict[str, Any] = {k: v for k, v in form.items() if k != "archive" and isinstance(v, str)}
        if "source" in fields:
            raise field_error(["source"], "an upload is its own source: leave `source` out")
        body = IngestRequest.model_validate({k: None if v == "" else v for k, v in fields.items()})
        return await run_in_threadpool(_submit_upload, body, archive, job_id, response, settings, stores, queue)
    try:
        raw = await request.json()
    except ValueError:
        raise field_error(["body"], "not JSON (or send a multipart upload with `archive`)") from None
    body = IngestRequest.model_validate(raw if isinstance(raw, dict) else {"": raw})
    if body.source is None:
        raise field_error(["source"], "a folder under the data directory, or upload an archive (multipart)")
    return await run_in_threadpool(_submit, body, _source(body.source, settings), False, job_id, response,
                                   settings, stores, queue)


def _named(name: str) -> str:
    if name.startswith(".") or "/" in name or not name:
        raise unknown_dataset(name)
    return name


def _source(source: str, settings: Settings) -> Path:
    base = settings.data_dir.resolve()
    folder = (settings.data_dir / source).resolve()
    if not folder.is_relative_to(base) or Path(source).is_absolute():
        raise field_error(["source"], "resolves outside the data directory")
    if not folder.is_dir():
        raise Problem(404, f"source '{source}' is not a folder in the data directory", kind="unknown-source",
                      errors=[{"loc": ["source"], "msg": "not found"}])
    return folder


def _submit_upload(body: IngestRequest, archive: UploadFile, job_id: str, response: Response, settings: Settings,
                   stores: Stores, queue: TaskQueue) -> JobOut:
    _check_name(body.name, settings, stores)
    spool = settings.data_dir / UPLOADS / job_id
    try:
        saved = spool.with_suffix(".archive")
        spool.parent.mkdir(parents=True, exist_ok=True)
        with open(saved, "wb") as out:
            shutil.copyfileobj(archive.file, out, archives.CHUNK)
        source = archives.unpack(saved, spool, max_bytes=int(settings.max_unpacked_mb * (1 << 20)))
        saved.unlink()
        return _submit(body, source, True, job_id, response, settings, stores, queue)
    except BaseException:
        spool.with_suffix(".archive").unlink(missing_ok=True)
        archives.remove(spool)
        raise


def _check_name(name: str, settings: Settings, stores: Stores) -> None:
    if (settings.data_dir / name).exists():
        raise Problem(409, f"'{name}' already exists in the data directory", kind="name-taken",
                      errors=[{"loc": ["name"], "msg": "taken"}])
    record = stores.datasets.get(name)
    if record is None:
        return
    job = stores.jobs.get(record.job, metrics=False)
    if job is not None and (job.status in ACTIVE or job.status == "failed"):
        what = "is being ingested" if job.status in ACTIVE else "names a failed ingest (DELETE it first)"
        raise Problem(409, f"'{name}' {what} by job '{job.id}'", kind="name-taken",
                      errors=[{"loc": ["name"], "msg": "taken"}])
    stores.datasets.forget(name, record.job)  # a cancelled ingest's, or a deleted job's


def _submit(body: IngestRequest, source: Path, uploaded: bool, job_id: str, response: Response,
            settings: Settings, stores: Stores, queue: TaskQueue) -> JobOut:
    """Plan the ingest here (labels parsed, every video probed), take the name, queue the
    job once per ingest worker."""
    _check_name(body.name, settings, stores)
    check_queue_room(stores.jobs, settings, JobKind.ingest)
    body = _with_labels(body, source)
    try:
        items = plan(body, source)
    except LabelError as e:
        raise field_error([e.field], str(e)) from None
    except VideoError as e:
        raise field_error(["archive" if uploaded else "source"], str(e)) from None
    job = IngestJob(request=body, source_dir=str(source.relative_to(settings.data_dir)), uploaded=uploaded,
                    items=items)
    if not stores.datasets.take(body.name, job_id):
        raise Problem(409, f"'{body.name}' is being ingested by another job", kind="name-taken",
                      errors=[{"loc": ["name"], "msg": "taken"}])
    try:
        stores.jobs.create(JobKind.ingest, json.loads(job.model_dump_json()), job_id=job_id)
        answer = accepted(stores.jobs, job_id, response)
        helpers = sum(JobKind.ingest in w.queues for w in stores.workers.live())
        queue.send(JobKind.ingest, job_id, copies=max(1, min(helpers, len(items))))
    except Exception:
        stores.datasets.forget(body.name, job_id)
        raise
    return answer


def _with_labels(body: IngestRequest, source: Path) -> IngestRequest:
    """Without `labels`, the one CSV at the top of the source is the labels (none: a
    folder tree class/video)."""
    if body.labels is not None:
        labels = (source / body.labels).resolve()
        if not labels.is_relative_to(source.resolve()) or not labels.is_file():
            raise field_error(["labels"], f"'{body.labels}' is not a file in the source")
        return body
    if body.format == "folders":
        return body
    found = sorted(p.name for p in source.iterdir() if p.suffix.lower() in (".csv", ".tsv") and
                   not p.name.startswith("."))
    if len(found) > 1:
        raise field_error(["labels"], f"several annotation files in the source ({', '.join(found)}): name one")
    return body.model_copy(update={"labels": found[0] if found else None})
