"""The gateway: validates, stores the job, queues a task by name, answers at once.
It runs no model and keeps no job state in memory.

    uvicorn service.main:app --port 8000
"""
from __future__ import annotations

import logging
from pathlib import Path

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from core.settings import Settings, get_settings
from core.store import Stores
from core.store.records import TERMINAL, JobStatus
from core.tasks import TaskQueue
from fpar_models.config import TrainConfig
from fpar_models.ingest.options import IngestRequest
from fpar_models.timeline.options import TimelineRequest
from service import errors
from service.deps import require_api_key
from service.metrics import Metrics, MetricsMiddleware
from service.routes import datasets, experiments, health, jobs, models, oip, pictures, predict, timelines, train
from service.uploads import BodyLimit

STATIC = Path(__file__).parent / "static"
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="fpar-serve", version="0.1.0", docs_url=None, openapi_url=None,
                  description="Train and serve First Person Action Recognition models (Ego-RNN family).")
    app.state.settings = settings
    app.state.stores = Stores.connect(settings.redis_url, predict_ttl_s=settings.predict_ttl_s,
                                      socket_timeout_s=settings.max_wait_s + 30)
    app.state.queue = TaskQueue(settings.redis_url)
    app.state.model_store = settings.open_model_store()
    app.state.metrics = Metrics(app.state.stores)
    errors.install(app)
    app.include_router(health.router)
    app.include_router(oip.public)
    app.include_router(public_router(app))
    app.mount("/static/docs", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    secured = [Depends(require_api_key)]
    for router in (train.router, predict.router, jobs.router, experiments.router, models.router, pictures.router,
                   datasets.router, timelines.router, oip.router, health.secured):
        app.include_router(router, dependencies=secured)
    app.add_middleware(BodyLimit, limit_bytes=settings.max_upload_bytes,
                       larger={"/datasets": (settings.max_archive_bytes, "FPAR_MAX_ARCHIVE_MB"),
                               "/timelines": (settings.max_video_bytes, "FPAR_MAX_VIDEO_MB")})
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.openapi = lambda: _openapi(app)
    return app


# Pages the gateway serves load nothing from elsewhere; this also stops ReDoc's bundle
# from fetching its "powered by" logo from a CDN.
SAME_ORIGIN = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; "
               "style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; worker-src 'self' blob:; "
               "media-src 'self' blob:"}  # blob: a timeline's video picked from the user's disk


def public_router(app: FastAPI) -> APIRouter:
    """What a browser opens without a key: the dashboard (it sends the key the user types
    with each API call) and the API documentation, served from files installed with the
    package (fastapi-offline's Swagger UI and ReDoc builds): nothing comes from a CDN."""
    router = APIRouter(include_in_schema=False)

    def page(response):
        response.headers.update(SAME_ORIGIN)
        return response

    router.add_api_route("/", lambda: page(FileResponse(STATIC / "index.html")))
    router.add_api_route("/openapi.json", lambda: JSONResponse(app.openapi()))
    router.add_api_route("/docs", lambda: page(get_swagger_ui_html(
        openapi_url="/openapi.json", title=f"{app.title} API", swagger_js_url="/static/docs/swagger-ui-bundle.js",
        swagger_css_url="/static/docs/swagger-ui.css", swagger_favicon_url="/static/docs/favicon.png")))
    router.add_api_route("/redoc", lambda: page(get_redoc_html(
        openapi_url="/openapi.json", title=f"{app.title} API", redoc_js_url="/static/docs/redoc.standalone.js",
        redoc_favicon_url="/static/docs/favicon.png", with_google_fonts=False)))
    return router


PROBLEM_SCHEMA = {
    "type": "object", "title": "Problem", "required": ["type", "title", "status", "detail"],
    "description": "RFC 9457 problem details; validation errors list each field at fault in `errors`",
    "properties": {
        "type": {"type": "string"}, "title": {"type": "string"}, "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object", "required": ["loc", "msg"], "properties": {
            "loc": {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]}},
            "msg": {"type": "string"}, "type": {"type": "string"}}}},
    },
}


def problem_statuses(path: str, method: str, operation: dict) -> set[int]:
    """The error statuses an operation can answer (all as problem+json)."""
    if path in ("/healthz", "/v2/health/live"):
        return set()
    if path in ("/readyz", "/v2/health/ready"):
        return {503}
    codes = {401, 403, 503}  # API keys when configured; Redis unavailable
    if operation.get("parameters") or operation.get("requestBody"):
        codes.add(422)
    if "{" in path:
        codes.add(404)
    if method in ("post", "patch"):
        codes |= {413, 422}
    if path in ("/train", "/predict", "/experiments", "/datasets", "/timelines") and method == "post":
        codes |= {404, 429}
    if path == "/datasets" and method == "post":
        codes.add(409)  # the name is taken
    if path == "/v2/models/{model_id}/infer":
        codes |= {400, 429}
    if path.endswith("/cancel") or path.endswith("plot.png") or method == "delete":
        codes.add(409)
    if path.startswith("/models/{model_id}/"):
        codes.add(500)  # the worker computing the picture or artefact failed (a bug, reported as such)
    return codes


def _openapi(app: FastAPI) -> dict:
    """The train body is a preset plus overrides of TrainConfig: document it as TrainConfig.
    Every error is declared as what it is: problem+json, with the statuses each can answer."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        body = TrainConfig.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(body.pop("$defs", {}))
        components["TrainRequest"] = body
        # POST /datasets and /timelines read their bodies themselves (JSON or multipart)
        components["IngestRequest"] = IngestRequest.model_json_schema()
        components["TimelineRequest"] = TimelineRequest.model_json_schema()
        components["Problem"] = PROBLEM_SCHEMA
        # the states a job never leaves, for clients (the dashboard) that take them from here
        components["JobStatus"]["x-terminal"] = [s.value for s in JobStatus if s in TERMINAL]
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        for path, operations in schema["paths"].items():
            for method, operation in operations.items():
                responses = operation.setdefault("responses", {})
                responses.pop("422", None)
                for status in sorted(problem_statuses(path, method, operation)):
                    responses[str(status)] = {"description": errors.TITLES.get(status, "Error"), "content": problem}
        app.openapi_schema = schema
    return app.openapi_schema


app = create_app()
