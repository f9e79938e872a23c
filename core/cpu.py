"""CPU seconds spent in named stages of this process, so a benchmark can say where a
served clip's CPU goes, in CPU-ms per clip, whatever else the machine is doing (shares of
wall-clock time move with the load; CPU counters do not).

A stage counts the CPU of the thread it runs on (`time.thread_time`: the gateway's threads
serve requests side by side), or of the whole process (`whole_process`: a runtime's own
threads run the model while the calling thread waits for them). The totals are read by
`GET /metrics` (the gateway's) and the heartbeats in `GET /readyz` (each worker's)."""
from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager


class CpuMeter:
    def __init__(self) -> None:
        self._totals: dict[str, float] = {}
        self._lock = threading.Lock()

    @contextmanager
    def stage(self, name: str, *, whole_process: bool = False) -> Iterator[None]:
        clock = time.process_time if whole_process else time.thread_time
        start = clock()
        try:
            yield
        finally:
            self.add(name, clock() - start)

    def add(self, name: str, seconds: float) -> None:
        with self._lock:
            self._totals[name] = self._totals.get(name, 0.0) + seconds

    def totals(self) -> dict[str, float]:
        """Each stage's seconds so far, and the whole process's as `process`."""
        with self._lock:
            return {"process": time.process_time(), **self._totals}


meter = CpuMeter()  # one per process: the gateway's or a worker's
