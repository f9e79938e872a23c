"""Annotation files -> labelled segments of the recordings in a source folder.

Formats (`format="auto"` picks one from the file's header row, or `folders` when there is
no labels file and no single CSV at the top of the source):

- `generic`: `video,label[,start,end][,user]`; times in seconds (`12.5` or `0:00:12.5`), or
  frames when the header says `start_frame,end_frame` (counted from 0, end exclusive, so a
  frame f starts at f/fps); empty times mean the whole video.
- `epic`: EPIC-Kitchens (`EPIC_100_train.csv` or the older `EPIC_train_action_labels.csv`):
  `participant_id, video_id, start_timestamp, stop_timestamp` (HH:MM:SS.ff), `verb`, `noun`.
- `egtea`: EGTEA Gaze+ `action_labels.csv`, `;`-separated, its header row starting with `#`:
  `Clip ID; Clip Prefix (Unique); Video Session; Starting Time (ms); Ending Time (ms);
  Action Label; Verb Label; Noun Label(s)`. A trimmed clip (`<clip prefix>[-F..-F..].mp4`)
  is taken whole; else the segment is cut from the session's video. The user is the
  session's participant (`OP01-R01-PastaSalad` -> `op01`).
- `charades`: Charades' `id, subject, ..., actions` with `c092 11.90 21.20;...`: one
  segment per action, labelled by its class code.
- `folders`: `<label>/<video>.<ext>` or `<user>/<label>/<video>.<ext>`, one segment per
  whole video.

Labels and users become folder names of the training layout: `safe_name` lowercases them,
turns every run of other characters (spaces, slashes, `:`...) into `_` and keeps only
`[a-z0-9_+-]`, so `Turn-On light/lamp` is `turn-on_light_lamp`. Hidden entries are ignored,
and so are links that lead out of the source folder.
Times past a video's end are checked by the planner once the video is probed.
"""
from __future__ import annotations

import csv
import io
import math
import os
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

VIDEO_EXTENSIONS = frozenset({".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                              ".3gp", ".ts", ".mts"})
FORMATS = ("auto", "generic", "epic", "egtea", "charades", "folders")
LABEL_FROM = ("action", "verb", "noun")
_TIME = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d*)?)$")
_CLIP = re.compile(r"^(.+)-F\d+-F\d+$")  # EGTEA's trimmed clips: <clip prefix>-F<first>-F<last>
_PARTICIPANT = re.compile(r"^(O?P\d+)", re.IGNORECASE)


class LabelError(ValueError):
    """Labels that cannot be used; `field` is the request field at fault ("labels",
    "format", "label_from", "user_column", "user", "source"), the message names the file
    and the line."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Segment:
    video: str  # the recording's path relative to the source folder (posix)
    label: str  # a safe folder name
    user: str  # a safe folder name
    start: float | None  # None: from the video's start
    end: float | None  # None: to the video's end
    unit: Literal["s", "frames"]
    line: int  # the labels file's line (1-based; 0 for folders)


def safe_name(text: str, *, lower: bool = True) -> str:
    """A label or user as a folder name: ASCII (lowercase for labels; users keep their case,
    as GTEA's S1 and EPIC's P01 do), runs of anything outside `[a-z0-9+-]` as one `_`, no
    `_`/`-` at the ends ("" when nothing is left)."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = text.lower() if lower else text
    return re.sub(r"[^A-Za-z0-9+-]+", "_", text).strip("_-")


def to_seconds(segment: Segment, fps: float) -> tuple[float | None, float | None]:
    """The segment's (start, end) in seconds; frames are converted at `fps` (frame f
    starts at f/fps)."""
    if segment.unit == "s":
        return segment.start, segment.end
    if not fps > 0:
        raise ValueError(f"fps must be positive, not {fps}")
    start, end = segment.start, segment.end
    return (None if start is None else start / fps), (None if end is None else end / fps)


