"""Turning uploaded frames into model input, in the gateway: decode once, validate
every file (a bad one is a 422 naming it), sample the frames the model needs and apply
the same evaluation transform the trainer used. The worker receives ready uint8 arrays."""
from __future__ import annotations

import io
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import av
import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from core.cpu import meter
from core.settings import Settings
from fpar_models.data.transforms import eval_view, frame_indices, prepare_flow, scale_shorter, scaled_side
from service.errors import field_error, problem_response

FORMATS = ("PNG", "JPEG")
Image.MAX_IMAGE_PIXELS = None  # our own limits below are checked first, from the header, and always


@dataclass(frozen=True)
class Limits:
    """What one upload may cost to decode. Checked from each image's header (and a video's
    stream) before a pixel is decoded: the file size says nothing, a 300-byte PNG can
    claim billions of pixels."""
    pixels: int = 16_000_000     # per image or video frame
    aspect: float = 8.0          # longer side / shorter side: scaling the shorter side of a strip is the bomb
    decoded_bytes: int = 1 << 30  # all the images of one request, decoded

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits FPAR_MAX_IMAGE_PIXELS, FPAR_MAX_ASPECT and FPAR_MAX_DECODE_MB set."""
        return cls(settings.max_image_pixels, settings.max_aspect, int(settings.max_decode_mb * (1 << 20)))


def _part(field: str, index: int | None, name: str | None = None) -> str:
    return (f"{field}[{index}]" if index is not None else field) + (f" ('{name}')" if name else "")


def check_size(width: int, height: int, limits: Limits, field: str, index: int | None, name: str | None) -> None:
    where = [field] if index is None else [field, index]
    what = f"{_part(field, index, name)} {'frames are' if index is None else 'is'} {width} x {height}"
    if width * height > limits.pixels:
        raise field_error(where, f"{what} = {width * height / 1e6:.1f} MP; at most {limits.pixels / 1e6:g} MP "
                          "(FPAR_MAX_IMAGE_PIXELS)")
    if max(width, height) > limits.aspect * max(1, min(width, height)):
        raise field_error(where, f"{what}, longer than {limits.aspect:g}:1 (FPAR_MAX_ASPECT)")


def open_image(data: bytes, field: str, index: int, name: str | None, limits: Limits) -> Image.Image:
    """The image's header, checked; nothing decoded yet."""
    part = _part(field, index, name)
    if not data:
        raise field_error([field, index], f"{part} is empty")
    try:
        img = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise field_error([field, index], f"{part} is not an image: send PNG or JPEG files") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise field_error([field, index], f"{part} is an unreadable image ({_clean(e)})") from None
    if img.format not in FORMATS:
        raise field_error([field, index], f"{part} is {img.format or 'an unknown format'}; send PNG or JPEG")
    check_size(*img.size, limits, field, index, name)
    return img


def decode(img: Image.Image, field: str, index: int, name: str | None, mode: str,
           view: Callable[[Image.Image], Any]) -> Any:
    """Decode an image `open_image` checked fully (a truncated file fails here, not later
    in a worker) and return `view` of it. Call it holding one of DECODE_SLOTS: a full-size
    image exists only inside one."""
    try:
        img.load()
        seen = view(img if img.mode == mode else img.convert(mode))
    except (OSError, ValueError, SyntaxError) as e:
        raise field_error([field, index], f"{_part(field, index, name)} is a damaged or unreadable PNG/JPEG image "
                          f"({_clean(e)})") from None
    if seen is not img:
        img.close()  # its full-size pixels go now, not with the request's other images
    return seen


def _clean(e: Exception) -> str:
    return _OBJECT_REPR.sub("the upload", str(e))  # PIL names the in-memory file by its address


def check_budget(images: list[Image.Image], limits: Limits, field: str) -> None:
    """Refuse a request whose images together would decode to more than the budget."""
    total = sum(img.width * img.height * len(img.getbands()) for img in images)
    if total > limits.decoded_bytes:
        raise field_error([field], f"the {len(images)} images of `{field}` decode to {total / 2**20:.0f} MB; at most "
                          f"{limits.decoded_bytes / 2**20:.0f} MB per request (FPAR_MAX_DECODE_MB)")


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_DECODE_SLOTS = threading.BoundedSemaphore(2)
_DECODERS = ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 1)), thread_name_prefix="decode")


def rgb_from_images(files: list[tuple[str | None, bytes]], frames: int, image_size: int,
                    limits: Limits = Limits(), sampling: str = "reference") -> np.ndarray:
    """Every file is decoded (so any broken one is reported); the sampled ones are kept.
    Every header is checked first; decoding keeps only the small evaluation views, and
    runs on a second thread too when the gateway has a decode slot to spare (PIL releases
    the GIL while it inflates and resizes pixels)."""
    images = [open_image(data, "frames", i, name, limits) for i, (name, data) in enumerate(files)]
    check_budget(images, limits, "frames")
    order = frame_indices(len(files), frames, sampling)
    picks = set(order)

    def some(indices: range) -> list[np.ndarray | None]:
        with meter.stage("decode"):  # per half, not per image: 32 clock reads a request showed in profiles
            return [decode(images[i], "frames", i, files[i][0], "RGB",
                           lambda img, i=i: eval_view(img, image_size) if i in picks else None) for i in indices]

    with _DECODE_SLOTS:
        if len(files) < 2 or not _DECODE_SLOTS.acquire(blocking=False):
            views = some(range(len(files)))
        else:
            # a slot to spare (the gateway is not busy): the second half on a decoder, so that
            # one request is decoded on two cores; under load each request keeps to its thread,
            # since hand-overs between threads cost more CPU than they save
            half = (len(files) + 1) // 2
            other = _DECODERS.submit(_releasing, some, range(half, len(files)))
            try:
                views = some(range(half))
            except BaseException:
                wait([other])  # its work ends before the request does; the earlier bad file is the one named
                raise
            views += other.result()  # re-raises the second half's first bad file's 422
    return np.stack([views[i] for i in order])


