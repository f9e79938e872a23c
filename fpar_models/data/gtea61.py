"""Reads a dataset in the GTEA61 layout the course distributes (SPEC section 3).

    ROOT/processed_frames2/<user>/<action>/<video>/rgb/rgb0001.png
    ROOT/processed_frames2/<user>/<action>/<video>/mmaps/map0001.png
    ROOT/flow_x_processed/<user>/<action>/<video>/flow_x_00001.png
    ROOT/flow_y_processed/<user>/<action>/<video>/flow_y_00001.png

Torch-free. Quirks handled here: hidden entries (.DS_Store) are ignored at every
level, and a missing motion map is replaced by the next one.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

RGB_DIR = "processed_frames2"
FLOW_DIRS = ("flow_x_processed", "flow_y_processed")
_NUMBER = re.compile(r"(\d+)\.(png|jpg|jpeg)$", re.IGNORECASE)


class DatasetError(ValueError):
    """A malformed dataset; the message names the path at fault."""


@dataclass(frozen=True)
class Video:
    user: str
    action: str
    name: str
    label: int
    frames: tuple[Path, ...]
    maps: tuple[Path | None, ...] = ()       # aligned with frames; None where no map exists
    flow_x: tuple[Path, ...] = ()
    flow_y: tuple[Path, ...] = ()
    path: Path = field(default=Path("."))

    def map_for(self, i: int) -> Path:
        """The motion map of frame i, or the next one that exists (some first maps are missing)."""
        later = [m for m in self.maps[i:] if m is not None]
        earlier = [m for m in self.maps[:i] if m is not None]
        if later:
            return later[0]
        if earlier:
            return earlier[-1]
        raise DatasetError(f"{self.path / 'mmaps'}: no motion maps for this video")


def visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith(".") and p.is_dir())


def numbered_images(folder: Path) -> dict[int, Path]:
    """Image files of a folder by the number in their name (rgb0007.png -> 7)."""
    if not folder.is_dir():
        return {}
    found = {}
    for p in folder.iterdir():
        m = _NUMBER.search(p.name)
        if m and not p.name.startswith("."):
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def class_names(root: Path) -> list[str]:
    """Sorted union of the action folders of every user: a user who lacks an action
    cannot shift the ids of the others (the reference code numbered them per user)."""
    base = _require_dir(Path(root) / RGB_DIR)
    return sorted({a.name for user in visible_dirs(base) for a in visible_dirs(user)})


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{path}: missing folder")
    return path


def scan(root: Path, users: list[str], *, rgb: bool = True, maps: bool = False,
         flow: bool = False, classes: list[str] | None = None) -> list[Video]:
    """Every video of the given users, with the streams asked for checked to exist."""
    root = Path(root)
    classes = classes if classes is not None else class_names(root)
    index = {name: i for i, name in enumerate(classes)}
    videos = []
    for user in users:
        user_dir = _require_dir(root / RGB_DIR / user)
        for action_dir in visible_dirs(user_dir):
            if action_dir.name not in index:
                raise DatasetError(f"{action_dir}: action not among the model's classes")
            for video_dir in visible_dirs(action_dir):
                videos.append(_video(root, user, action_dir.name, video_dir,
                                     index[action_dir.name], rgb, maps, flow))
    if not videos:
        raise DatasetError(f"{root / RGB_DIR}: no videos for users {users}")
    return videos


def _video(root: Path, user: str, action: str, video_dir: Path, label: int,
           rgb: bool, maps: bool, flow: bool) -> Video:
    frames = numbered_images(video_dir / "rgb")
    if rgb and not frames:
        raise DatasetError(f"{video_dir / 'rgb'}: video has no frames")
    map_paths: tuple[Path | None, ...] = ()
    if maps:
        found = numbered_images(video_dir / "mmaps")
        if not found:
            raise DatasetError(f"{video_dir / 'mmaps'}: video has no motion maps")
        map_paths = tuple(found.get(n) for n in frames)
    flow_x: tuple[Path, ...] = ()
    flow_y: tuple[Path, ...] = ()
    if flow:
        rel = Path(user, action, video_dir.name)
        xs = numbered_images(root / FLOW_DIRS[0] / rel)
        ys = numbered_images(root / FLOW_DIRS[1] / rel)
        for name, found in zip(FLOW_DIRS, (xs, ys)):
            if not found:
                raise DatasetError(f"{root / name / rel}: video has no flow images")
        missing = sorted(set(xs) ^ set(ys))
        if missing:
            raise DatasetError(f"{root / FLOW_DIRS[1] / rel}: flow x and y differ at image {missing[0]}")
        flow_x, flow_y = tuple(xs.values()), tuple(ys.values())
    return Video(user, action, video_dir.name, label, tuple(frames.values()), map_paths,
                 flow_x, flow_y, video_dir)