def parse_labels(source: Path, labels: Path | None, *, format: str = "auto", label_from: str = "action",
                 user_column: str | None = None, user: str = "u1") -> list[Segment]:
    """Every labelled segment, its video resolved to a file of `source` (an exact relative
    path, else the one video whose stem matches, any video extension). Raises LabelError."""
    source = Path(source)
    if not source.is_dir():
        raise LabelError("source", f"{source.name}: not a folder")
    if format not in FORMATS:
        raise LabelError("format", f"unknown label format {format!r}: one of {', '.join(FORMATS)}")
    if label_from not in LABEL_FROM:
        raise LabelError("label_from", f"label_from must be one of {', '.join(LABEL_FROM)}, not {label_from!r}")
    default_user = _name(user, "user", f"user {user!r}", lower=False)
    videos = _Videos(source)
    if labels is None and format == "auto":
        labels = _single_csv(source)
        format = "auto" if labels else "folders"
    if format == "folders":
        if labels is not None:
            raise LabelError("labels", "the folders format takes no labels file")
        if user_column is not None:
            raise LabelError("user_column", "the folders format has no columns: users are folders")
        return _folders(source, videos, default_user)
    if labels is None:
        raise LabelError("labels", f"the {format} format needs a labels file")
    table = _Table.read(Path(labels), source)
    kind = format if format != "auto" else table.detect()
    parser = {"generic": _generic, "epic": _epic, "egtea": _egtea, "charades": _charades}[kind]
    segments = list(parser(table, videos, label_from, user_column, default_user))
    if not segments:
        raise LabelError("labels", f"{table.name}: no labelled segments")
    return segments


def _name(raw: str, field: str, what: str, *, lower: bool = True) -> str:
    name = safe_name(raw, lower=lower)
    if not name:
        raise LabelError(field, f"{what} has no letters or digits to make a folder name of")
    return name


def _single_csv(source: Path) -> Path | None:
    found = sorted(p for p in source.iterdir() if p.suffix.lower() == ".csv" and not p.name.startswith(".")
                   and p.is_file())
    if len(found) > 1:
        raise LabelError("labels", f"{source.name}: several CSV files ({', '.join(p.name for p in found)}): "
                         "name the labels file")
    return found[0] if found else None


class _Videos:
    """The source's video files (hidden entries skipped), by relative path and by stem."""

    def __init__(self, source: Path):
        self.source = source
        inside = source.resolve()
        self.files: list[str] = []
        self.by_key: dict[str, list[str]] = defaultdict(list)  # path or stem without extension
        self.by_lower: dict[str, list[str]] = defaultdict(list)
        self.clips: dict[str, list[str]] = defaultdict(list)  # EGTEA clip prefix -> clips
        for folder, dirs, names in os.walk(source):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            base = PurePosixPath(Path(folder).relative_to(source).as_posix())
            for name in sorted(names):
                if name.startswith(".") or Path(name).suffix.lower() not in VIDEO_EXTENSIONS:
                    continue
                if os.path.islink(os.path.join(folder, name)) and not _within(Path(folder, name), inside):
                    continue  # a link out of the source
                rel = base / name
                self.files.append(str(rel))
                stem = rel.name[: -len(rel.suffix)]
                for key in {stem, str(rel.parent / stem) if str(rel.parent) != "." else stem}:
                    self.by_key[key].append(str(rel))
                    self.by_lower[key.lower()].append(str(rel))
                clip = _CLIP.match(stem)
                if clip:
                    self.clips[clip.group(1)].append(str(rel))

    def resolve(self, ref: str, where: str, field: str = "labels") -> str:
        ref = ref.strip().replace("\\", "/")
        path = PurePosixPath(ref)
        if not ref or path.is_absolute() or ".." in path.parts:
            raise LabelError(field, f"{where}: video {ref!r} is not a path inside the source folder")
        exact = self.source / path
        if exact.is_file() and not any(p.startswith(".") for p in path.parts) and _within(exact, self.source.resolve()):
            return str(path)
        key = str(path.with_suffix("")) if path.suffix.lower() in VIDEO_EXTENSIONS else str(path)
        return self.one(self.matches(key), ref, where, field)

    def matches(self, key: str) -> list[str]:
        """Videos whose path or stem without extension is `key` (case-insensitive if no exact match)."""
        return self.by_key.get(key) or self.by_lower.get(key.lower(), [])

    def one(self, found: list[str], ref: str, where: str, field: str = "labels") -> str:
        if not found:
            raise LabelError(field, f"{where}: video {ref!r} not found in the source folder {self.source.name}")
        if len(found) > 1:
            raise LabelError(field, f"{where}: video {ref!r} is ambiguous: {', '.join(found[:5])}")
        return found[0]


