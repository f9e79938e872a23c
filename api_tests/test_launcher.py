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


def _launch(tmp_path: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "FPAR_PORT": str(port), "FPAR_DATA_DIR": str(tmp_path / "data"),
           "FPAR_MODEL_DIR": str(tmp_path / "models"), "FPAR_RUN_DIR": str(tmp_path / "run"),
           "FPAR_WORKERS": "all:train,predict", "FPAR_TORCH_THREADS": "1", "PYTHONPATH": str(ROOT)}
    env.pop("REDIS_URL", None)
    return subprocess.Popen([sys.executable, "-m", "launcher"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


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


def test_a_killed_launcher_takes_its_whole_stack_with_it(synthetic_data):
    port = free_port()
    first = _launch(synthetic_data, port)
    try:
        _wait_ready(f"http://127.0.0.1:{port}", first)
        stack = _descendants(first.pid)
        assert len(stack) >= 3  # redis, a worker, the gateway

        second = _launch(synthetic_data, free_port())  # same run folder, live Redis
        out, _ = second.communicate(timeout=60)
        assert second.returncode != 0 and "in use by a running redis-server (pid" in out, out

        first.send_signal(signal.SIGKILL)  # no chance to stop anything itself
        first.wait()
        killed = time.monotonic()
        while time.monotonic() < killed + 10 and any(_alive(p) for p in stack):
            time.sleep(0.05)
        assert not [p for p in stack if _alive(p)], "processes of the stack outlived their launcher"
        print(f"\nthe stack's {len(stack)} processes were gone {time.monotonic() - killed:.2f} s after the launcher")
    finally:
        if first.poll() is None:
            first.kill()
