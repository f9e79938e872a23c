"""What the API returns, for the OpenAPI document and response validation."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fpar_models.config import TrainConfig
from service.jobs import iso

Precision = Literal["fp32", "bf16", "int8"]  # fpar_models.serving.precision.PRECISIONS


class Progress(BaseModel):
    stage: int
    stages: int
    epoch: int
    epochs: int
    fraction: float = Field(ge=0, le=1)


class JobOut(BaseModel):
    job_id: str = Field(description="the job's id (the same as `id`)")
    id: str
    kind: Literal["train", "predict"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None
    attempts: int = 0
    awaiting_worker: bool = Field(False, description="running, but the worker running it died: its task was "
                                  "sent again and the next free worker takes it (`attempts` counts the tries)")
    progress: Progress | None = None
    metrics: list[dict[str, Any]] | None = Field(None, description="one row per epoch (train jobs)")
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    warnings: list[str] = []
    request: dict[str, Any] | None = Field(None, description="the resolved config, or predict options")
    experiment: str | None = Field(None, description="the experiment this training job belongs to")

    @classmethod
    def from_record(cls, job: dict[str, Any]) -> JobOut:
        return cls(job_id=job["id"], id=job["id"], kind=job["kind"], status=job["status"],
                   created_at=iso(job["created_at"]), started_at=iso(job.get("started_at")),
                   finished_at=iso(job.get("finished_at")),
                   attempts=int(job.get("attempts") or 0),
                   awaiting_worker=job["status"] == "running" and job.get("released") == "1",
                   progress=job.get("progress"),
                   metrics=job.get("metrics"), result=job.get("result"), error=job.get("error"),
                   warnings=job.get("warnings") or [], request=job.get("request"),
                   experiment=job.get("experiment"))


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
    inference: list[dict[str, Any]] = Field(
        default_factory=list, description="per predict worker that has it loaded: the runtime serving it "
        "(backend), the one asked for, whether it was verified against PyTorch and how closely, and why not; "
        "in bf16/int8, `cost`: top-1 agreement with fp32 and the accuracy of each on the validation clips")

    @classmethod
    def from_record(cls, m: dict[str, Any], serving: list[dict[str, Any]] | None = None) -> ModelOut:
        return cls(**{**m, "created_at": iso(m["created_at"]), "inference": serving or []})


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
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    best_val_acc: float | None = None


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
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    created_at: str
    finished_at: str | None = None
    base: dict[str, Any]
    grid: dict[str, list[Any]]
    points: list[dict[str, Any]] = []
    trials: int
    jobs: list[ExperimentJob]
    table: list[TableRow]

    @classmethod
    def from_record(cls, exp: dict[str, Any]) -> ExperimentOut:
        return cls(**{**exp, "created_at": iso(exp["created_at"]), "finished_at": iso(exp["finished_at"])})


class ExperimentList(BaseModel):
    experiments: list[ExperimentOut]
    next: str | None = Field(None, description="pass as `cursor` for the next (older) page")
