"""What Redis holds, as typed records: a job, a registered model, an experiment, a worker's
heartbeat, a worker's answer to the gateway, an idempotency slot. Every module that reads
or writes one of them goes through these classes, so a field is spelled in one place.

A job's `status` is one `JobStatus`; `TERMINAL` are the states a job never leaves. The
gateway publishes both in its OpenAPI document (`components.schemas.JobStatus`, its
`x-terminal` list), which is where the dashboard reads them; the CLI imports them.
"""
from __future__ import annotations

import json
import re
import uuid
from enum import StrEnum
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fpar_models.config import TrainConfig
from fpar_models.search import SearchRequest
from fpar_models.timeline.options import TrainingData


class JobStatus(StrEnum):
    """queued -> running -> succeeded | failed | cancelled; never backwards."""
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"
    cancelled = "cancelled"


TERMINAL = frozenset({JobStatus.succeeded, JobStatus.failed, JobStatus.cancelled})
ACTIVE = (JobStatus.queued, JobStatus.running)


class JobKind(StrEnum):
    """What a job does; its task's queue is core.tasks.QUEUE_OF[kind]."""
    train = "train"
    predict = "predict"
    ingest = "ingest"
    timeline = "timeline"


def new_id(kind: str) -> str:
    return f"{kind[:2]}_{uuid.uuid4().hex[:16]}"


def new_experiment_id() -> str:
    return f"ex_{uuid.uuid4().hex[:16]}"


def kind_of(job_id: str) -> JobKind:
    """A job id names its kind (`tr_...`, `pr_...`): see new_id."""
    return next(k for k in JobKind if job_id.startswith(f"{k[:2]}_"))


def model_id_of(job_id: str) -> str:
    """The model a training job registers (`tr_x` -> `m_x`)."""
    return f"m_{job_id[3:]}"


# Any id the functions above make: a job's, a model's, an experiment's (the CLI keeps them whole)
ID = re.compile(rf"\b(?:{'|'.join(k[:2] for k in JobKind)}|m|ex)_[0-9a-f]{{16}}\b")


class _Hash(BaseModel):
    """A record kept as a Redis hash: plain fields as text, structured ones as JSON."""
    model_config = ConfigDict(extra="ignore")
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes], **extra: Any):
        fields: dict[str, Any] = {k.decode(): v.decode() for k, v in raw.items()}
        for name in cls.JSON_FIELDS:
            fields[name] = json.loads(fields[name]) if fields.get(name) else None
        return cls.model_validate({**{k: v for k, v in fields.items() if v not in (None, "")}, **extra})

    @classmethod
    def hash_fields(cls, **fields: Any) -> dict[str, str | int | float]:
        """Values as Redis stores them: JSON for the structured fields, 0/1 for flags; None left out."""
        out: dict[str, str | int | float] = {}
        for name, value in fields.items():
            if value is None:
                continue  # absent: a field is only ever set, never cleared
            out[name] = json.dumps(value) if name in cls.JSON_FIELDS else int(value) if isinstance(value, bool) \
                else value
        return out


class JobRecord(_Hash):
    """`fpar:job:{id}`: written field by field (the Lua scripts, heartbeats, progress) and
    read whole. `metrics` are the rows of `fpar:job:{id}:metrics` (train jobs)."""
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("request", "progress", "result", "error", "warnings")

    id: str
    kind: JobKind
    status: JobStatus
    request: dict[str, Any] = Field(default_factory=dict, description="a TrainConfig, PredictOptions, an IngestJob "
                                    "or a TimelineJob")
    experiment: str | None = Field(None, description="the experiment a training job is a run of")
    after: str | None = Field(None, description="the job it waits for: queued only once that one succeeded (an "
                              "experiment's shared stage); failed or cancelled with it")
    warnings: list[str] = Field(default_factory=list)
    # when, and who runs it
    created_at: float
    started_at: float | None = Field(None, description="when a worker first claimed it")
    finished_at: float | None = None
    attempts: int = Field(0, description="claims so far: more than one when a worker died under it")
    worker: str | None = Field(None, description="the worker that claimed it last")
    heartbeat: float | None = Field(None, description="refreshed while it runs; a silent job is reaped")
    cancel: bool = Field(False, description="asked to stop: its worker ends it at the next batch")
    released: bool = Field(False, description="its worker died; its task was sent again")
    # what it did
    progress: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] | None = Field(None, description="train jobs: one row per epoch (rows it did "
                                                 "not train itself, from its init_from model, say so: from_model)")
    epochs_trained: int = Field(0, description="train jobs: epochs it trained (a rerun after a lost worker counts "
                                "again the epochs it repeats)")
    windows: list[dict[str, Any]] | None = Field(None, description="timeline jobs: one row per window, in time order")
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = Field(None, description="why it failed: {type, message}")
    reason: Literal["pruned"] | None = Field(None, description="why it was cancelled when no one asked: pruned "
                                             "(a search's trial its pruner stopped)")
    batch_size: int | None = Field(None, description="predictions: how many ran in its forward pass")

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL

    @property
    def awaiting_worker(self) -> bool:
        return self.status == JobStatus.running and self.released


class PredictOptions(BaseModel):
    """A prediction's request: the model it runs on and what it asks for. Its inputs travel
    separately (`fpar:frames:{id}`, core.frames)."""
    model_config = ConfigDict(extra="forbid")
    model: str
    top_k: int
    explain: bool = False
    protocol: Literal["v2"] | None = None  # asked through the Open Inference Protocol


