"""The datasets the data directory holds, as the API shows them: every folder in the GTEA61
layout (hand-copied ones too), and the names ingest jobs hold while they write (ingesting)
or after they failed. The summary and the report come from fpar_models.data.report, which
checks with the loader's own code."""
from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

from core.settings import Settings
from core.store import Stores
from core.store.records import ACTIVE, DatasetRecord, JobStatus
from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR
from fpar_models.data.report import summary, validate
from fpar_models.ingest.run import MANIFEST, STATE
from service.errors import Problem
from service.schemas import DatasetDetail, DatasetOut


def is_dataset(folder: Path) -> bool:
    return folder.is_dir() and any((folder / d).is_dir() for d in (RGB_DIR, FLOW_DIRS[0]))


def on_disk(settings: Settings) -> list[str]:
    """The datasets: the shared data folder's, or those an s3:// data store published (the
    folder is then only this process's copies)."""
    if not settings.data.shared:
        return settings.data.published()
    base = settings.data_dir
    if not base.is_dir():
        return []
    return sorted(p.name for p in base.iterdir() if not p.name.startswith(".") and is_dataset(p))


def dataset_root(name: str, settings: Settings) -> Path | None:
    """The dataset's folder in this process, None when there is none: with an s3:// data
    store, this process's copy of one the store publishes, brought up to date first (one
    conditional read when nothing changed)."""
    if not settings.data.shared and name not in settings.data.published():
        return None
    root = settings.data.mirror(name)
    return root if is_dataset(root) else None


def list_datasets(settings: Settings, stores: Stores) -> list[DatasetOut]:
    records = {d.name: d for d in stores.datasets.all()}
    names = sorted(set(on_disk(settings)) | set(records))
    found = (describe(name, settings, stores, records.get(name)) for name in names)
    return [d for d in found if d is not None]


def describe(name: str, settings: Settings, stores: Stores, record: DatasetRecord | None = None, *,
             detail: bool = False) -> DatasetOut | DatasetDetail | None:
    """The dataset as listed (or in detail), None when there is none by this name. A name
    whose ingest was cancelled, or whose job is gone, is released here."""
    record = record or stores.datasets.get(name)
    root = dataset_root(name, settings)
    out = DatasetDetail if detail else DatasetOut
    if root is not None:
        manifest = read_manifest(root)
        findings = [plain(f) for f in validate(root)]
        info = plain(summary(root))
        fields = {k: info[k] for k in ("users", "classes", "videos", "frames", "flow", "maps")}
        extra = {"counts": info["counts"], "entries": info["entries"], "report": findings,
                 "manifest": _manifest_summary(manifest)} if detail else {}
        return out(name=name, status="ready", origin="ingested" if manifest else "copied",
                   job=manifest.get("job") if manifest else None,
                   errors=sum(f["severity"] == "error" for f in findings), **fields, **extra)
    if record is None:
        return None
    job = stores.jobs.get(record.job, metrics=False)
    if job is None or job.status in (JobStatus.cancelled, JobStatus.succeeded):  # succeeded: deleted by hand
        stores.datasets.forget(name, record.job)
        return None
    if job.status in ACTIVE:
        return out(name=name, status="ingesting", origin="ingested", job=job.id, progress=job.progress)
    return out(name=name, status="failed", origin="ingested", job=job.id, error=job.error)


def read_manifest(root: Path) -> dict[str, Any] | None:
    try:
        return json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None


def _manifest_summary(manifest: dict[str, Any] | None) -> dict[str, Any] | None:
    if manifest is None:
        return None
    return {k: v for k, v in manifest.items() if k != "videos"} | {"videos": len(manifest.get("videos", []))}


def plain(value: Any) -> dict[str, Any]:
    """The report's records (dataclasses or pydantic models) as dicts."""
    if is_dataclass(value):
        return asdict(value)
    return value.model_dump(mode="json")


def users_of(name: str, stores: Stores) -> list[str]:
    """The queued and running jobs that read or write the dataset."""
    using = []
    for job_id, request in stores.jobs.active_requests():
        if request.get("dataset") == name or (request.get("request") or {}).get("name") == name:
            using.append(job_id)
    return using


def delete(name: str, settings: Settings, stores: Stores) -> None:
    """Remove the dataset's folder (moved aside first, so it vanishes at once) and its name,
    or a failed ingest's name and leftovers. 409 while a job uses it."""
    using = users_of(name, stores)
    if using:
        raise Problem(409, f"dataset '{name}' is used by {len(using)} queued or running job(s): "
                      f"{', '.join(using[:5])}; cancel them first", kind="wrong-state")
    record = stores.datasets.get(name)
    root = dataset_root(name, settings)
    if root is None and record is None:
        raise unknown_dataset(name)
    if root is not None and not settings.data.shared:
        settings.data.delete(f"{name}/")  # unpublished first (no host mirrors it any more), then its files
    elif root is not None:
        trash = settings.data_dir / STATE / f"deleted-{name}-{uuid.uuid4().hex[:8]}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        root.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)
    if record is not None:
        shutil.rmtree(settings.data_dir / STATE / record.job, ignore_errors=True)
        stores.datasets.forget(name, record.job)


def unknown_dataset(name: str) -> Problem:
    return Problem(404, f"dataset '{name}' not found in the data directory", kind="unknown-dataset",
                   errors=[{"loc": ["path", "name"], "msg": "not found"}])

