"""What a dataset in the GTEA61 layout holds, and every problem a training would hit on it.

The checks are the loader's own (`gtea61.numbered_images`, `visible_dirs`, and `_video`/`scan`
for the messages), so the two agree: an `error` is what fails a training that uses the stream
at fault (a video without the flow the other videos have fails every flow preset), a
`warning` is what the loader works around (a missing first motion map: it uses the next one),
`info` is what it ignores (hidden entries, stray files, flow of videos it does not list).
A stream no video has (a flow-only dataset's RGB, a dataset without maps) is not an error:
the presets that need it cannot train, which `summary` and an `info` finding say.

Directory listings only, plus the header of the first image of each folder: quick on
GTEA61's ~30k files. Torch-free.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import BaseModel

from fpar_models.data.gtea61 import (
    _NUMBER,
    FLOW_DIRS,
    RGB_DIR,
    DatasetError,
    _video,
    class_names,
    numbered_images,
    scan,
    visible_dirs,
)

Severity = Literal["error", "warning", "info"]


class DatasetSummary(BaseModel):
    users: list[str]
    classes: list[str]  # the model's classes: the union over users, sorted (as training numbers them)
    videos: int
    frames: int  # RGB frames, all videos
    rgb: bool  # every video has RGB frames
    flow: bool  # every video has flow x and y images
    maps: bool  # every video has motion maps
    counts: dict[str, dict[str, int]]  # user -> class -> videos (0 where the user lacks the class)
    entries: list[str]  # "user/class/video", sorted


class Finding(BaseModel):
    path: str  # relative to the dataset's root, posix; "." for the dataset itself
    kind: str  # a short slug: no-frames, flow-short, first-map-missing, hidden-ignored, ...
    message: str
    severity: Severity


@dataclass
class _Video:
    user: str
    action: str
    dir: Path
    frames: dict[int, Path]
    maps: dict[int, Path]
    flow_x: dict[int, Path]
    flow_y: dict[int, Path]

    @property
    def entry(self) -> str:
        return f"{self.user}/{self.action}/{self.dir.name}"


def _videos(root: Path) -> tuple[list[str], list[str], list[_Video]]:
    """Users, classes and videos as the loader lists them (DatasetError without processed_frames2)."""
    classes = class_names(root)
    users = [u.name for u in visible_dirs(root / RGB_DIR)]
    videos = []
    for user in users:
        for action_dir in visible_dirs(root / RGB_DIR / user):
            for video_dir in visible_dirs(action_dir):
                rel = Path(user, action_dir.name, video_dir.name)
                videos.append(_Video(user, action_dir.name, video_dir, numbered_images(video_dir / "rgb"),
                                     numbered_images(video_dir / "mmaps"), numbered_images(root / FLOW_DIRS[0] / rel),
                                     numbered_images(root / FLOW_DIRS[1] / rel)))
    return users, classes, videos


def summary(root: Path) -> DatasetSummary:
    """Users, classes, videos and the streams present. Raises DatasetError where the
    dataset has no processed_frames2 folder (the loader lists everything from it)."""
    users, classes, videos = _videos(Path(root))
    counts = {u: dict.fromkeys(classes, 0) for u in users}
    for v in videos:
        counts[v.user][v.action] += 1
    return DatasetSummary(
        users=users, classes=classes, videos=len(videos), frames=sum(len(v.frames) for v in videos),
        rgb=bool(videos) and all(v.frames for v in videos),
        flow=bool(videos) and all(v.flow_x and v.flow_y for v in videos),
        maps=bool(videos) and all(v.maps for v in videos),
        counts=counts, entries=sorted(v.entry for v in videos))


def validate(root: Path) -> list[Finding]:
    """Every problem found, errors first, then by path."""
    root = Path(root)
    report = _Report(root)
    if not root.is_dir():
        return [Finding(path=".", kind="not-a-dataset", message=f"{root.name}: not a folder", severity="error")]
    try:
        users, classes, videos = _videos(root)
    except DatasetError as e:
        flow_only = any((root / d).is_dir() for d in FLOW_DIRS)
        extra = " (flow alone is not enough: the loader lists users, classes and videos from it)" if flow_only else ""
        report.add(".", "not-a-dataset", f"{report.text(e)}{extra}", "error")
        return report.findings
    report.hidden(root / RGB_DIR, *(root / d for d in FLOW_DIRS))
    streams = {"rgb": any(v.frames for v in videos), "maps": any(v.maps for v in videos),
               "flow": any(v.flow_x or v.flow_y for v in videos)}
    for v in videos:
        report.video(v, streams)
    _structure(report, users, classes, videos, streams)
    return sorted(report.findings, key=lambda f: (("error", "warning", "info").index(f.severity), f.path, f.kind))


def _structure(report: _Report, users: list[str], classes: list[str], videos: list[_Video],
               streams: dict[str, bool]) -> None:
    """Users, classes and streams as a whole; last, the loader itself on every user."""
    root = report.root
    for user in users:
        report.hidden(root / RGB_DIR / user, *(d for d in visible_dirs(root / RGB_DIR / user)))
    have = {(v.user, v.action) for v in videos}
    busy = sorted({v.user for v in videos})
    for user in users:
        if user not in busy:
            report.add(f"{RGB_DIR}/{user}", "user-no-videos", report.loader(scan, root, [user], rgb=False),
                       "warning")
            continue
        for action in classes:
            if (user, action) not in have:
                report.add(f"{RGB_DIR}/{user}", "class-missing-for-user",
                           f"{user} has no video of {action}: it is never trained (or tested) on that class there",
                           "warning")
    if not busy:
        report.add(RGB_DIR, "no-videos", report.loader(scan, root, users, rgb=False), "error")
        return
    for stream, presets in (("rgb", "RGB"), ("flow", "flow"), ("maps", "motion-map")):
        if not streams[stream]:
            report.add(".", f"{stream}-absent", f"no video has {stream}: the {presets} presets cannot train on "
                       "this dataset", "info")
    listed = {v.entry for v in videos}
    for name in FLOW_DIRS:
        base = root / name
        for user in visible_dirs(base) if base.is_dir() else []:
            report.hidden(user, *visible_dirs(user))
            for action in visible_dirs(user):
                for video in visible_dirs(action):
                    if f"{user.name}/{action.name}/{video.name}" not in listed:
                        report.add(report.rel(video), "flow-orphan", f"{report.rel(video)}: no such video in "
                                   f"{RGB_DIR}; the loader ignores this flow", "info")
    # the loader on all of it: anything it refuses that the checks above missed is an error too
    message = report.loader(scan, root, busy, rgb=streams["rgb"], maps=streams["maps"], flow=streams["flow"])
    if message and message not in {f.message for f in report.findings}:
        report.add(RGB_DIR, "loader-error", message, "error")


class _Report:
    def __init__(self, root: Path):
        self.root = root
        self.findings: list[Finding] = []

    def add(self, path: str, kind: str, message: str, severity: Severity) -> None:
        self.findings.append(Finding(path=path or ".", kind=kind, message=message, severity=severity))

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def text(self, error: Exception) -> str:
        """The loader's message with paths relative to the dataset (no server paths)."""
        return str(error).replace(f"{self.root}{os.sep}", "")

    def loader(self, check, *args, **kwargs) -> str:
        """The loader's message for a check (`_video`/`scan`), "" when it passes."""
        try:
            check(*args, **kwargs)
        except DatasetError as e:
            return self.text(e)
        return ""

    def hidden(self, *folders: Path) -> None:
        """Hidden entries and stray files the loader skips in folders of folders."""
        for folder in folders:
            if not folder.is_dir():
                continue
            with os.scandir(folder) as entries:
                for e in entries:
                    if e.name.startswith("."):
                        self.add(self.rel(Path(e.path)), "hidden-ignored", f"{self.rel(Path(e.path))}: hidden, "
                                 "ignored", "info")
                    elif not e.is_dir():
                        self.add(self.rel(Path(e.path)), "file-ignored", f"{self.rel(Path(e.path))}: not a folder, "
                                 "ignored", "info")

    def images(self, folder: Path, found: dict[int, Path]) -> None:
        """One folder of numbered images: stray and empty files, the first image's header."""
        if not folder.is_dir():
            return
        with os.scandir(folder) as entries:
            for e in entries:
                path = self.rel(Path(e.path))
                if e.name.startswith("."):
                    self.add(path, "hidden-ignored", f"{path}: hidden, ignored", "info")
                elif not _NUMBER.search(e.name) or not e.is_file():
                    self.add(path, "file-ignored", f"{path}: not a numbered image, ignored", "info")
                elif e.stat().st_size == 0:
                    self.add(path, "unreadable-image", f"{path}: empty file", "error")
        if found:
            first = next(iter(found.values()))
            try:
                with Image.open(first) as img:
                    img.size  # noqa: B018 (the header is read on open; size proves it parsed)
            except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
                if first.stat().st_size:  # empty files are reported above
                    self.add(self.rel(first), "unreadable-image", f"{self.rel(first)}: unreadable image ({e})",
                             "error")

    def video(self, v: _Video, streams: dict[str, bool]) -> None:
        root, rel = self.root, self.rel(v.dir)
        self.hidden(v.dir)
        flow_dirs = [root / d / v.user / v.action / v.dir.name for d in FLOW_DIRS]
        for folder, found in ((v.dir / "rgb", v.frames), (v.dir / "mmaps", v.maps), (flow_dirs[0], v.flow_x),
                              (flow_dirs[1], v.flow_y)):
            self.images(folder, found)

        def check(rgb: bool = False, maps: bool = False, flow: bool = False) -> str:
            """The loader's message for this video and one stream."""
            return self.loader(_video, root, v.user, v.action, v.dir, 0, rgb, maps, flow)

        if streams["rgb"] and not v.frames:
            self.add(f"{rel}/rgb", "no-frames", check(rgb=True), "error")
        if streams["maps"]:
            if not v.maps:
                self.add(f"{rel}/mmaps", "no-maps", check(maps=True), "error")
            elif v.frames:
                missing = [n for n in v.frames if n not in v.maps]
                first = next(iter(v.frames))
                if first in missing:
                    self.add(f"{rel}/mmaps", "first-map-missing", f"{rel}/mmaps: no map for frame {first}; "
                             "the loader uses the next one", "warning")
                rest = [n for n in missing if n != first]
                if rest:
                    self.add(f"{rel}/mmaps", "maps-missing", f"{rel}/mmaps: no map for {len(rest)} of "
                             f"{len(v.frames)} frames (first: {rest[0]}); the loader uses the next one", "warning")
        if streams["flow"]:
            flow_rel = self.rel(flow_dirs[0])
            if not v.flow_x or not v.flow_y:
                self.add(flow_rel, "no-flow", check(flow=True), "error")
            elif set(v.flow_x) != set(v.flow_y):
                self.add(self.rel(flow_dirs[1]), "flow-xy-differ", check(flow=True), "error")
            elif v.frames and len(v.flow_x) < len(v.frames) - 1:
                self.add(flow_rel, "flow-short", f"{flow_rel}: {len(v.flow_x)} flow images for {len(v.frames)} "
                         f"frames (expected {len(v.frames) - 1}); the loader stacks only those", "warning")