class ModelRecord(BaseModel):
    """`fpar:model:{id}`: a trained model in the registry, as its training registered it."""
    model_config = ConfigDict(extra="ignore")
    id: str
    arch: str
    preset: str | None
    classes: list[str]
    best_val_acc: float
    test_acc: float | None = None
    job_id: str
    created_at: float
    frames: int
    image_size: int
    stack_size: int
    eval_stacks: int
    inputs: list[Literal["rgb", "flow"]]
    path: str = Field(description="its checkpoint, relative to the model store")
    config: TrainConfig
    inference_precision: Literal["fp32", "bf16", "int8"] = "fp32"
    training_data: TrainingData | None = Field(None, description="what its training videos were like (a "
                                               "timeline's default window and how its windows are made); "
                                               "null for models registered before it was kept")

    @field_validator("config", mode="before")
    @classmethod
    def _as_stored(cls, v: Any) -> Any:
        return TrainConfig.stored(v) if isinstance(v, dict) else v

    def takes(self, carried: set[str]) -> bool:
        """Whether a request carrying these inputs ('rgb', 'flow') is enough for the model."""
        return set(self.inputs) <= carried


class ExperimentChild(BaseModel):
    """One training job of an experiment: the grid point and trial it runs."""
    id: str
    point: dict[str, Any]
    trial: int
    seed: int
    after: str | None = Field(None, description="the shared stage it starts from (its job id)")


class SharedStage(BaseModel):
    """A training job of an experiment that trains stages several children agree on, once:
    they start from its model (init_from) instead of training those stages each."""
    id: str
    stages: int = Field(description="it trains the stages up to this one (1-based)")
    after: str | None = Field(None, description="the shared stage it starts from itself")
    dependants: list[str] = Field(description="the jobs that start from it")


class ExperimentCost(BaseModel):
    naive_epochs: int = Field(description="what the children would train on their own, every stage (a search: "
                              "its trials x its base config's epochs)")
    planned_epochs: int = Field(description="with the shared stages trained once (a search: at most, as naive; "
                                "pruning trains fewer)")
    trained_epochs: int = Field(description="trained so far, counted from the workers' epochs (early stops "
                                "train fewer, a rerun after a lost worker more)")


class ExperimentRecord(_Hash):
    """`fpar:exp:{id}`: what was asked for and the children's ids. Their states are not
    copied here: an experiment is read together with its children (Experiment)."""
    JSON_FIELDS: ClassVar[tuple[str, ...]] = ("base", "grid", "points", "children", "shared", "search")

    id: str
    name: str
    created_at: float
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]] = Field(default_factory=list)
    trials: int
    children: list[ExperimentChild]
    shared: list[SharedStage] = Field(default_factory=list)
    naive_epochs: int = 0
    planned_epochs: int = 0
    search: SearchRequest | None = Field(None, description="a search's request; its children are added as "
                                         "it asks for trials (core.search)")
    cancel: bool = False


class ChildState(ExperimentChild):
    status: JobStatus
    best_val_acc: float | None = None
    finished_at: float | None = None
    reason: Literal["pruned"] | None = None


class SharedState(SharedStage):
    status: JobStatus
    best_val_acc: float | None = None
    error: dict[str, Any] | None = None


class ExperimentProgress(BaseModel):
    ended: int = Field(description="jobs (children and shared stages) that have ended (succeeded, failed or "
                       "cancelled)")
    total: int


class Experiment(BaseModel):
    """An experiment as read: its record, each child's state, and what follows from them
    (status, end time, the table of mean and spread per grid point)."""
    id: str
    name: str
    status: JobStatus
    created_at: float
    finished_at: float | None
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]]
    trials: int
    search: SearchRequest | None = None
    jobs: list[ChildState]
    shared: list[SharedState]
    table: list[dict[str, Any]]
    progress: ExperimentProgress
    cost: ExperimentCost

    @property
    def ended(self) -> bool:
        """The experiment and every child have ended (a cancelled one waits for its children)."""
        return self.status in TERMINAL and self.progress.ended == self.progress.total


class WorkerRecord(BaseModel):
    """`fpar:worker:{name}`: a live worker's heartbeat, and how it serves each model it holds."""
    name: str
    queues: list[str]
    pid: int
    seen: float
    rss_mb: float
    models: dict[str, dict[str, Any]] = Field(default_factory=dict)
    cpu: dict[str, float] = Field(default_factory=dict)  # CPU seconds by stage (core.cpu), `process` all of it


class Answer(_Hash):
    """`fpar:answer:{key}`: a worker's answer to a gateway that asked for something only a
    worker can compute (a confusion matrix, a picture, an export): a body, or an error."""
    status: Literal["ok", "error"]
    media: str | None = None
    body: bytes | None = None
    http: int | None = None
    detail: str | None = None

    @classmethod
    def from_hash(cls, raw: dict[bytes, bytes], **extra: Any) -> Answer:
        body = raw.get(b"body")  # bytes as stored: a PNG is not text
        fields = {k.decode(): v.decode() for k, v in raw.items() if k != b"body"}
        return cls.model_validate({**fields, "body": body, **extra})


class DatasetRecord(_Hash):
    """`fpar:dataset:{name}`: a dataset name taken by an ingest job. The folder under the
    data directory is the dataset; this record says which job made (or is making) it."""
    name: str
    job: str
    created_at: float


class IdempotencySlot(BaseModel):
    """`fpar:idem:{kind}:{key}`: the job the first request with this key created."""
    job: str
    fingerprint: str
