"""The whole stack as local processes: Redis (unless REDIS_URL points at one), the
Celery workers and the gateway. `make up` runs it in the foreground and the API tests
start it per session; both get restarts of processes that die, and a clean stop.

Every child dies with the process that started it (Linux's parent-death signal), so a
launcher killed outright (SIGKILL, a supervisor's timeout) leaves nothing running; a
stop sends SIGTERM to all at once and SIGKILL to whatever outlives one deadline."""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from fpar_models.processes import die_with_parent, free_port

log = logging.getLogger("fpar.stack")
ROOT = Path(__file__).resolve().parent.parent


STOP_DEADLINE_S = 15.0  # a stop's grace period for all children together


@dataclass
class Worker:
    name: str
    queues: str  # "train", "predict", "ingest", or several: "train,ingest"
    env: dict[str, str] = field(default_factory=dict)  # its own settings (another host's FPAR_MODEL_DIR, say)


@dataclass
class Stack:
    data_dir: Path
    model_dir: Path
    port: int = 8000
    redis_url: str | None = None           # None: start a private redis-server
    run_dir: Path = field(default_factory=lambda: ROOT / ".run")
    workers: list[Worker] = field(default_factory=lambda: [Worker("train", "train,ingest"),
                                                           Worker("predict", "predict")])
    env: dict[str, str] = field(default_factory=dict)
    log_dir: Path | None = None            # None: children write to this terminal
    embedded_redis: bool = False
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    extra: dict[str, list[str]] = field(default_factory=dict)  # more processes to keep alive
    restarts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def on_synthetic_data(cls, root: Path, *, videos_per_class: int = 3, **kw) -> Stack:
        """A throwaway stack under root, with the synthetic dataset as `synthetic`."""
        from fpar_models.data import synthetic

        synthetic.generate(root / "data" / "synthetic", videos_per_class=videos_per_class)
        return cls(root / "data", root / "models", port=free_port(), run_dir=root / "run",
                   log_dir=root / "logs", **kw)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def child_env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1",
               "FPAR_DATA_DIR": str(self.data_dir), "FPAR_MODEL_DIR": str(self.model_dir),
               "FPAR_PORT": str(self.port), "REDIS_URL": self.redis_url or "", **self.env}
        return env

    # -- processes --------------------------------------------------------------------------
    def _spawn(self, name: str, argv: list[str]) -> None:
        out = None
        if self.log_dir:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{name}.log", "ab")
        # own session: Ctrl-C goes to the launcher, which stops the children; and each child
        # is killed by the kernel if the launcher dies without stopping it
        self.procs[name] = subprocess.Popen(argv, env=self.child_env(), cwd=ROOT, stdout=out,
                                            stderr=subprocess.STDOUT if out else None,
                                            start_new_session=True, preexec_fn=die_with_parent)

    def _redis_argv(self) -> list[str]:
        server = shutil.which("redis-server")
        if server is None:
            raise SystemExit("no redis-server on PATH: install Redis, or set REDIS_URL to a running one")
        folder = self.run_dir / "redis"
        folder.mkdir(parents=True, exist_ok=True)
        port = int(self.redis_url.rsplit(":", 1)[1].split("/")[0])
        return [server, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec", "--protected-mode", "yes",
                "--pidfile", str(self.redis_pidfile)]

    @property
    def redis_pidfile(self) -> Path:
        return self.run_dir / "redis" / "redis.pid"

    def _refuse_a_held_redis_dir(self) -> None:
        """Two Redis servers on one AOF would share (and corrupt) each other's jobs."""
        try:
            pid = int(self.redis_pidfile.read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return  # no pidfile, or its process is gone
        if b"redis-server" in cmdline:
            raise SystemExit(f"{self.run_dir / 'redis'} is in use by a running redis-server (pid {pid}), "
                             "probably another stack's: stop that stack (or that process) first")

    def _worker_argv(self, w: Worker) -> list[str]:
        own = ["env", *(f"{k}={v}" for k, v in w.env.items())] if w.env else []  # (env execs: same pid)
        return [*own, sys.executable, "-m", "celery", "-A", "worker.app", "worker", "--pool", "solo",
                "--queues", w.queues, "--hostname", f"{w.name}@%h", "--loglevel", "INFO",
                "--without-gossip", "--without-mingle"]

    def _gateway_argv(self) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "service.main:create_app", "--factory", "--host", "0.0.0.0",
                "--port", str(self.port), "--log-level", "warning", "--timeout-graceful-shutdown", "5"]

    def specs(self) -> dict[str, list[str]]:
        specs = {}
        if self.embedded_redis:
            specs["redis"] = self._redis_argv()
        for w in self.workers:
            specs[f"worker-{w.name}"] = self._worker_argv(w)
        specs["gateway"] = self._gateway_argv()
        return {**specs, **self.extra}

    def start(self, timeout_s: float = 60) -> Stack:
        self.embedded_redis = not self.redis_url
        if self.embedded_redis:
            self._refuse_a_held_redis_dir()
            self.redis_url = f"redis://127.0.0.1:{free_port()}/0"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.model_dir.mkdir(parents=True, exist_ok=True)
        for name, argv in self.specs().items():
            self._spawn(name, argv)
            if name == "redis":
                self._wait_redis(timeout_s)
        self.wait_ready(timeout_s)
        return self

    def _wait_redis(self, timeout_s: float) -> None:
        import redis

        client = redis.Redis.from_url(self.redis_url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.1)
        raise RuntimeError(f"redis did not start on {self.redis_url}")

    def wait_ready(self, timeout_s: float = 60) -> None:
        """Until GET /readyz says Redis is up and every worker has sent a heartbeat."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                r = httpx.get(f"{self.url}/readyz", timeout=2)
                if r.status_code == 200 and len(r.json()["workers"]) >= len(self.workers):
                    return
            except httpx.HTTPError:
                pass
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    raise RuntimeError(f"{name} exited with {proc.returncode} while starting")
            time.sleep(0.2)
        raise RuntimeError(f"the stack was not ready within {timeout_s} s")

    def supervise_once(self) -> None:
        """Restart whatever died (compose's `restart: unless-stopped`, locally)."""
        specs = self.specs()
        for name, proc in list(self.procs.items()):
            if proc.poll() is not None:
                self.restarts[name] = self.restarts.get(name, 0) + 1
                log.warning("%s exited with %s; restarting (#%d)", name, proc.returncode, self.restarts[name])
                self._spawn(name, specs[name])

    def supervise_in_background(self, every_s: float = 0.5) -> threading.Event:
        """For tests: supervise from a thread until the returned event is set."""
        stop = threading.Event()

        def loop():
            while not stop.wait(every_s):
                self.supervise_once()
        threading.Thread(target=loop, name="supervisor", daemon=True).start()
        return stop

    def add_gateway(self, name: str, port: int, env: dict[str, str]) -> str:
        """Another gateway on the same Redis, with its own settings (it keeps no state)."""
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), *self._gateway_argv()]
        argv[argv.index("--port") + 1] = str(port)
        self.extra[name] = argv
        self._spawn(name, argv)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    return f"http://127.0.0.1:{port}"
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"gateway {name} did not start")

    def add_worker(self, worker: Worker, timeout_s: float = 60) -> str:
        """Another worker process on the same Redis (kept alive by the supervisor); returns
        its process name. Waits until its heartbeat shows in /readyz."""
        name = f"worker-{worker.name}"
        self.extra[name] = self._worker_argv(worker)
        self._spawn(name, self.extra[name])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                workers = httpx.get(f"{self.url}/readyz", timeout=2).json().get("workers", [])
                if any(w["name"].startswith(f"{worker.name}@") for w in workers):
                    return name
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"worker {worker.name} did not report within {timeout_s} s")

    def remove(self, name: str, sig: int = signal.SIGTERM) -> None:
        """Stop a process for good (the supervisor will not bring it back); SIGKILL for a crash."""
        self.extra.pop(name, None)
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, sig)
            proc.wait(timeout=20)

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        os.killpg(self.procs[name].pid, sig)
        self.procs[name].wait(timeout=30)

    def stop(self, deadline_s: float = STOP_DEADLINE_S) -> None:
        """SIGTERM to the gateway and the workers at once, SIGKILL to any still running at
        the deadline; Redis last (it writes its AOF on SIGTERM), with the same treatment."""
        redis_proc = {n: p for n, p in self.procs.items() if n == "redis"}
        self._terminate({n: p for n, p in self.procs.items() if n != "redis"}, deadline_s)
        self._terminate(redis_proc, deadline_s)
        self.procs.clear()

    @staticmethod
    def _terminate(procs: dict[str, subprocess.Popen], deadline_s: float) -> None:
        def signal_group(proc: subprocess.Popen, sig: int) -> None:
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                pass

        for proc in procs.values():
            if proc.poll() is None:
                signal_group(proc, signal.SIGTERM)
        end = time.monotonic() + deadline_s
        for name, proc in procs.items():
            try:
                proc.wait(timeout=max(0.0, end - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s: killing it", name, deadline_s)
                signal_group(proc, signal.SIGKILL)
                proc.wait()
