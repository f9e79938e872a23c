"""Prometheus metrics: request counts and latencies by route, and at scrape time the
queue depths, jobs by kind and state, and live workers, read from Redis."""
from __future__ import annotations

import time

import redis
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from starlette.types import ASGIApp, Receive, Scope, Send

from core.cpu import meter
from core.store import Stores
from core.tasks import QUEUES


class StoreCollector:
    def __init__(self, stores: Stores):
        self.stores = stores

    def collect(self):
        depth = GaugeMetricFamily("fpar_queue_depth", "work waiting in each queue (Celery's list; on `predict` "
                                  "the predictions' stream too)", labels=["queue"])
        jobs = GaugeMetricFamily("fpar_jobs", "jobs by kind and state", labels=["kind", "status"])
        workers = GaugeMetricFamily("fpar_workers_alive", "workers that sent a heartbeat recently")
        serving = GaugeMetricFamily("fpar_model_inference", "1 per model a predict worker has loaded, labelled "
                                    "with the runtime serving it", labels=["worker", "model", "backend", "verified"])
        try:
            for queue in QUEUES:
                streamed = self.stores.predictions.depth() if queue == "predict" else 0
                depth.add_metric([queue], self.stores.client.llen(queue) + streamed)
            for (kind, status), n in self.stores.jobs.counts().items():
                jobs.add_metric([kind, status], n)
            alive = self.stores.workers.live()
            workers.add_metric([], len(alive))
            for worker in alive:
                for model_id, choice in worker.models.items():
                    labels = [worker.name, model_id, choice["backend"], str(choice["verified"]).lower()]
                    serving.add_metric(labels, 1)
        except redis.RedisError:
            return  # Redis down: the request metrics still get scraped
        yield from (depth, jobs, workers, serving)


class CpuCollector:
    """The gateway's CPU seconds by stage (core.cpu): what bench_predict divides per clip."""

    def collect(self):
        family = CounterMetricFamily("fpar_gateway_cpu_seconds", "gateway CPU by stage; `process` is all of it",
                                     labels=["stage"])
        for stage, seconds in meter.totals().items():
            family.add_metric([stage], seconds)
        yield family


class Metrics:
    def __init__(self, stores: Stores):
        self.registry = CollectorRegistry()
        self.requests = Counter("fpar_http_requests_total", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("fpar_http_request_duration_seconds", "HTTP request latency",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60))
        self.registry.register(StoreCollector(stores))
        self.registry.register(CpuCollector())


class MetricsMiddleware:
    """Counts and times every request, labelled by route template (not raw path)."""

    def __init__(self, app: ASGIApp, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = {"code": 500}

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", "unmatched")
            self.metrics.requests.labels(scope["method"], label, str(status["code"])).inc()
            self.metrics.latency.labels(scope["method"], label).observe(time.perf_counter() - start)
