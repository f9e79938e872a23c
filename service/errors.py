"""Every error the API returns, as application/problem+json (RFC 9457), from one place.

A client can always rely on `type`, `title`, `status` and `detail`; validation errors
add `errors`: a list of {"loc": [...], "msg": ...} naming each field at fault.
"""
from __future__ import annotations

import logging
from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from kombu.exceptions import OperationalError
from pydantic import ValidationError
from starlette.exceptions import HTTPException

log = logging.getLogger("fpar.gateway")
PROBLEM = "application/problem+json"
TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found",
          405: "Method Not Allowed", 409: "Conflict", 413: "Content Too Large",
          415: "Unsupported Media Type", 422: "Unprocessable Content", 429: "Too Many Requests",
          500: "Internal Server Error", 503: "Service Unavailable"}


# The `type` of a status when the raiser names no finer kind: one type per kind of error,
# whichever code path (a route, a middleware, FastAPI's own) produces it.
DEFAULT_KINDS = {400: "bad-request", 401: "unauthorized", 403: "forbidden", 404: "not-found",
                 405: "method-not-allowed", 409: "wrong-state", 413: "too-large", 415: "unsupported-media-type",
                 422: "invalid-field", 429: "queue-full", 500: "internal", 503: "unavailable"}


def default_kind(status: int) -> str:
    return DEFAULT_KINDS.get(status, "error")


class Problem(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(self, status: int, detail: str, *, kind: str | None = None,
                 errors: list[dict[str, Any]] | None = None, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.status, self.detail, self.errors, self.headers = status, detail, errors, headers
        self.kind = kind or default_kind(status)


def field_error(loc: list[str | int] | tuple, msg: str, status: int = 422) -> Problem:
    where = ".".join(str(p) for p in loc)
    return Problem(status, f"{where}: {msg}", kind="invalid-field", errors=[{"loc": list(loc), "msg": msg}])


def problem_response(status: int, detail: str, *, kind: str, errors=None, headers=None,
                     request: Request | None = None) -> JSONResponse:
    body: dict[str, Any] = {"type": f"https://fpar.dev/problems/{kind}", "title": TITLES.get(status, "Error"),
                            "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    if request is not None and request.url.path.startswith("/v2"):
        body["error"] = detail  # the Open Inference Protocol's error member, which its clients read
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _clean(errors: list[dict[str, Any]], drop_body: bool) -> list[dict[str, Any]]:
    out = []
    for e in errors:
        loc = list(e.get("loc", ()))
        if drop_body and loc[:1] == ["body"]:
            loc = loc[1:]
        out.append({"loc": loc, "msg": e.get("msg", "invalid"), "type": e.get("type", "value_error")})
    return out


def validation_problem(errors: list[dict[str, Any]], drop_body: bool = False,
                       request: Request | None = None) -> JSONResponse:
    cleaned = _clean(errors, drop_body)
    detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in cleaned[:5])
    return problem_response(422, detail, kind="invalid-field", errors=cleaned, request=request)


def install(app: FastAPI) -> None:
    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem):
        return problem_response(exc.status, exc.detail, kind=exc.kind, errors=exc.errors, headers=exc.headers,
                                request=request)

    @app.exception_handler(RequestValidationError)
    async def _request_invalid(request: Request, exc: RequestValidationError):
        return validation_problem(list(exc.errors()), request=request)

    @app.exception_handler(ValidationError)
    async def _config_invalid(request: Request, exc: ValidationError):
        return validation_problem(exc.errors(include_url=False, include_input=False), request=request)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException):
        return problem_response(exc.status_code, str(exc.detail), kind=default_kind(exc.status_code),
                                headers=getattr(exc, "headers", None), request=request)

    @app.exception_handler(redis.RedisError)
    @app.exception_handler(OperationalError)
    async def _unavailable(request: Request, exc: Exception):
        log.warning("backend unavailable: %s", exc)
        return problem_response(503, "the job store (Redis) is unavailable; retry shortly",
                                kind="unavailable", headers={"Retry-After": "5"}, request=request)

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return problem_response(500, "internal error; it has been logged", kind="internal", request=request)
