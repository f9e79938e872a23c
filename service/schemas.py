"""What the API returns, for the OpenAPI document and response validation; built from the
records in Redis (core.store.records), whose timestamps it writes as ISO 8601."""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from core.store.records import (
    Experiment,
    ExperimentCost,
    ExperimentProgress,
    JobKind,
    JobRecord,
    JobStatus,
    ModelRecord,
)
from fpar_models.config import TrainConfig
from fpar_models.search import SearchRequest
from fpar_models.timeline.options import TrainingData

Precision = Literal["fp32", "bf16", "int8"]  # fpar_models.serving.precision.PRECISIONS


def iso(ts: float | None) -> str | None:
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


class Progress(BaseModel):
    """A training's: its stage and epoch."""
    stage: int
    stages: int
    epoch: int
    epochs: int
    fraction: float = Field(ge=0, le=1)


class IngestProgress(BaseModel):
    """An ingest's: videos and seconds of video done (`fraction` by seconds)."""
    videos_done: int
    videos: int
    seconds_done: float
    seconds: float
    fraction: float = Field(ge=0, le=1)


class TimelineProgress(BaseModel):
    """A timeline's: windows classified, and the seconds of video they cover."""
    windows_done: int
    windows: int
    seconds_done: float
    seconds: float
    fraction: float = Field(ge=0, le=1)


class JobOut(BaseModel):
    job_id: str = Field(description="the job's id (the same as `id`)")
    id: str
    kind: JobKind
    status: JobStatus
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    awaiting_worker: bool = Field(False, description="running, but the worker running it died: its task was "
                                  "sent again and the next free worker takes it (`attempts` counts the tries)")
    progress: Progress | IngestProgress | TimelineProgress | None = None
    metrics: list[dict[str, Any]] | None = Field(None, description="one row per epoch (train jobs)")
    result: dict[str, Any] | None = Field(None, description="a timeline's has its `segments`, and one job read "
                                          "alone its `windows` too (start, end, top_k)")
    error: dict[str, Any] | None = None
    warnings: list[str] = []
    request: dict[str, Any] | None = Field(None, description="the resolved config, predict options, or an "
                                           "ingest's request and plan")
    experiment: str | None = Field(None, description="the experiment this training job belongs to")
    after: str | None = Field(None, description="the job it waits for (an experiment's shared stage): queued "
                              "until that one succeeded, failed or cancelled with it otherwise")
    epochs_trained: int | None = Field(None, description="train jobs: epochs it trained itself (rows marked "
                                       "from_model came trained with its init_from model)")
    reason: Literal["pruned"] | None = Field(None, description="why a job no one cancelled was cancelled: pruned "
                                             "(a search's trial its pruner stopped)")

    @classmethod
    def from_record(cls, job: JobRecord) -> JobOut:
        times = {"created_at", "started_at", "finished_at"}
        fields = job.model_dump(include=set(cls.model_fields) - times - {"job_id", "awaiting_worker"})
        if job.kind != JobKind.train:
            fields["epochs_trained"] = None
        if job.windows is not None and fields["result"] is not None:
            fields["result"] = {**fields["result"], "windows": [public_window(w) for w in job.windows]}
        return cls(**fields, **{t: iso(getattr(job, t)) for t in times}, job_id=job.id,
                   awaiting_worker=job.awaiting_worker)


def public_window(row: dict[str, Any]) -> dict[str, Any]:
    """A timeline's window as the API shows it: its full probability vector stays inside."""
    return {k: v for k, v in row.items() if k != "p"}


class JobList(BaseModel):
    jobs: list[JobOut]
    next: str | None = Field(None, description="pass as `cursor` for the next (older) page")


class ModelOut(BaseModel):
    id: str
    arch: str
    preset: str | None
    classes: list[str]
    best_val_acc: float
    test_acc: float | None = Field(None, description="the best model under the final test protocol "
                                   "(flow: 5 stacks; RGB: as validation)")
    job_id: str
    created_at: str
    frames: int
    image_size: int
    inputs: list[str] = Field(description="what /predict needs: frames ('rgb') and/or flow images")
    inference_precision: Precision = Field("fp32", description="the precision predictions are served in "
                                           "(PATCH to change): fp32 is exact; bf16 and int8 are opt-in")
    training_data: TrainingData | None = Field(None, description="what its training videos were like: a "
                                               "timeline's default window (clip_frames at fps) and how its "
                                               "windows' frames and flow are made")
    inference: list[dict[str, Any]] = Field(
        default_factory=list, description="per predict worker that has it loaded: the runtime serving it "
        "(backend), the one asked for, whether it was verified against PyTorch and how closely, and why not; "
        "in bf16/int8, `cost`: top-1 agreement with fp32 and the accuracy of each on the validation clips")

    @classmethod
    def from_record(cls, m: ModelRecord, serving: list[dict[str, Any]] | None = None) -> ModelOut:
        fields = m.model_dump(include=set(cls.model_fields) - {"created_at", "inference"})
        return cls(**fields, created_at=iso(m.created_at), inference=serving or [])


class ModelPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    inference_precision: Precision = Field(description="fp32 (exact, the default); bf16 (OpenVINO on CPUs "
                                           "with bf16 units, PyTorch autocast on GPUs) or int8 (NNCF "
                                           "post-training quantisation, CPU): faster, with their cost measured "
                                           "when a worker first loads them")


class PresetOut(BaseModel):
    name: str
    description: str = Field(description="what it is, then the source of its values")
    source: str = Field(description="where the values come from: seed report, section, table")
    config: TrainConfig


class ExperimentJob(BaseModel):
    id: str
    point: dict[str, Any] = Field(description="grid path -> the value this job runs with")
    trial: int
    seed: int
    status: JobStatus
    best_val_acc: float | None = None
    after: str | None = Field(None, description="the shared stage it starts from (its job id)")
    reason: Literal["pruned"] | None = Field(None, description="pruned: a search's pruner stopped it (cancelled)")


class SharedJob(BaseModel):
    """A shared stage: one training job of the stages several children agree on."""
    id: str
    stages: int = Field(description="it trains stages 1 to this one (after `after`'s, when set)")
    after: str | None = Field(None, description="the shared stage it starts from itself")
    dependants: list[str] = Field(description="the jobs that start from its model")
    status: JobStatus
    best_val_acc: float | None = None
    error: dict[str, Any] | None = None


class TableRow(BaseModel):
    point: dict[str, Any]
    trials: int = Field(description="succeeded trials: the ones the statistics are over")
    mean: float | None = Field(None, description="mean best_val_acc over the succeeded trials (a fraction)")
    std: float | None = Field(None, description="sample standard deviation (0 for one trial)")
    min: float | None = None
    max: float | None = None
    best: bool = Field(description="the row with the highest mean")


class ExperimentOut(BaseModel):
    id: str
    name: str
    status: JobStatus
    created_at: str
    finished_at: str | None = None
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]] = []
    trials: int
    search: SearchRequest | None = Field(None, description="a search's request: `jobs` grows as it samples trials "
                                         "(`trial` is the search's trial number), the table is sorted best first")
    jobs: list[ExperimentJob]
    shared: list[SharedJob] = Field(description="the shared stages, each before the jobs that start from it")
    table: list[TableRow]
    progress: ExperimentProgress = Field(description="jobs ended (children and shared stages), of all (as its "
                                         "event stream's `progress`)")
    cost: ExperimentCost = Field(description="epochs: a naive run's, planned with the shared stages, trained")

    @classmethod
    def from_record(cls, exp: Experiment) -> ExperimentOut:
        fields = exp.model_dump(exclude={"created_at", "finished_at"})
        return cls(**fields, created_at=iso(exp.created_at), finished_at=iso(exp.finished_at))


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]
    next: str | None = Field(None, description="pass as `cursor` for the next (older) page")


class Finding(BaseModel):
    path: str = Field(description="relative to the dataset's folder")
    kind: str = Field(description="e.g. no-frames, flow-short, first-map-missing, class-missing-for-user")
    message: str
    severity: Literal["error", "warning", "info"] = Field(description="error: a training using this stream "
                                                          "fails on it; warning: it runs, differently than "
                                                          "one may expect; info: ignored as the loader does")


class DatasetOut(BaseModel):
    name: str
    status: Literal["ready", "ingesting", "failed"]
    origin: Literal["ingested", "copied"] = Field(description="written by an ingest job, or put in the data "
                                                  "directory by hand")
    job: str | None = Field(None, description="the ingest job that made (or is making) it")
    users: list[str] = []
    classes: list[str] = []
    videos: int = 0
    frames: int = 0
    flow: bool = Field(False, description="every video has warp-flow images (flow and two-stream presets)")
    maps: bool = Field(False, description="every video has motion maps (the self-supervised presets)")
    errors: int = Field(0, description="problems a training would fail on (the details: GET /datasets/{name})")
    progress: IngestProgress | None = Field(None, description="while ingesting")
    error: dict[str, Any] | None = Field(None, description="why its ingest failed")


class DatasetDetail(DatasetOut):
    counts: dict[str, dict[str, int]] = Field(default_factory=dict, description="user -> class -> videos")
    entries: list[str] = Field(default_factory=list, description="every video as user/class/video")
    report: list[Finding] = Field(default_factory=list, description="what the loader would meet, by severity")
    manifest: dict[str, Any] | None = Field(None, description="an ingested dataset's options, tools and "
                                            "sources (its per-video list: manifest.json in the folder)")


class DatasetList(BaseModel):
    datasets: list[DatasetOut]
