"""What an ingest is asked for and what it will do: one model for the API, the worker and
the manifest. Defaults are the reference's where it had one (warp flow, bound 20, motion
maps), except the flow method: DIS by default for speed, TV-L1 to match the reference."""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
FORMATS = ("auto", "generic", "epic", "egtea", "charades", "folders")


class IngestOptions(BaseModel):
    """How each video becomes frames, warp flow and motion maps."""
    model_config = ConfigDict(extra="forbid")
    fps: float | None = Field(None, gt=0, le=120, description="frames per second, resampled to a constant "
                              "rate; null: the video's own average rate")
    shorter_side: int | None = Field(256, ge=16, le=2160, description="frames scaled down so their shorter side "
                                     "is this (256 as Ego-RNN and EPIC-Kitchens; never up); null: as recorded")
    flow: Literal["dis", "tvl1", "farneback"] = Field("dis", description="optical flow method: dis (fast), "
                                                      "tvl1 (the reference's), farneback")
    bound: float = Field(20, gt=0, le=100, description="flow quantised as 255*(v+bound)/(2*bound), clipped "
                         "(the reference: 20; EPIC-Kitchens: 25)")
    warp: bool = Field(True, description="remove the camera's motion (a homography per frame pair) first")
    maps: bool = Field(True, description="write motion maps (mmaps) for the attention heads")


class IngestRequest(IngestOptions):
    """`POST /datasets`: a name, where the recordings are, how they are labelled."""
    name: str = Field(description="the new dataset's folder in the data directory (letters, digits, _ and -)")
    source: str | None = Field(None, description="a folder under the data directory holding the recordings "
                               "(omit when uploading an archive)")
    labels: str | None = Field(None, description="the annotation file, relative to the source (omit for a "
                               "folder tree class/video.mp4, or to find one CSV at the top of the source)")
    format: Literal[FORMATS] = Field("auto", description="the labels' format; auto: from the file's header")
    label_from: Literal["action", "verb", "noun"] = Field("action", description="EPIC-Kitchens and EGTEA: "
                                                          "the label is the verb, the noun or both (verb_noun)")
    user_column: str | None = Field(None, description="the column naming the user (default: the format's "
                                    "participant column, `user` in the generic CSV)")
    user: str = Field("u1", description="the user of recordings whose labels name none")
    on_error: Literal["fail", "skip"] = Field("fail", description="a video that fails to decode fails the "
                                              "ingest (fail) or is listed in the report and left out (skip)")

    @field_validator("name")
    @classmethod
    def _safe_name(cls, v: str) -> str:
        if not NAME.match(v):
            raise ValueError("must be 1-64 letters, digits, '_' or '-', starting with a letter or digit")
        return v

    def options(self) -> IngestOptions:
        return IngestOptions.model_validate(self.model_dump(include=set(IngestOptions.model_fields)))


class IngestItem(BaseModel):
    """One labelled segment of one recording: a video folder <user>/<label>/<folder>."""
    index: int
    video: str = Field(description="the recording, relative to the source folder")
    start: float = Field(description="seconds")
    end: float
    user: str
    label: str
    folder: str

    @property
    def path(self) -> str:
        return f"{self.user}/{self.label}/{self.folder}"

    @property
    def seconds(self) -> float:
        return self.end - self.start


class IngestJob(BaseModel):
    """An ingest job's `request`: what was asked, where the recordings are (relative to the
    data directory), and the plan: every video folder it will write."""
    request: IngestRequest
    source_dir: str
    uploaded: bool = Field(False, description="the source is an uploaded archive, removed when the job ends")
    items: list[IngestItem]

    @property
    def seconds(self) -> float:
        return sum(item.seconds for item in self.items)
