"""Datasets: what the data directory holds (ready, ingesting, failed), one in detail with
the report of what a training would meet, its preview, deleting it, and ingesting new ones
from recordings: a folder under the data directory, or an uploaded zip/tar archive."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from core.store.records import JobKind, new_id
from fpar_models.ingest.options import IngestRequest
from fpar_models.ingest.preview import preview_png
from service import ingests
from service.bodies import json_or_upload, source_path
from service.datasets import dataset_root, delete, describe, list_datasets, unknown_dataset
from service.deps import QueueDep, SettingsDep, StoresDep
from service.errors import field_error
from service.schemas import DatasetDetail, DatasetList, JobOut

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
    root = dataset_root(_named(name), settings)
    if root is None:
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
    body, archive = await json_or_upload(request, IngestRequest, "archive", upload_is="a zip or tar file of recordings",
                                         source_is="a folder")
    if archive is not None:
        return await run_in_threadpool(ingests.submit_upload, body, archive, job_id, response, settings, stores, queue)
    source = source_path(body.source, settings, folder=True)
    return await run_in_threadpool(ingests.submit, body, source, False, job_id, response, settings, stores, queue)


def _named(name: str) -> str:
    if name.startswith(".") or "/" in name or not name:
        raise unknown_dataset(name)
    return name
