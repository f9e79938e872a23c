"""The real stack for black-box tests: a private redis-server on a free port, real
Celery worker processes (one per queue, as `make up` runs them) and uvicorn, on a
small synthetic dataset. Tests talk HTTP only, and every wait has a deadline."""
from __future__ import annotations

import httpx
import pytest

from launcher import Stack

from stack_helpers import STACK_ENV, assert_nothing_left_running, tiny_train, wait_for


@pytest.fixture(scope="session")
def stack(tmp_path_factory):
    s = Stack.on_synthetic_data(tmp_path_factory.mktemp("stack"), videos_per_class=1, env=STACK_ENV)
    s.start(timeout_s=90)
    supervisor = s.supervise_in_background()  # as `make up` does: dead processes come back
    yield s
    try:
        assert_nothing_left_running(s)
    finally:
        supervisor.set()
        s.stop()


@pytest.fixture(scope="session")
def client(stack):
    with httpx.Client(base_url=stack.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def trained(client) -> dict:
    """One small model trained through the API; the job once it succeeded."""
    r = client.post("/train", json=tiny_train())
    assert r.status_code == 202, r.text
    job = wait_for(client, r.json()["id"])
    assert job["status"] == "succeeded", job
    return job


