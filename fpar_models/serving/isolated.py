"""An OpenVINO graph run in a child process of its own, for the opt-in reduced-precision
graphs: after an int8 graph had run in a process, that process once crashed (SIGSEGV in
CPython, much later, at an unrelated subprocess start; see docs/reliability.md). Whatever
the int8 kernels do to their process, it is not the predict worker's.

The child is spawned (no fork of a process holding torch and threads), imports OpenVINO
only, and answers one batch at a time over a pipe; a child that died is started again on
the next batch. Torch-free.
"""
from __future__ import annotations

import multiprocessing
import threading
import time
from pathlib import Path

import numpy as np


def compile_graph(graph: Path, threads: int, hint: str = "f32"):
    """OpenVINO's compiled model of `graph` on the CPU, computing in `hint` precision."""
    import openvino as ov

    core = ov.Core()
    core.set_property({"CACHE_DIR": str(graph.parent / "openvino-cache")})
    # f32 unless asked: OpenVINO's default on CPUs with bf16 units is bf16, which moved
    # probabilities by up to 0.2 and changed top-1 classes (issue 11's measurement).
    # An int8 graph runs its quantised operations in int8 under either hint.
    return core.compile_model(str(graph), "CPU", {"INFERENCE_PRECISION_HINT": hint, "INFERENCE_NUM_THREADS": threads})


def infer(compiled, request, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    result = request.infer(inputs)
    return [np.array(result[output]) for output in compiled.outputs]  # copies: the request reuses its buffers


def _serve(conn, graph: str, threads: int, hint: str) -> None:
    try:
        compiled = compile_graph(Path(graph), threads, hint)
        request = compiled.create_infer_request()
    except Exception as e:
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    conn.send(("ready", None))
    while True:
        try:
            inputs = conn.recv()
        except (EOFError, OSError):
            return  # the worker went away
        start = time.process_time()
        try:
            outputs = infer(compiled, request, inputs)
        except Exception as e:
            conn.send(("error", f"{type(e).__name__}: {e}"))
        else:
            conn.send(("ok", (outputs, time.process_time() - start)))


class IsolatedEngine:
    name = "openvino"

    def __init__(self, graph: Path, threads: int, hint: str = "f32"):
        self.args = (str(graph), threads, hint)
        self.lock = threading.Lock()
        self.process = None
        self.child_cpu_s = 0.0  # the child's CPU on the batches it ran (not in the worker's own counters)
        self._start()

    def _start(self) -> None:
        context = multiprocessing.get_context("spawn")
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child, *self.args), daemon=True,
                                       name="fpar-openvino-isolated")
        self.process.start()
        child.close()
        status, error = self._receive()
        if status != "ready":
            raise RuntimeError(f"the isolated OpenVINO process could not compile the graph: {error}")

    def _receive(self):
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.process.join(5)
            raise RuntimeError(f"the isolated OpenVINO process died (exit code {self.process.exitcode})") from None

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            if not self.process.is_alive():
                self._start()
            self.conn.send(inputs)
            status, out = self._receive()
        if status != "ok":
            raise RuntimeError(f"OpenVINO failed: {out}")
        outputs, cpu_s = out
        self.child_cpu_s += cpu_s
        return outputs

    def close(self) -> None:
        if self.process is not None and self.process.is_alive():
            self.conn.close()
            self.process.join(5)
            if self.process.is_alive():
                self.process.kill()

    def __del__(self):
        self.close()