def _releasing(fn: Callable, *args) -> Any:
    """`fn(*args)` on a decoder, giving back the decode slot taken for it."""
    try:
        return fn(*args)
    finally:
        _DECODE_SLOTS.release()


def rgb_from_video(data: bytes, frames: int, image_size: int, max_frames: int,
                   limits: Limits = Limits(), sampling: str = "reference") -> np.ndarray:
    """Frame by frame, each scaled down as soon as it is decoded; the stream's frame size
    is checked before the first one."""
    if not data:
        raise field_error(["video"], "the video file is empty")
    side = scaled_side(image_size)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise field_error(["video"], "the file has no video stream")
            vstream = container.streams.video[0]
            check_size(vstream.codec_context.width, vstream.codec_context.height, limits, "video", None, None)
            known = vstream.frames or 0
            order = frame_indices(known, frames, sampling) if known else []
            picks = set(order) if known else None
            kept = {}
            with _DECODE_SLOTS, meter.stage("decode"):
                for i, frame in enumerate(container.decode(vstream)):
                    check_size(frame.width, frame.height, limits, "video", None, None)  # a stream may change size
                    if picks is None or i in picks:
                        kept[i] = scale_shorter(frame.to_image(), side)
                    if len(kept) > max_frames or i >= 10 * max_frames:
                        raise field_error(["video"], f"more than {max_frames} frames (FPAR_MAX_FRAMES)")
                    if picks is not None and i >= max(picks):
                        break
    except av.FFmpegError as e:
        raise field_error(["video"], f"not a decodable video ({_clean(e)})") from None
    if not kept:
        raise field_error(["video"], "the video holds no frames")
    if picks is None or not picks <= kept.keys():  # the stream held fewer frames than it said
        decoded = list(kept.values())
        return np.stack([eval_view(decoded[i], image_size) for i in frame_indices(len(decoded), frames, sampling)])
    return np.stack([eval_view(kept[i], image_size) for i in order])


def flow_from_images(flow_x: list[tuple[str | None, bytes]], flow_y: list[tuple[str | None, bytes]],
                     stack: int, stacks: int, image_size: int, limits: Limits = Limits(),
                     sampling: str = "reference") -> np.ndarray:
    if len(flow_x) != len(flow_y):
        raise field_error(["flow_y"], f"{len(flow_y)} images, but flow_x has {len(flow_x)}")
    side = scaled_side(image_size)
    scaled = {}
    for field, files in (("flow_x", flow_x), ("flow_y", flow_y)):
        images = [open_image(data, field, i, name, limits) for i, (name, data) in enumerate(files)]
        check_budget(images, limits, field)
        with _DECODE_SLOTS, meter.stage("decode"):
            scaled[field] = [decode(img, field, i, name, "L", lambda img: scale_shorter(img, side))
                             for i, (img, (name, _)) in enumerate(zip(images, files))]
    return prepare_flow(scaled["flow_x"], scaled["flow_y"], stack, stacks, image_size, sampling)


def rgb_from_array(frames: np.ndarray, count: int, image_size: int, field: str, limits: Limits = Limits(),
                   sampling: str = "reference") -> np.ndarray:
    """Decoded frames (T, H, W, 3) uint8, as the Open Inference Protocol sends them."""
    check_size(frames.shape[2], frames.shape[1], limits, field, None, None)
    picked = frame_indices(len(frames), count, sampling)
    return np.stack([eval_view(Image.fromarray(frames[i]), image_size) for i in picked])


def flow_from_array(flow: np.ndarray, stack: int, stacks: int, image_size: int, field: str,
                    limits: Limits = Limits(), sampling: str = "reference") -> np.ndarray:
    """Flow images (T, H, W, 2) uint8, x then y in the last axis."""
    check_size(flow.shape[2], flow.shape[1], limits, field, None, None)
    side = scaled_side(image_size)
    x, y = ([scale_shorter(Image.fromarray(np.ascontiguousarray(flow[i, :, :, c])), side) for i in range(len(flow))]
            for c in (0, 1))
    return prepare_flow(x, y, stack, stacks, image_size, sampling)


class TooLarge(HTTPException):
    def __init__(self, limit: int, setting: str = "FPAR_MAX_UPLOAD_MB"):
        super().__init__(413, f"request body larger than {limit} bytes ({setting})")


class BodyLimit:
    """Refuses bodies over the limit while they stream in: by Content-Length at once,
    otherwise as soon as the bytes received pass it, never after buffering them all.
    `larger` gives the paths with a limit of their own (an archive of recordings)."""

    def __init__(self, app: ASGIApp, limit_bytes: int, larger: dict[str, tuple[int, str]] | None = None):
        self.app, self.limit, self.larger = app, limit_bytes, larger or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit, setting = self.larger.get(scope["path"], (self.limit, "FPAR_MAX_UPLOAD_MB"))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            return await problem_response(413, TooLarge(limit, setting).detail, kind="too-large")(scope, receive,
                                                                                                 send)
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(limit, setting)
            return message

        async def tracked(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except TooLarge as e:
            if not started:
                await problem_response(413, e.detail, kind="too-large")(scope, receive, send)
