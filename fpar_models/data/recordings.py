"""Real mp4 recordings whose content is known, for the ingest's tests, benchmarks and the
quickstart: what a camera would have filmed, with the ground truth an ingest must recover.

- `write_recording`: several clips of the synthetic dataset (`synthetic.render`, the same
  pixels its GTEA-layout copy has) one after another in one untrimmed video, with a few
  still frames between them, optionally under a camera panning back and forth; returns each
  clip's start and end time and label, and per frame the object's mask and displacement.
- `looped_recording`: clips played over and over for as long as asked (30 minutes, say), as
  MJPEG: every frame a JPEG of its own, so the file is large, yet written in a second.
- `moving_square`: a textured square moving at a constant velocity over a textured
  background, with or without a pan (a window sliding over a larger background, so the
  pan is real, with no wrap-around): the flow tests' subject.

Encoded with libx264 (yuv420p, near-lossless) when PyAV's FFmpeg has it, else MPEG-4 part 2.

    python -m fpar_models.data.recordings OUT.mp4 [--clips S1:lift_cup:0 S1:open_box:1 ...] [--pan 1 0]
                                          [--labels labels.csv]
"""
from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import av
import cv2
import numpy as np

from fpar_models.data.synthetic import HEIGHT, USERS, WIDTH, _background, render


