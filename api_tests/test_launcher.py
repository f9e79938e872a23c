"""`make up`'s launcher: killed outright it leaves no process of its stack behind, and a
second stack refuses the Redis folder a live server holds."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from launcher import free_port
from launcher.stack import ROOT


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        return "zombie" not in Path(f"/proc/{pid}/status").read_text().lower().split("state:")[1].split("\n")[0]
    except (OSError, IndexError):
        return False


def _launch(tmp_path: Path, port: int, command: list[str] | None = None) -> subprocess.Popen:
    """`make up` (or the command given) on a run folder and port of its own."""
    env = {**os.environ, "FPAR_PORT": str(port), "FPAR_DATA_DIR": str(tmp_path / "data"),
           "FPAR_MODEL_DIR": str(tmp_path / "models"), "FPAR_RUN_DIR": str(tmp_path / "run"),
           "FPAR_WORKERS": "all:train,predict", "FPAR_TORCH_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    env.pop("MAKEFLAGS", None)
    return subprocess.Popen(command or ["make", "--no-print-directory", "up"], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _gone_within(pids: set[int], seconds: float) -> float:
    start = time.monotonic()
    while time.monotonic() < start + seconds and any(_alive(p) for p in pids):
        time.sleep(0.05)
    assert not [p for p in pids if _alive(p)], "processes of the stack outlived it"
    return time.monotonic() - start


def _wait_ready(url: str, proc: subprocess.Popen, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stdout.read()
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("the stack did not become ready")


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    from fpar_models.data import synthetic

    root = tmp_path_factory.mktemp("launch")
    synthetic.generate(root / "data" / "synthetic", videos_per_class=1)
    return root


def _launcher_of(make: subprocess.Popen) -> int:
    """The launcher process under `make up` (make may run it through a shell)."""
    for pid in sorted(_descendants(make.pid)):
        if b"launcher" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    raise AssertionError("no launcher under make")


def test_a_killed_launcher_takes_its_whole_stack_with_it(synthetic_data):
    port = free_port()
    make = _launch(synthetic_data, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", make)
        launcher = _launcher_of(make)
        stack = _descendants(launcher)
        assert len(stack) >= 3  # redis, a worker, the gateway

        second = _launch(synthetic_data, free_port(), [sys.executable, "-m", "launcher"])  # same run folder
        out, _ = second.communicate(timeout=60)
        assert second.returncode != 0 and "in use by a running redis-server (pid" in out, out

        os.kill(launcher, signal.SIGKILL)  # no chance to stop anything itself
        took = _gone_within(stack, 10)
        print(f"\nthe stack's {len(stack)} processes were gone {took:.2f} s after the launcher was killed")
    finally:
        make.kill()
        make.wait()


def test_term_then_kill_to_make_stops_everything(synthetic_data):
    """What a supervisor or CI does: SIGTERM to make, SIGKILL a few seconds later."""
    port = free_port()
    make = _launch(synthetic_data, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", make)
        stack = _descendants(make.pid)
        make.send_signal(signal.SIGTERM)
        time.sleep(2)
        make.kill()
        make.wait()
        took = _gone_within(stack, 20)
        print(f"\n{len(stack)} processes gone {2 + took:.1f} s after SIGTERM to make")
    finally:
        if make.poll() is None:
            make.kill()
