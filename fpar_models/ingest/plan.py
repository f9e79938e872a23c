"""From recordings and their labels to the list of video folders an ingest writes, with
everything a worker could fail on checked first: the labels parse, every recording is a
video, every segment lies within its recording and is long enough for one flow image."""
from __future__ import annotations

from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from fpar_models.ingest.labels import LabelError, Segment, parse_labels, to_seconds
from fpar_models.ingest.options import IngestItem, IngestRequest
from fpar_models.ingest.video import VideoError, VideoInfo, probe

__all__ = ["LabelError", "plan"]


def plan(request: IngestRequest, source: Path) -> list[IngestItem]:
    """Every labelled segment as an IngestItem, numbered 1, 2, ... per user and label in
    the order of the labels. Raises LabelError (naming the field, the file and the line)
    or VideoError (naming the file)."""
    labels = source / request.labels if request.labels else None
    segments = parse_labels(source, labels, format=request.format, label_from=request.label_from,
                            user_column=request.user_column, user=request.user)
    if not segments:
        raise LabelError("labels", f"{request.labels or source.name}: no labelled videos found")
    infos = {video: probed(source, video) for video in dict.fromkeys(s.video for s in segments)}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    items = []
    for i, segment in enumerate(segments):
        start, end = _span(segment, infos[segment.video], request.labels)
        counts[segment.user, segment.label] += 1
        items.append(IngestItem(index=i, video=segment.video, start=start, end=end, user=segment.user,
                                label=segment.label, folder=str(counts[segment.user, segment.label])))
    return items


def probed(source: Path, video: str) -> VideoInfo:
    with named(source, video):
        return probe(source / video)


@contextmanager
def named(source: Path, video: str):
    """VideoErrors that name the recording as the request did, not by its path on the server."""
    try:
        yield
    except VideoError as e:
        message = str(e).replace(str(source / video), video).replace(f"{source}/", "")
        raise VideoError(message if message.startswith(video) else f"{video}: {message}") from e


def _span(segment: Segment, info: VideoInfo, labels: str | None) -> tuple[float, float]:
    """The segment in seconds, checked against its recording: a segment past the end by
    more than a frame is a mistake in the labels (a rounded last timestamp is not)."""
    start, end = to_seconds(segment, info.fps)
    start = 0.0 if start is None else start
    end = info.duration_s if end is None else end
    where = f"{labels}, line {segment.line}" if labels else segment.video
    frame = 1 / info.fps
    if end > info.duration_s + frame:
        raise LabelError("labels", f"{where}: the segment ends at {end:.2f} s, past the end of "
                         f"{segment.video} ({info.duration_s:.2f} s)")
    end = min(end, info.duration_s)
    if end - start < 2 * frame:
        raise LabelError("labels", f"{where}: the segment {start:.2f}-{end:.2f} s of {segment.video} is shorter "
                         "than two frames (flow needs a pair)")
    return start, end
