"""multipart/form-data read whole, for the routes that take many small files per request
(`/predict`'s frames): the body is split on its boundary in a few C-speed passes, where
Starlette's parser runs python-multipart's callbacks and opens a spooled temporary file
per part (~0.5 ms of the gateway's CPU for 16 frames, as much as the rest of the route).

Only plain bodies take this path: under IN_MEMORY bytes (the upload limit is checked first,
uploads.BodyLimit), no preamble, every part a plain `form-data` one within Starlette's
limits. Anything else goes to Starlette's parser, which answers a malformed body as always.
A custom route class is FastAPI's way to hand an endpoint another Request."""
from __future__ import annotations

import io
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.datastructures import FormData, Headers, UploadFile
from starlette.requests import AwaitableOrContextManager, AwaitableOrContextManagerWrapper

IN_MEMORY = 32 << 20  # larger bodies stream through Starlette's parser, its big parts spooled to disk
_BOUNDARY = re.compile(r'multipart/form-data;\s*boundary=("?)([0-9A-Za-z\'()+_,./:=?-]{1,70})\1\s*$', re.I)
_DISPOSITION = re.compile(r'form-data; name="([^"\\]*)"(?:; filename="([^"\\]*)")?\s*$', re.I)


def split_form(body: bytes, content_type: str, *, max_files: float, max_fields: float,
               max_part_size: int) -> FormData | None:
    """The form in `body`, or None when it is not a plain one (Starlette's parser then reads it)."""
    boundary = _BOUNDARY.match(content_type)
    if boundary is None:
        return None
    delimiter = b"\r\n--" + boundary.group(2).encode()
    chunks = (b"\r\n" + body).split(delimiter)
    if len(chunks) < 3 or chunks[0] or not chunks[-1].startswith(b"--"):
        return None  # a preamble, no parts, or no closing delimiter
    items: list[tuple[str, str | UploadFile]] = []
    files = fields = 0
    for chunk in chunks[1:-1]:
        head, sep, data = chunk.partition(b"\r\n\r\n")
        if not sep or not head.startswith(b"\r\n"):
            return None
        lines = head[2:].split(b"\r\n")
        if not all(b":" in line for line in lines):
            return None
        headers = Headers(raw=[(k.strip().lower(), v.strip()) for k, v in (line.split(b":", 1) for line in lines)])
        disposition = _DISPOSITION.match(headers.get("content-disposition", ""))
        if disposition is None:
            return None
        name, filename = disposition.groups()
        if filename is None:
            fields += 1
            if fields > max_fields or len(data) > max_part_size:
                return None
            try:
                items.append((name, data.decode()))
            except UnicodeDecodeError:
                return None
        else:
            files += 1
            if files > max_files:
                return None
            items.append((name, UploadFile(io.BytesIO(data), size=len(data), filename=filename, headers=headers)))
    return FormData(items)


class WholeFormRequest(Request):
    def form(self, *, max_files: int | float = 1000, max_fields: int | float = 1000,
             max_part_size: int = 1024 * 1024) -> AwaitableOrContextManager[FormData]:
        return AwaitableOrContextManagerWrapper(self._whole_form(max_files, max_fields, max_part_size))

    async def _whole_form(self, max_files: float, max_fields: float, max_part_size: int) -> FormData:
        length = self.headers.get("content-length", "")
        if length.isdigit() and int(length) <= IN_MEMORY:
            form = split_form(await self.body(), self.headers.get("content-type", ""), max_files=max_files,
                              max_fields=max_fields, max_part_size=max_part_size)
            if form is not None:
                return form
        return await super().form(max_files=max_files, max_fields=max_fields, max_part_size=max_part_size)


class WholeFormRoute(APIRoute):
    """Routes whose forms are read by `split_form` when they can be."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            return await handler(WholeFormRequest(request.scope, request.receive))
        return route
