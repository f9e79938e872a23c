"""A small deterministic dataset in the GTEA61 layout, for tests, demos and benchmarks.

Six actions in three pairs; the two actions of a pair show the same object moving in
opposite directions (lift/lower, open/close), and a video of one is distributed like
the other played backwards. A model blind to frame order therefore cannot beat 50%
within a pair: telling them apart needs motion and its order. No pair differs by a
horizontal direction, since training mirrors frames at random.

Users differ in background and lighting, so the held-out user tests generalisation.
The GTEA61 quirks are reproduced: hidden `.DS_Store` entries and a few missing first
motion maps.

    python -m fpar_models.data.synthetic OUT [--videos-per-class 3] [--seed 0]
"""
from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
from PIL import Image

from fpar_models.data.gtea61 import FLOW_DIRS, RGB_DIR

HEIGHT, WIDTH = 72, 96
USERS = ("S1", "S2", "S3", "S4")
# action -> (object, motion, direction): direction -1 plays the +1 trajectory backwards
ACTIONS = {
    "lift_cup": ("cup", "vertical", -1), "lower_cup": ("cup", "vertical", +1),
    "lift_ball": ("ball", "vertical", -1), "lower_ball": ("ball", "vertical", +1),
    "open_box": ("box", "scale", +1), "close_box": ("box", "scale", -1),
}
COLOURS = {"cup": (220, 40, 40), "ball": (40, 200, 60), "box": (50, 80, 230)}
DONE = ".complete"


def _trajectory(motion: str, n: int, rng: np.random.Generator) -> list[tuple[float, float, float]]:
    """(centre y, centre x, half-size) per frame for direction +1 (down / growing)."""
    x = WIDTH / 2 + rng.uniform(-12, 12)
    t = np.linspace(0, 1, n)
    if motion == "vertical":
        y0, y1 = rng.uniform(14, 22), rng.uniform(50, 58)
        half = rng.uniform(10, 13)
        return [(y0 + (y1 - y0) * s, x, half) for s in t]
    y = HEIGHT / 2 + rng.uniform(-6, 6)
    h0, h1 = rng.uniform(4, 7), rng.uniform(18, 22)
    return [(y, x, h0 + (h1 - h0) * s) for s in t]


def _mask(shape: str, cy: float, cx: float, half: float) -> np.ndarray:
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    if shape == "ball":
        return (yy - cy) ** 2 + (xx - cx) ** 2 <= half ** 2
    return (abs(yy - cy) <= half) & (abs(xx - cx) <= half)


def _background(user: int) -> np.ndarray:
    """A plain table top whose tint and faint texture depend on the user."""
    rng = np.random.default_rng(1000 + user)
    base = 110 + rng.uniform(-8, 8, size=3)
    texture = rng.normal(0, 5, size=(HEIGHT // 8 + 1, WIDTH // 8 + 1, 3))
    texture = np.kron(texture, np.ones((8, 8, 1)))[:HEIGHT, :WIDTH]
    return base + texture


def _write(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8)).save(path)


class Rendered(NamedTuple):
    """One video's pixels before they are written: float RGB frames (unclipped), the
    object's mask per frame, and where it is (centre y, centre x, half-size) per frame,
    camera shake included (`path` is the trajectory without it)."""
    frames: list[np.ndarray]
    masks: list[np.ndarray]
    boxes: list[tuple[float, float, float]]
    path: list[tuple[float, float, float]]


def render(user: int, action: str, index: int, seed: int) -> Rendered:
    """The frames of one video, deterministic in (user, action, index, seed): the GTEA-layout
    dataset writes them as PNGs, `recordings` encodes them into mp4 files."""
    obj, motion, direction = ACTIONS[action]
    rng = np.random.default_rng([seed, user, list(ACTIONS).index(action), index])
    n = int(rng.integers(10, 19))
    path = _trajectory(motion, n, rng)
    if direction < 0:
        path = path[::-1]
    background = _background(user)
    light = rng.uniform(0.9, 1.1)
    frames, masks, boxes = [], [], []
    for cy, cx, half in path:
        dy, dx = rng.integers(-2, 3, size=2)  # camera shake
        mask = _mask("ball" if obj == "ball" else "box", cy + dy, cx + dx, half)
        frame = np.roll(background, (dy, dx), axis=(0, 1)) * light
        frame[mask] = np.array(COLOURS[obj]) * light
        frame += rng.normal(0, 4, size=frame.shape)
        frames.append(frame)
        masks.append(mask)
        boxes.append((cy + dy, cx + dx, half))
    return Rendered(frames, masks, boxes, path)


def _video(root: Path, user: int, action: str, index: int, seed: int) -> None:
    frames, masks, _, path = render(user, action, index, seed)
    n = len(frames)
    rel = Path(USERS[user], action, f"{index + 1}")
    video_dir = root / RGB_DIR / rel
    for f, (frame, mask) in enumerate(zip(frames, masks)):
        _write(video_dir / "rgb" / f"rgb{f + 1:04d}.png", frame)
        # a few videos lack their first motion map, as in GTEA61
        if not (f == 0 and index == 0 and user == 2):
            _write(video_dir / "mmaps" / f"map{f + 1:04d}.png", mask * 255.0)
    for f in range(n - 1):
        (y0, _, h0), (y1, _, h1) = path[f], path[f + 1]
        moving = masks[f] | masks[f + 1]
        flow_y = np.full((HEIGHT, WIDTH), 128.0)
        flow_x = np.full((HEIGHT, WIDTH), 128.0)
        flow_y[moving] += 12 * (y1 - y0)
        xx = np.mgrid[0:HEIGHT, 0:WIDTH][1]
        flow_x[moving] += 2 * (h1 - h0) * np.sign(xx[moving] - WIDTH / 2)
        _write(root / FLOW_DIRS[0] / rel / f"flow_x_{f + 1:05d}.png", flow_x)
        _write(root / FLOW_DIRS[1] / rel / f"flow_y_{f + 1:05d}.png", flow_y)


def generate(root: Path, *, videos_per_class: int = 3, seed: int = 0) -> Path:
    """Write the dataset under root (skipped when a complete copy is already there)."""
    root = Path(root)
    if (root / DONE).exists():
        return root
    if root.exists():
        shutil.rmtree(root)  # a half-written copy from an interrupted run
    for user in range(len(USERS)):
        for action in ACTIONS:
            for index in range(videos_per_class):
                _video(root, user, action, index, seed)
        hidden = root / RGB_DIR / USERS[user] / ".DS_Store"
        hidden.mkdir(parents=True)
        (hidden / "junk").write_bytes(b"\0")
    (root / DONE).write_text(f"videos_per_class={videos_per_class} seed={seed}\n")
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--videos-per-class", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(generate(args.out, videos_per_class=args.videos_per_class, seed=args.seed))


if __name__ == "__main__":
    main()