@dataclass
class _Table:
    """A labels file's rows as {normalised column: cell}, with their line numbers."""
    name: str
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]

    @classmethod
    def read(cls, path: Path, source: Path) -> _Table:
        name = path.relative_to(source).as_posix() if path.is_relative_to(source) else path.name
        try:
            text = path.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise LabelError("labels", f"{name}: no such file") from None
        except UnicodeDecodeError:
            raise LabelError("labels", f"{name}: not UTF-8 text") from None
        except IsADirectoryError:
            raise LabelError("labels", f"{name}: a folder, not a labels file") from None
        first = next((line for line in text.splitlines() if line.strip()), None)
        if first is None:
            raise LabelError("labels", f"{name}: empty file")
        delimiter = max((",", ";", "\t"), key=first.count)
        reader = csv.reader(io.StringIO(text), delimiter=delimiter)
        columns: list[str] | None = None
        rows = []
        for cells in reader:
            cells = [c.strip() for c in cells]
            if not any(cells):
                continue
            if columns is None:
                columns = [_column(c) for c in cells]
                continue
            if cells[0].startswith("#"):
                continue
            if len(cells) > len(columns):
                raise LabelError("labels", f"{name}: line {reader.line_num}: {len(cells)} fields, the header "
                                 f"has {len(columns)} (an unquoted {delimiter!r} in a value?)")
            rows.append((reader.line_num, dict(zip(columns, cells + [""] * (len(columns) - len(cells))))))
        return cls(name, columns or [], rows)

    def detect(self) -> str:
        have = set(self.columns)
        if {"clip prefix", "video session"} <= have:
            return "egtea"
        if {"video_id", "start_timestamp", "stop_timestamp"} <= have:
            return "epic"
        if {"id", "actions"} <= have:
            return "charades"
        if {"video", "label"} <= have:
            return "generic"
        raise LabelError("format", f"{self.name}: line 1: cannot tell the label format from the header "
                         f"({', '.join(self.columns)[:200]}); name one of {', '.join(FORMATS[1:])}")

    def need(self, *columns: str, field: str = "labels") -> None:
        missing = [c for c in columns if c not in self.columns]
        if missing:
            raise LabelError(field, f"{self.name}: line 1: no column {', '.join(repr(c) for c in missing)}")

    def user_key(self, user_column: str | None, default: str | None) -> str | None:
        if user_column is not None:
            self.need(_column(user_column), field="user_column")
            return _column(user_column)
        return default if default in self.columns else None


def _within(path: Path, folder: Path) -> bool:
    return path.resolve().is_relative_to(folder)


def _column(cell: str) -> str:
    """A header cell as a key: no leading '#', lowercase, no parentheses ('Noun Label(s)' -> 'noun label')."""
    return " ".join(re.sub(r"\([^)]*\)", " ", cell.lstrip("#")).lower().split())


def _seconds(text: str, where: str, frames: bool = False) -> float:
    """Seconds (`12.5`, `0:00:12.50`) or a frame number, checked finite and not negative."""
    try:
        if frames:
            value = float(int(text))
        else:
            m = _TIME.match(text)
            value = (int(m.group(1) or 0) * 3600 + int(m.group(2)) * 60 + float(m.group(3))) if m else float(text)
    except ValueError:
        unit = "a frame number" if frames else "a time (seconds or HH:MM:SS.ff)"
        raise LabelError("labels", f"{where}: {text!r} is not {unit}") from None
    if not math.isfinite(value) or value < 0:
        raise LabelError("labels", f"{where}: negative or invalid time {text!r}")
    return value


def _span(start: str, end: str, where: str, frames: bool = False) -> tuple[float | None, float | None]:
    if not start and not end:
        return None, None
    if not start or not end:
        raise LabelError("labels", f"{where}: a start without an end (or an end without a start)")
    s, e = _seconds(start, where, frames), _seconds(end, where, frames)
    if e <= s:
        raise LabelError("labels", f"{where}: the end ({end}) is not after the start ({start})")
    return s, e


def _segment(videos: _Videos, ref: str, label: str, user: str | None, default_user: str, span, unit, line: int,
             where: str) -> Segment:
    video = videos.resolve(ref, where)
    name = _name(label, "labels", f"{where}: label {label!r}")
    who = _name(user, "labels", f"{where}: user {user!r}", lower=False) if user else default_user
    return Segment(video, name, who, span[0], span[1], unit, line)


