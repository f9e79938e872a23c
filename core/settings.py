"""Every setting of the gateway and the workers, from the environment (FPAR_*, REDIS_URL)."""
from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FPAR_", extra="ignore")

    port: int = Field(8000, description="gateway port")
    data_dir: Path = Field(Path("data"), description="datasets live here; train requests name a folder in it")
    model_dir: Path = Field(Path("models"), description="trained models and training checkpoints (with an "
                            "s3:// model store: this process's running trainings and its cache of the store)")
    model_store: str = Field("", description="where models live: file:///path, or s3://bucket/prefix "
                             "(AWS_ENDPOINT_URL and the AWS credential variables); empty: the model folder")
    store_cache_mb: float = Field(10240, gt=0, description="an s3:// model store's local cache, at most")
    data_store: str = Field("", description="where datasets live: s3://bucket/prefix, each process's data folder "
                            "its copy; empty: the data folder itself, shared")
    weights_dir: Path | None = Field(None, description="folder with ResNet-34 ImageNet weights")
    redis_url: str = Field("redis://127.0.0.1:6379/0",
                           validation_alias=AliasChoices("REDIS_URL", "FPAR_REDIS_URL"))
    api_keys: Annotated[list[str], NoDecode] = Field(default_factory=list, description="comma-separated bearer keys")
    max_upload_mb: float = Field(64, gt=0, description="largest /predict request body")
    max_frames: int = Field(512, ge=1, le=1000, description="most frames (images or decoded video) per request")
    max_image_pixels: int = Field(16_000_000, ge=1, description="largest image or video frame, in pixels, "
                                  "read from its header before decoding")
    max_aspect: float = Field(8.0, ge=1, description="longest side over shortest side of an image or video frame")
    max_decode_mb: float = Field(1024, gt=0, description="the images of one request, decoded, at most")
    max_archive_mb: float = Field(4096, gt=0, description="largest archive of recordings POST /datasets accepts")
    max_unpacked_mb: float = Field(16384, gt=0, description="an uploaded archive, unpacked, at most")
    max_video_mb: float = Field(8192, gt=0, description="largest video POST /timelines accepts (streamed to disk)")
    max_video_s: float = Field(4 * 3600, gt=0, description="longest video a timeline may be asked for, in seconds")
    ingest_threads: int = Field(0, ge=0, le=256, description="OpenCV threads of an ingest worker process "
                                "(0: OpenCV's default, every core; 1 where one ingest worker runs per core)")
    predict_ttl_s: int = Field(3600, ge=10, description="how long predict jobs and their frames live")
    max_wait_s: float = Field(60, ge=0, description="longest `wait` a predict request may ask for")
    queue_limit: int = Field(0, ge=0, description="queued jobs per queue before 429 (0 = no limit)")
    max_experiment_jobs: int = Field(200, ge=1, le=10_000, description="most training jobs one experiment may create")
    heartbeat_timeout_s: float = Field(30, gt=0, description="a running job silent this long goes to another worker")
    max_attempts: int = Field(3, ge=1, description="runs of a job whose worker keeps dying before it fails")
    max_devices: int = Field(0, ge=0, le=64, description="most processes one training runs on in this worker "
                             "(a training's `devices`; 0: every GPU the worker sees, or its CPU's cores)")
    model_cache: int = Field(4, ge=1, description="models a predict worker keeps loaded")
    inference: Literal["auto", "torch", "openvino", "onnxruntime"] = Field(
        "auto", description="the runtime predictions run on; auto: the fastest installed one that verifies "
        "against PyTorch (on the CPU), PyTorch on CUDA")
    predict_max_batch: int = Field(8, ge=1, le=256, description="predictions of one model run as one batch")
    predict_max_wait_ms: float = Field(5, ge=0, le=1000,
                                       description="how long a batch waits for companions (only when more are queued)")

    @field_validator("api_keys", mode="before")
    @classmethod
    def _split(cls, v):
        if isinstance(v, str):
            return [k.strip() for k in v.split(",") if k.strip()]
        return v

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * (1 << 20))

    @property
    def max_archive_bytes(self) -> int:
        return int(self.max_archive_mb * (1 << 20))

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * (1 << 20))

    def open_model_store(self):
        from core.object_store import open_store
        cache_bytes = int(self.store_cache_mb * (1 << 20))
        return open_store(self.model_store, self.model_dir, self.model_dir / "cache", cache_bytes)

    @cached_property
    def data(self):
        """FPAR_DATA_DIR's store, one per process: the folder itself, shared (`mirror` is then
        the folder, `send` nothing), or this process's copy of an s3:// FPAR_DATA_STORE."""
        return self.open_data_store()

    def open_data_store(self):
        """The data folder itself, or its copy of an s3:// store (datasets kept whole)."""
        from core.object_store import open_store
        store = open_store(self.data_store, self.data_dir, self.data_dir)
        if self.data_store.startswith("file:") and Path(store.root).resolve() != self.data_dir.resolve():
            raise ValueError(f"FPAR_DATA_STORE {self.data_store} is not FPAR_DATA_DIR: a shared data folder is "
                             "FPAR_DATA_DIR itself (leave FPAR_DATA_STORE unset)")
        return store

    @field_validator("model_store", "data_store")
    @classmethod
    def _store_url(cls, v: str, info) -> str:
        from urllib.parse import urlparse
        parsed = urlparse(v)
        if v and not (parsed.scheme == "file" or (parsed.scheme == "s3" and parsed.netloc)):
            raise ValueError(f"FPAR_{info.field_name.upper()}: {v!r} is neither file:///path nor s3://bucket[/prefix]")
        return v

    @property
    def runs_dir(self) -> Path:
        return self.model_dir / "runs"


@lru_cache
def get_settings() -> Settings:
    return Settings()
