"""Accepting an ingest: the source found inside the data directory (a folder, or an
uploaded archive unpacked into the spool), the name free, the labels and recordings
planned (every check a worker could fail on), the name taken and the job queued once per
live ingest worker. Every refusal is the problem a client should see."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from fastapi import Response
from starlette.datastructures import UploadFile

from core.settings import Settings
from core.store import Stores
from core.store.records import ACTIVE, JobKind
from core.tasks import TaskQueue
from fpar_models.ingest.labels import LabelError
from fpar_models.ingest.options import IngestJob, IngestRequest
from fpar_models.ingest.plan import plan
from fpar_models.ingest.run import UPLOADS
from fpar_models.ingest.video import VideoError
from service import archives
from service.checks import check_queue_room
from service.errors import Problem, field_error
from service.schemas import JobOut
from service.submit import accepted


def submit_upload(body: IngestRequest, archive: UploadFile, job_id: str, response: Response, settings: Settings,
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
        settings.data.send(f"{UPLOADS}/{job_id}")  # (to an s3:// data store: the ingest workers')
        return submit(body, source, True, job_id, response, settings, stores, queue)
    except BaseException:
        spool.with_suffix(".archive").unlink(missing_ok=True)
        archives.remove(spool)
        settings.data.delete(f"{UPLOADS}/{job_id}/")
        raise


def _check_name(name: str, settings: Settings, stores: Stores) -> None:
    if (settings.data_dir / name).exists() or name in settings.data.published():
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


def submit(body: IngestRequest, source: Path, uploaded: bool, job_id: str, response: Response,
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