def _generic(table: _Table, videos: _Videos, label_from: str, user_column: str | None,
             default_user: str) -> Iterator[Segment]:
    label_key = "label" if label_from == "action" else label_from
    table.need("video")
    table.need(label_key, field="labels" if label_key == "label" else "label_from")
    user_key = table.user_key(user_column, "user")
    time_keys = next(((a, b) for a, b in (("start", "end"), ("start_frame", "end_frame"))
                      if a in table.columns or b in table.columns), None)
    if time_keys:
        table.need(*time_keys)
    frames = time_keys == ("start_frame", "end_frame")
    for line, row in table.rows:
        where = f"{table.name}: line {line}"
        span = _span(row[time_keys[0]], row[time_keys[1]], where, frames) if time_keys else (None, None)
        yield _segment(videos, row["video"], row[label_key], row[user_key] if user_key else None, default_user,
                       span, "frames" if frames else "s", line, where)


def _epic(table: _Table, videos: _Videos, label_from: str, user_column: str | None,
          default_user: str) -> Iterator[Segment]:
    parts = {"action": ("verb", "noun"), "verb": ("verb",), "noun": ("noun",)}[label_from]
    table.need("video_id", "start_timestamp", "stop_timestamp", *parts)
    user_key = table.user_key(user_column, "participant_id")
    for line, row in table.rows:
        where = f"{table.name}: line {line}"
        label = "_".join(row[p] for p in parts if row[p])
        span = _span(row["start_timestamp"], row["stop_timestamp"], where)
        yield _segment(videos, row["video_id"], label, row[user_key] if user_key else None, default_user,
                       span, "s", line, where)


def _egtea(table: _Table, videos: _Videos, label_from: str, user_column: str | None,
           default_user: str) -> Iterator[Segment]:
    label_key = {"action": "action label", "verb": "verb label", "noun": "noun label"}[label_from]
    table.need("clip prefix", "video session", "starting time", "ending time", label_key)
    user_key = table.user_key(user_column, None)
    for line, row in table.rows:
        where = f"{table.name}: line {line}"
        session, prefix = row["video session"], row["clip prefix"]
        span = _span(row["starting time"], row["ending time"], where)
        clips = videos.matches(prefix) or videos.clips.get(prefix, [])
        if clips:
            ref, span = videos.one(clips, prefix, where), (None, None)  # a trimmed clip: the whole file
        elif videos.matches(session):
            ref, span = session, tuple(None if t is None else t / 1000 for t in span)  # ms -> s
        else:
            raise LabelError("labels", f"{where}: neither the clip {prefix!r} nor the session video {session!r} "
                             f"is in the source folder {videos.source.name}")
        participant = _PARTICIPANT.match(session)
        who = row[user_key] if user_key else (participant.group(1) if participant else session.split("-")[0])
        label = row[label_key].replace(",", " ")  # several nouns: 'cucumber,bowl' -> 'cucumber_bowl'
        yield _segment(videos, ref, label, who, default_user, span, "s", line, where)


def _charades(table: _Table, videos: _Videos, label_from: str, user_column: str | None,
              default_user: str) -> Iterator[Segment]:
    if label_from != "action":
        raise LabelError("label_from", f"{table.name}: Charades labels are action class codes (label_from: action)")
    table.need("id", "actions")
    user_key = table.user_key(user_column, "subject")
    for line, row in table.rows:
        where = f"{table.name}: line {line}"
        for action in filter(None, (a.strip() for a in row["actions"].split(";"))):
            fields = action.split()
            if len(fields) != 3:
                raise LabelError("labels", f"{where}: action {action!r} is not 'code start end'")
            yield _segment(videos, row["id"], fields[0], row[user_key] if user_key else None, default_user,
                           _span(fields[1], fields[2], where), "s", line, where)


def _folders(source: Path, videos: _Videos, default_user: str) -> list[Segment]:
    if not videos.files:
        raise LabelError("source", f"{source.name}: no videos (and no labels file)")
    by_depth = {len(PurePosixPath(f).parts): f for f in reversed(videos.files)}  # depth -> its first video
    if len(by_depth) > 1 or not by_depth.keys() <= {2, 3}:
        found = " and ".join(by_depth[d] for d in sorted(by_depth) if len(by_depth) > 1 or d not in (2, 3))
        raise LabelError("source", f"{source.name}: videos must all be <label>/<video> or all "
                         f"<user>/<label>/<video> (found {found})")
    segments = []
    for rel in videos.files:
        parts = PurePosixPath(rel).parts
        user = default_user
        if len(parts) == 3:
            user = _name(parts[0], "source", f"{source.name}: user folder {parts[0]!r}", lower=False)
        label = _name(parts[-2], "source", f"{source.name}: label folder {parts[-2]!r}")
        segments.append(Segment(rel, label, user, None, None, "s", 0))
    return segments