def codec() -> str:
    """The encoder used: H.264 where PyAV's FFmpeg was built with it."""
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.codec.codec.UnknownCodecError, ValueError):
            continue
    raise RuntimeError("PyAV has neither libx264 nor mpeg4 encoders")


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> str:
    """Encode RGB uint8 frames (even width and height) into an mp4; returns the codec."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    name = codec()
    with av.open(str(path), "w") as container:
        stream = None
        for rgb in frames:
            if stream is None:
                stream = container.add_stream(name, rate=round(fps) if float(fps).is_integer() else fps)
                stream.height, stream.width = rgb.shape[:2]
                stream.pix_fmt = "yuv420p"
                if name == "libx264":
                    stream.options = {"crf": "8", "preset": "veryfast", "g": "12"}
                else:
                    stream.bit_rate, stream.options = 4_000_000, {"g": "12"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb, dtype=np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        if stream is None:
            raise ValueError(f"{path}: no frames to write")
        container.mux(stream.encode())
    return name


@dataclass(frozen=True)
class ClipTruth:
    user: str
    action: str           # the label
    index: int
    first: int            # its first frame in the recording (0-based)
    frames: int
    start_s: float        # first / fps
    end_s: float          # (first + frames) / fps: [start, end) holds exactly its frames


@dataclass
class Recording:
    path: Path
    fps: float
    codec: str
    clips: list[ClipTruth]
    masks: list[np.ndarray] = field(repr=False)         # per frame, bool (h, w); all False between clips
    displacement: np.ndarray = field(repr=False)        # (frames, 2): the object's dx, dy px on screen to the
    #                                                     next frame, camera shake and pan included; NaN: none

    @property
    def frames(self) -> int:
        return len(self.masks)

    @property
    def duration_s(self) -> float:
        return self.frames / self.fps


def _fold(travel: int, reach: int) -> int:
    """A camera panning back and forth over [0, reach] px: where it is after `travel` px."""
    if reach <= 0:
        return 0
    t = travel % (2 * reach)
    return t if t <= reach else 2 * reach - t


def _pan(image: np.ndarray, offset: tuple[int, int], reach: int) -> np.ndarray:
    """The picture after the camera turned so that it moved by `offset` (dx, dy) px; the strip
    brought into view is the picture's edge mirrored (the synthetic table has no world beyond
    the frame)."""
    if reach <= 0:
        return image
    pad = ((reach, reach), (reach, reach)) + ((0, 0),) * (image.ndim - 2)
    big = np.pad(image, pad, mode="reflect")
    y0, x0 = reach - offset[1], reach - offset[0]
    return big[y0:y0 + image.shape[0], x0:x0 + image.shape[1]]


def write_recording(path: Path, clips: Sequence[tuple[str, str, int]], *, fps: float = 12,
                    pan: tuple[int, int] | None = None, reach: int = 8, gap: int = 3, seed: int = 0) -> Recording:
    """One mp4 of the synthetic clips (user, action, index) in order, `gap` still frames of
    the first clip's user's table before, between and after them. `pan`: the camera pans so
    that the whole picture moves by (dx, dy) px per frame, turning back every `reach` px."""
    frames, masks, centres, truths = [], [], [], []
    rng = np.random.default_rng([seed, 99])

    def still(user: int) -> None:
        for _ in range(gap):
            frames.append(_background(user) + rng.normal(0, 4, size=(HEIGHT, WIDTH, 3)))
            masks.append(np.zeros((HEIGHT, WIDTH), bool))
            centres.append(None)

    first_user = USERS.index(clips[0][0]) if clips else 0
    still(first_user)
    for user, action, index in clips:
        u = USERS.index(user)
        clip = render(u, action, index, seed)
        truths.append(ClipTruth(user, action, index, len(frames), len(clip.frames),
                                len(frames) / fps, (len(frames) + len(clip.frames)) / fps))
        frames.extend(clip.frames)
        masks.extend(clip.masks)
        centres.extend(clip.boxes)
        still(u)
    pan = pan or (0, 0)
    reach = reach if pan != (0, 0) else 0
    offsets = [tuple(int(np.sign(v)) * _fold(abs(v) * k, reach) for v in pan) for k in range(len(frames))]
    pixels = [np.clip(_pan(f, o, reach), 0, 255).astype(np.uint8) for f, o in zip(frames, offsets)]
    masks = [_pan(m, o, reach) for m, o in zip(masks, offsets)]
    displacement = np.full((len(frames), 2), np.nan)
    for k in range(len(frames) - 1):
        a, b = centres[k], centres[k + 1]
        if a is not None and b is not None:
            camera = np.subtract(offsets[k + 1], offsets[k])
            displacement[k] = (b[1] - a[1] + camera[0], b[0] - a[0] + camera[1])
    used = write_mp4(path, pixels, fps)
    return Recording(Path(path), fps, used, truths, masks, displacement)


def looped_recording(path: Path, clips: Sequence[tuple[str, str, int]], duration_s: float, *, fps: float = 12,
                     scale: int = 2) -> Path:
    """An MJPEG AVI of the synthetic clips (user, action, index) one after another, over and
    over, for duration_s, each frame `scale` times the synthetic size. Every frame is a key
    frame, so the loop's JPEGs are encoded once and their packets written again: 30 minutes
    at scale 2 are about 115 MB, written in well under a second."""
    from fractions import Fraction

    frames = [np.clip(f, 0, 255).astype(np.uint8) for user, action, index in clips
              for f in render(USERS.index(user), action, index, 0).frames]
    frames = [np.kron(f, np.ones((scale, scale, 1), np.uint8)) for f in frames]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuvj420p"
        stream.codec_context.qmin, stream.codec_context.qmax = 1, 2  # the best JPEG quality: large frames
        packets = [bytes(p) for f in frames for p in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24"))]
        packets += [bytes(p) for p in stream.encode()]
        for n in range(round(duration_s * fps)):
            packet = av.Packet(packets[n % len(packets)])
            packet.stream, packet.time_base = stream, Fraction(1) / stream.average_rate
            packet.pts = packet.dts = n
            container.mux(packet)
    return path


@dataclass
class Motion:
    path: Path
    fps: float
    velocity: tuple[int, int]    # the square's own motion, (dx, dy) px per frame
    pan: tuple[int, int]         # the camera's: everything moves by this too
    masks: list[np.ndarray] = field(repr=False)

    @property
    def displacement(self) -> tuple[int, int]:
        """How far the square moves on screen per frame."""
        return self.velocity[0] + self.pan[0], self.velocity[1] + self.pan[1]


def _texture(rng: np.random.Generator, h: int, w: int, blur: float) -> np.ndarray:
    """Smooth random grey-level texture: corners for the homography, gradients for the flow."""
    noise = rng.uniform(0, 255, size=(h, w)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), blur)
    smooth = (smooth - smooth.mean()) / (smooth.std() + 1e-6)
    return smooth


def moving_square(path: Path, frames: int = 8, *, velocity: tuple[int, int] = (2, 0), pan: tuple[int, int] = (0, 0),
                  size: tuple[int, int] = (64, 48), square: int = 16, fps: float = 10, seed: int = 0) -> Motion:
    """A bright textured square moving by `velocity` px per frame over a darker textured
    background, the camera panning so that the background moves by `pan` px per frame.
    The square starts where it stays in view for all `frames`."""
    width, height = size
    rng = np.random.default_rng(seed)
    travel = [abs(v) * (frames - 1) for v in pan]
    world_h, world_w = height + travel[1] + 2, width + travel[0] + 2
    background = 90 + 30 * _texture(rng, world_h, world_w, 1.5)
    pattern = 190 + 30 * _texture(rng, square, square, 1.0)
    tint = np.array([1.0, 0.85, 0.7])
    # the window's top-left in the world per frame: the picture moves by +pan when the window moves by -pan
    wx0 = travel[0] if pan[0] > 0 else 0
    wy0 = travel[1] if pan[1] > 0 else 0
    # the square's top-left on screen at frame 0, so it stays inside for the whole video
    moves = [(velocity[0] + pan[0]) * (frames - 1), (velocity[1] + pan[1]) * (frames - 1)]
    sx0 = (width - square - moves[0]) // 2
    sy0 = (height - square - moves[1]) // 2
    if not (0 <= sx0 and sx0 + moves[0] + square <= width and 0 <= sy0 and sy0 + moves[1] + square <= height):
        raise ValueError(f"a {square} px square moving {moves} px does not stay in a {width}x{height} frame")
    pixels, masks = [], []
    for k in range(frames):
        wx, wy = wx0 - pan[0] * k, wy0 - pan[1] * k
        grey = background[wy:wy + height, wx:wx + width].copy()
        x, y = sx0 + (velocity[0] + pan[0]) * k, sy0 + (velocity[1] + pan[1]) * k
        grey[y:y + square, x:x + square] = pattern
        mask = np.zeros((height, width), bool)
        mask[y:y + square, x:x + square] = True
        rgb = grey[..., None] * tint + rng.normal(0, 1.5, size=(height, width, 3))
        pixels.append(np.clip(rgb, 0, 255).astype(np.uint8))
        masks.append(mask)
    write_mp4(path, pixels, fps)
    return Motion(Path(path), fps, tuple(velocity), tuple(pan), masks)


def labels_csv(recordings: Sequence[Recording], root: Path | None = None) -> str:
    """The generic labels CSV of the recordings' clips: video (relative to root, default: the
    file's name), label, start and end in seconds, user."""
    rows = ["video,label,start,end,user"]
    for rec in recordings:
        video = rec.path.relative_to(root).as_posix() if root is not None else rec.path.name
        rows += [f"{video},{c.action},{c.start_s:.4f},{c.end_s:.4f},{c.user}" for c in rec.clips]
    return "\n".join(rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("out", type=Path)
    parser.add_argument("--clips", nargs="+", default=["S1:lift_cup:0", "S1:open_box:0", "S1:lower_ball:0"],
                        help="user:action:index of each clip, in order")
    parser.add_argument("--fps", type=float, default=12)
    parser.add_argument("--pan", type=int, nargs=2, default=None, metavar=("DX", "DY"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--labels", type=Path, help="write the labels CSV here (default: print it)")
    args = parser.parse_args()
    clips = [(u, a, int(i)) for u, a, i in (c.split(":") for c in args.clips)]
    rec = write_recording(args.out, clips, fps=args.fps, pan=tuple(args.pan) if args.pan else None, seed=args.seed)
    if args.labels:
        root = args.labels.parent if args.out.is_relative_to(args.labels.parent) else None
        args.labels.write_text(labels_csv([rec], root))
    else:
        print(labels_csv([rec]), end="")


if __name__ == "__main__":
    main()
