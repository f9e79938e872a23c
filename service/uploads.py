"""Turning uploaded frames into model input, in the gateway: decode once, validate
every file (a bad one is a 422 naming it), sample the frames the model needs and apply
the same evaluation transform the trainer used. The worker receives ready uint8 arrays."""
from __future__ import annotations

import io
import os
import re
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
from PIL import Image, UnidentifiedImageError
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from fpar_models.data.transforms import eval_view, prepare_flow, scale_shorter, scaled_side, uniform_indices
from service.errors import field_error, problem_response

Image.MAX_IMAGE_PIXELS = 50_000_000  # larger claims are refused before decoding (bombs)
FORMATS = ("PNG", "JPEG")


def decode_image(data: bytes, field: str, index: int, name: str | None, mode: str) -> Image.Image:
    part = f"{field}[{index}]" + (f" ('{name}')" if name else "")
    if not data:
        raise field_error([field, index], f"{part} is empty")
    try:
        img = Image.open(io.BytesIO(data))
        if img.format not in FORMATS:
            raise field_error([field, index], f"{part} is {img.format or 'an unknown format'}; send PNG or JPEG")
        img.load()  # a truncated file fails here, not later in a worker
        return img.convert(mode)
    except UnidentifiedImageError:
        raise field_error([field, index], f"{part} is not an image: send PNG or JPEG files") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        reason = _OBJECT_REPR.sub("the upload", str(e))  # PIL names the in-memory file by its address
        raise field_error([field, index], f"{part} is a damaged or unreadable PNG/JPEG image ({reason})") from None


_OBJECT_REPR = re.compile(r"<[\w.]+ object at 0x[0-9a-fA-F]+>")
_DECODERS = ThreadPoolExecutor(max(2, min(4, os.cpu_count() or 1)), thread_name_prefix="decode")


def rgb_from_images(files: list[tuple[str | None, bytes]], frames: int, image_size: int) -> np.ndarray:
    """Every file is decoded (so any broken one is reported); the sampled ones are kept.
    Decoding runs on a few threads: PIL releases the GIL while it inflates pixels."""
    order = uniform_indices(len(files), frames)
    picks = set(order)

    def one(i: int) -> np.ndarray | None:
        name, data = files[i]
        img = decode_image(data, "frames", i, name, "RGB")
        return eval_view(img, image_size) if i in picks else None

    views = list(_DECODERS.map(one, range(len(files))))  # re-raises the first bad file's 422
    return np.stack([views[i] for i in order])


def rgb_from_video(data: bytes, frames: int, image_size: int, max_frames: int) -> np.ndarray:
    if not data:
        raise field_error(["video"], "the video file is empty")
    side = scaled_side(image_size)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.video:
                raise field_error(["video"], "the file has no video stream")
            vstream = container.streams.video[0]
            known = vstream.frames or 0
            picks = set(uniform_indices(known, frames)) if known else None
            kept = []
            for i, frame in enumerate(container.decode(vstream)):
                if picks is None or i in picks:
                    kept.append(scale_shorter(frame.to_image(), side))
                if len(kept) > max_frames:
                    raise field_error(["video"], f"more than {max_frames} frames (FPAR_MAX_FRAMES)")
    except av.FFmpegError as e:
        raise field_error(["video"], f"not a decodable video ({e})") from None
    if not kept:
        raise field_error(["video"], "the video holds no frames")
    return np.stack([eval_view(kept[i], image_size) for i in uniform_indices(len(kept), frames)])


def flow_from_images(flow_x: list[tuple[str | None, bytes]], flow_y: list[tuple[str | None, bytes]],
                     stack: int, stacks: int, image_size: int) -> np.ndarray:
    if len(flow_x) != len(flow_y):
        raise field_error(["flow_y"], f"{len(flow_y)} images, but flow_x has {len(flow_x)}")
    side = scaled_side(image_size)
    xs = [scale_shorter(decode_image(d, "flow_x", i, n, "L"), side) for i, (n, d) in enumerate(flow_x)]
    ys = [scale_shorter(decode_image(d, "flow_y", i, n, "L"), side) for i, (n, d) in enumerate(flow_y)]
    return prepare_flow(xs, ys, stack, stacks, image_size)


class TooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body larger than {limit} bytes (FPAR_MAX_UPLOAD_MB)")


class BodyLimit:
    """Refuses bodies over the limit while they stream in: by Content-Length at once,
    otherwise as soon as the bytes received pass it, never after buffering them all."""

    def __init__(self, app: ASGIApp, limit_bytes: int):
        self.app, self.limit = app, limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared and declared.isdigit() and int(declared) > self.limit:
            return await problem_response(413, TooLarge(self.limit).detail, kind="too-large")(scope, receive, send)
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise TooLarge(self.limit)
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
