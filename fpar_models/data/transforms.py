"""Frame sampling and the spatial transforms of Ego-RNN, torch-free (PIL + numpy) so
the gateway can prepare uploaded frames exactly as the trainer prepared the validation
set: one code path, no train/serve skew.

One `Crop` is drawn per video and applied to its frames, motion maps and flows alike.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fpar_models.data.gtea61 import DatasetError

SCALES = (1.0, 0.875, 0.75, 0.65625)
POSITIONS = ("c", "tl", "tr", "bl", "br")
RGB_MEAN = (0.485, 0.456, 0.406)
RGB_STD = (0.229, 0.224, 0.225)
FLOW_MEAN, FLOW_STD = 0.449, 0.226  # the RGB statistics averaged, as the reference does
MAP_THRESHOLD = 0.4


SAMPLINGS = ("reference", "centre")


def uniform_indices(n: int, count: int) -> list[int]:
    """`count` indices spread uniformly over n items: the centre of each of `count` equal
    segments. Fewer items than asked for repeat, more are subsampled."""
    if n < 1:
        raise ValueError("no items to sample from")
    return [min(n - 1, int((i + 0.5) * n / count)) for i in range(count)]


def frame_indices(n: int, count: int, sampling: str = "reference") -> list[int]:
    """The frames a clip is made of. `reference`: the public Ego-RNN code's
    floor(linspace(1, n, count, endpoint=False)) on its 1-based file numbers, i.e. each
    segment's start (the first frame always, the last never: n=16, count=16 repeats frame
    0 and leaves out frame 15). `centre`: each segment's centre (uniform_indices)."""
    if n < 1:
        raise ValueError("no items to sample from")
    if sampling == "centre":
        return uniform_indices(n, count)
    return [int(np.floor(1 + i * (n - 1) / count)) - 1 for i in range(count)]


def stack_starts(n: int, stack: int, count: int, sampling: str = "reference") -> list[int]:
    """First index of `count` evaluation stacks of `stack` consecutive items among n.
    `reference`, as Ego-RNN's flow loader on its 1-based numbers: one stack starts at
    ceil((n - stack) / 2) (the centre, one earlier than `centre` when n - stack is even),
    several at linspace(1, n - stack + 1, count, endpoint=False) (over the first 80% of the
    room for 5). `centre`: one at (n - stack) // 2, several from 0 to n - stack."""
    last = max(0, n - stack)
    if sampling == "centre":
        if count == 1:
            return [last // 2]
        return [round(i * last / (count - 1)) for i in range(count)]
    if last == 0:
        return [0] * count
    if count == 1:
        return [int(np.ceil(last / 2)) - 1]
    return [int(np.floor(1 + i * last / count)) - 1 for i in range(count)]


def train_stack_start(n: int, stack: int, rng, sampling: str = "reference") -> int:
    """A training clip's random stack start: `reference` from 0 .. n - stack - 1, as
    Ego-RNN's randint(1, n - stack) on 1-based numbers; `centre` from 0 .. n - stack."""
    last = max(0, n - stack)
    if sampling == "reference":
        return rng.randint(0, last - 1) if last > 0 else 0
    return rng.randint(0, last)


def stack_indices(n: int, stack: int, start: int) -> list[int]:
    return [min(n - 1, start + k) for k in range(stack)]


def scaled_side(image_size: int) -> int:
    """Ego-RNN scales the shorter side to 256 before cropping 224; keep that ratio."""
    return round(image_size * 256 / 224)


@dataclass(frozen=True)
class Crop:
    """A square crop of the scaled image, resized to `size`, optionally mirrored."""
    size: int
    scale: float = 1.0
    position: str = "c"
    flip: bool = False

    @classmethod
    def random(cls, size: int, rng: random.Random) -> Crop:
        return cls(size, rng.choice(SCALES), rng.choice(POSITIONS), rng.random() < 0.5)

    @classmethod
    def center(cls, size: int) -> Crop:
        """Evaluation: a `size` crop from the middle of the scaled image, no resizing."""
        return cls(size, scale=size / scaled_side(size))

    def box(self, width: int, height: int) -> tuple[int, int, int, int]:
        side = max(1, int(min(width, height) * self.scale + 1e-6))
        x = {"c": (width - side) // 2, "tl": 0, "bl": 0}.get(self.position, width - side)
        y = {"c": (height - side) // 2, "tl": 0, "tr": 0}.get(self.position, height - side)
        return x, y, x + side, y + side


def scale_shorter(img: Image.Image, side: int) -> Image.Image:
    w, h = img.size
    if min(w, h) == side:
        return img
    if w <= h:
        return img.resize((side, max(1, round(h * side / w))), Image.BILINEAR)
    return img.resize((max(1, round(w * side / h)), side), Image.BILINEAR)


def apply_crop(img: Image.Image, crop: Crop, *, invert_on_flip: bool = False) -> np.ndarray:
    """Scaled image -> uint8 array (size, size[, C]). A mirrored x-flow changes sign,
    which for flow stored around 128 means 255 - value."""
    out = img.crop(crop.box(*img.size))
    if out.size != (crop.size, crop.size):
        out = out.resize((crop.size, crop.size), Image.BILINEAR)
    arr = np.asarray(out)
    if crop.flip:
        arr = arr[:, ::-1]
        if invert_on_flip:
            arr = 255 - arr
    return np.ascontiguousarray(arr)


def load_image(path, mode: str) -> Image.Image:
    """Decode fully (so truncated files fail here, naming the path) and convert."""
    try:
        with Image.open(path) as img:
            img.load()
            return img.convert(mode)
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise DatasetError(f"{path}: unreadable image ({e})") from None


def resize_map(arr: np.ndarray, grid: int) -> np.ndarray:
    """A cropped motion map (uint8) -> float grey levels in [0, 1] on the feature grid."""
    img = Image.fromarray(arr).resize((grid, grid), Image.BILINEAR)
    return np.asarray(img, dtype=np.float32) / 255.0


def eval_view(img: Image.Image, image_size: int, mode: str = "RGB") -> np.ndarray:
    """The evaluation transform of one image: scale the shorter side, centre crop."""
    img = img if img.mode == mode else img.convert(mode)  # (a same-mode convert copies the whole image)
    return apply_crop(scale_shorter(img, scaled_side(image_size)), Crop.center(image_size))


def prepare_frames(images: list[Image.Image], frames: int, image_size: int, sampling: str = "reference"
                   ) -> np.ndarray:
    """Inference input: sample `frames` as the model was trained, eval transform -> (T, S, S, 3) uint8."""
    return np.stack([eval_view(images[i], image_size) for i in frame_indices(len(images), frames, sampling)])


def prepare_flow(flow_x: list[Image.Image], flow_y: list[Image.Image], stack: int, stacks: int,
                 image_size: int, sampling: str = "reference") -> np.ndarray:
    """Inference input for flow models: `stacks` stacks of `stack` x/y pairs spread over
    the video, eval transform -> (K, 2*stack, S, S) uint8, x and y interleaved."""
    if len(flow_x) != len(flow_y):
        raise ValueError("flow_x and flow_y must hold the same number of images")
    n = len(flow_x)
    return np.stack([
        np.stack([eval_view(images[i], image_size, "L")
                  for i in stack_indices(n, stack, start) for images in (flow_x, flow_y)])
        for start in stack_starts(n, stack, stacks, sampling)])
