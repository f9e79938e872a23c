"""The whole-body multipart reader (service.forms) reads what Starlette's parser reads, and
hands every body it does not expect to Starlette's parser."""
import asyncio
import io

import httpx
import pytest
from starlette.datastructures import UploadFile
from starlette.requests import Request

from service.forms import WholeFormRequest, split_form
from service.routes.predict import router

LIMITS = {"max_files": 1000, "max_fields": 1000, "max_part_size": 1 << 20}
FILES = [("frames", ("0001.png", b"\x89PNG\r\n--not a boundary\r\n\r\n" * 3, "image/png")),
         ("frames", ("0002.jpg", b"", "image/jpeg")),
         ("video", ("clip name.mp4", bytes(range(256)) * 40, "video/mp4"))]
FIELDS = {"model": "rgb-ö", "wait": "2.5", "top_k": ""}


def encoded(files=FILES, data=FIELDS) -> tuple[bytes, str]:
    request = httpx.Request("POST", "http://x/predict", files=files, data=data)
    return request.read(), request.headers["content-type"]


def request(cls, body: bytes, content_type: str) -> Request:
    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}
    headers = [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]
    return cls({"type": "http", "method": "POST", "headers": headers}, receive)


def form_of(req: Request):
    async def read():
        return await req.form()
    return asyncio.run(read())


async def items(form) -> list[tuple]:
    return [(name, (value.filename, value.content_type, await value.read()) if isinstance(value, UploadFile)
             else value) for name, value in form.multi_items()]


def test_a_form_reads_as_starlettes_parser_reads_it():
    body, content_type = encoded()
    ours = split_form(body, content_type, **LIMITS)
    theirs = form_of(request(Request, body, content_type))
    assert ours is not None
    assert asyncio.run(items(ours)) == asyncio.run(items(theirs))
    assert asyncio.run(items(ours))[:2] == [("model", "rgb-ö"), ("wait", "2.5")]
    assert isinstance(ours.getlist("frames")[0].file, io.BytesIO)  # in memory, no spooled file


@pytest.mark.parametrize("change", ["preamble", "no closing delimiter", "extended filename", "escaped quote",
                                    "another parameter",
                                    "too many files", "field too large", "not multipart"])
def test_what_it_does_not_expect_is_left_to_starlette(change):
    body, content_type = encoded()
    limits = dict(LIMITS)
    if change == "preamble":
        body = b"a preamble\r\n" + body
    elif change == "no closing delimiter":
        body = body[:body.rindex(b"--\r\n")]
    elif change == "extended filename":
        body = body.replace(b'filename="0001.png"', b"filename*=UTF-8''0001.png", 1)
    elif change == "another parameter":
        body = body.replace(b'filename="0001.png"', b'filename="0001.png"; size="60"', 1)
    elif change == "escaped quote":
        body = body.replace(b'name="model"', b'name="mo\\"del"', 1)
    elif change == "too many files":
        limits["max_files"] = 2
    elif change == "field too large":
        limits["max_part_size"] = 3
    else:
        content_type = "application/x-www-form-urlencoded"
    assert split_form(body, content_type, **limits) is None


def test_the_request_reads_plain_forms_itself_and_hands_on_the_rest():
    body, content_type = encoded()
    form = form_of(request(WholeFormRequest, body, content_type))
    assert isinstance(form.getlist("frames")[0].file, io.BytesIO)
    odd = body.replace(b'filename="0001.png"', b'filename="0001.png"; size="60"', 1)  # a parameter more
    form = form_of(request(WholeFormRequest, odd, content_type))
    assert not isinstance(form.getlist("frames")[0].file, io.BytesIO)  # Starlette's parser: its spooled files
    assert asyncio.run(items(form)) == asyncio.run(items(split_form(body, content_type, **LIMITS)))


def test_predict_reads_its_form_whole():
    assert [type(route).__name__ for route in router.routes] == ["WholeFormRoute"]
