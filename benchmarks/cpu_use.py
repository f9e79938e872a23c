"""Where a served clip's CPU goes: each process's own CPU counters read before and after a
run, divided by the clips it served, so the figures are CPU-ms per clip and do not move
with how loaded the machine is.

    gateway   GET /metrics: fpar_gateway_cpu_seconds by stage (`process`: all of it)
    workers   GET /readyz: each predict worker's heartbeat carries its CPU by stage
    redis     INFO cpu (when the benchmark can reach Redis)
    load      this process: the load generator's requests compete with the service on a small machine
    machine   /proc/stat, when the stack runs here: what no counter above accounts for shows as `other`
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis
from prometheus_client.parser import text_string_to_metric_families

# the stages' names as printed, in the order of a clip's path
GATEWAY = {"decode": "gateway: decode frames", "submit": "gateway: store inputs, queue",
           "answer": "gateway: wait, read the answer"}
WORKER = {"claim": "worker: claim, gather a batch", "fetch": "worker: read inputs", "finish": "worker: write answers"}


@dataclass
class Reading:
    load: float
    gateway: dict[str, float]
    workers: dict[str, dict[str, float]]
    redis: float | None
    machine: float | None


@dataclass
class CpuUse:
    """Counters of a stack at `url`; `redis_url` and `local` add what only a neighbour can read."""
    url: str
    redis_url: str | None = None
    local: bool = False
    client: httpx.Client = field(init=False)

    def __post_init__(self):
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def read(self) -> Reading:
        """Every counter now; the workers' as of their next heartbeat (they beat every 5 s),
        so call it while the stack is idle."""
        workers = self._workers(time.time())
        return Reading(time.process_time(), self._gateway(), workers, self._redis(), self._machine())

    def _gateway(self) -> dict[str, float]:
        return {sample.labels["stage"]: sample.value
                for family in text_string_to_metric_families(self.client.get("/metrics").text)
                for sample in family.samples if sample.name == "fpar_gateway_cpu_seconds_total"}

    def _workers(self, after: float) -> dict[str, dict[str, float]]:
        deadline = time.monotonic() + 15
        while True:
            live = [w for w in self.client.get("/readyz").json()["workers"] if "predict" in w["queues"]]
            if all(w["seen"] > after for w in live) or time.monotonic() > deadline:
                return {w["name"]: w.get("cpu", {}) for w in live}
            time.sleep(0.5)

    def _redis(self) -> float | None:
        if not self.redis_url:
            return None
        info = redis.Redis.from_url(self.redis_url).info("cpu")
        return sum(info[k] for k in ("used_cpu_user", "used_cpu_sys", "used_cpu_user_children",
                                     "used_cpu_sys_children"))

    def _machine(self) -> float | None:
        if not self.local:
            return None
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        busy = sum(fields[:3]) + sum(fields[5:8])  # user nice system, irq softirq steal
        return busy / os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_clip(before: Reading, after: Reading, clips: int) -> dict[str, float]:
    """CPU-ms per clip of each part; `outside the model` is the service's own share."""
    ms = 1000 / clips
    rows: dict[str, float] = {"load generator (this process)": (after.load - before.load) * ms}
    g0, g1 = before.gateway, after.gateway
    staged = 0.0
    for stage, name in GATEWAY.items():
        rows[name] = (g1.get(stage, 0) - g0.get(stage, 0)) * ms
        staged += rows[name]
    rows["gateway: HTTP, multipart, framework"] = (g1["process"] - g0["process"]) * ms - staged
    rows["redis"] = (after.redis - before.redis) * ms if after.redis is not None else float("nan")
    model = worker_rest = 0.0
    for name, w1 in after.workers.items():
        w0 = before.workers.get(name, {})
        spent = {k: w1.get(k, 0) - w0.get(k, 0) for k in w1}
        for stage, label in WORKER.items():
            rows[label] = rows.get(label, 0) + spent.get(stage, 0) * ms
        model += (spent.get("model", 0) + spent.get("model elsewhere", 0)) * ms  # an isolated runtime's child
        worker_rest += (spent.get("process", 0) - sum(spent.get(s, 0) for s in (*WORKER, "model"))) * ms
    rows["worker: Celery, heartbeats, the rest"] = worker_rest
    rows["worker: the model"] = model
    rows["total"] = sum(v for v in rows.values() if v == v)
    if after.machine is not None:
        rows["other processes (machine - total)"] = (after.machine - before.machine) * ms - rows["total"]
    rows["service outside the model"] = rows["total"] - model - rows["load generator (this process)"]
    return rows


def table(columns: dict[str, dict[str, float]]) -> str:
    """Rows of CPU-ms per clip, one column per run."""
    names = list(next(iter(columns.values())))
    head = f"{'CPU-ms per clip':<42}" + "".join(f"{c:>12}" for c in columns)
    lines = [head, "-" * len(head)]
    for name in names:
        lines.append(f"{name:<42}" + "".join(f"{col.get(name, float('nan')):12.1f}" for col in columns.values()))
    return "\n".join(lines)
