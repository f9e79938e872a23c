"""Faults against real processes: workers killed with SIGKILL, Redis crashing, the
gateway restarted. Nothing may be lost, no job state goes backwards, and no job stays
`running` without a worker for longer than it takes another to claim it.
The stack's supervisor restarts dead processes, as `make up` and compose do."""
import signal
import time
from datetime import UTC, datetime

import httpx

from launcher.stack import Worker

from stack_helpers import STACK_ENV, frames_of, tiny_train, until, wait_for

PROBLEM = "application/problem+json"


def _workers(client) -> dict[str, dict]:
    r = client.get("/readyz")
    return {w["name"]: w for w in r.json().get("workers", [])} if r.status_code == 200 else {}


def test_a_killed_worker_comes_back(client, stack, trained):
    before = _workers(client)
    old_pid = stack.procs["worker-predict"].pid
    stack.kill("worker-predict")
    until(lambda: stack.procs["worker-predict"].pid != old_pid, 10, "the supervisor restarts the worker")
    until(lambda: len(set(_workers(client)) - set(before)) >= 1, 60, "the new worker sends heartbeats")
    r = client.post("/predict", files=frames_of(stack), data={"wait": "30"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded"


def test_training_killed_midway_resumes_from_its_last_epoch(client, stack, trained):
    job = client.post("/train", json=tiny_train(epochs=(6, 1))).json()
    until(lambda: len(client.get(f"/jobs/{job['id']}").json()["metrics"]) >= 2, 120, "two epochs done")
    stack.remove("worker-train", signal.SIGKILL)  # a crash, and no worker takes the job over yet
    try:  # the reaper notices the silence and releases the job; it stays running, never back to queued
        waiting = until(lambda: (j := client.get(f"/jobs/{job['id']}").json())["awaiting_worker"] and j, 60,
                        "the reaper releases the job")
        assert waiting["status"] == "running" and waiting["attempts"] == 1, waiting
    finally:
        stack.add_worker(Worker("train", "train,ingest"), timeout_s=90)  # as the stack started it
    done = wait_for(client, job["id"], timeout_s=180)
    assert done["status"] == "succeeded" and not done["awaiting_worker"], done
    assert done["attempts"] == 2
    epochs = [(r["stage"], r["epoch"]) for r in done["metrics"]]
    assert epochs == [(1, e) for e in range(1, 7)] + [(2, 1)], epochs  # full history, nothing twice


def test_a_job_that_keeps_killing_its_worker_fails_with_the_reason(client, stack, trained):
    job = client.post("/train", json=tiny_train(epochs=(500, 1))).json()
    for attempt in (1, 2):  # FPAR_MAX_ATTEMPTS is 2 in the test stack
        until(lambda a=attempt: client.get(f"/jobs/{job['id']}").json()["attempts"] == a
              and client.get(f"/jobs/{job['id']}").json()["status"] == "running", 90, f"attempt {attempt} runs")
        stack.kill("worker-train")
    failed = wait_for(client, job["id"], timeout_s=60)
    assert failed["status"] == "failed" and failed["error"]["type"] == "worker_lost", failed
    assert "2 times" in failed["error"]["message"]


def _lasting(job: dict) -> bool:
    """Not a prediction whose record may expire (FPAR_PREDICT_TTL_S) while the test runs."""
    if job["kind"] != "predict":
        return True
    last = datetime.fromisoformat(job["finished_at"] or job["created_at"])
    return (datetime.now(UTC) - last).total_seconds() < int(STACK_ENV["FPAR_PREDICT_TTL_S"]) - 150


def test_redis_crash_loses_no_job_and_everything_reconnects(client, stack, trained):
    jobs = {j["id"]: j["status"] for j in client.get("/jobs", params={"limit": 500}).json()["jobs"] if _lasting(j)}
    models = {m["id"] for m in client.get("/models").json()}
    time.sleep(1.5)  # appendfsync everysec: what is a second old is on disk
    stack.kill("redis", signal.SIGKILL)
    down = client.get(f"/jobs/{trained['id']}")  # whether or not the supervisor has restarted it yet
    if down.status_code != 200:
        assert down.status_code == 503 and down.headers["content-type"] == PROBLEM
        assert "Retry-After" in down.headers
    until(lambda: client.get("/readyz").status_code == 200 and len(_workers(client)) >= 2, 90,
          "gateway and workers reconnect")
    after = {j["id"]: j["status"] for j in client.get("/jobs", params={"limit": 500}).json()["jobs"]}
    assert jobs.items() <= after.items()
    assert models <= {m["id"] for m in client.get("/models").json()}
    assert client.get(f"/jobs/{trained['id']}").json()["metrics"] == trained["metrics"]
    r = client.post("/predict", files=frames_of(stack), data={"wait": "60"})
    assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text


def test_while_redis_is_down_the_gateway_answers_503(client, stack, trained):
    supervised = stack.procs.pop("redis")  # keep the supervisor from restarting it for a while
    try:
        supervised.terminate()
        supervised.wait(timeout=20)
        for method, path, kwargs in [("GET", f"/jobs/{trained['id']}", {}), ("GET", "/jobs", {}),
                                     ("POST", "/train", {"json": tiny_train()}), ("GET", "/models", {}),
                                     ("POST", "/predict", {"files": frames_of(stack, count=1)}),
                                     ("GET", "/readyz", {})]:
            start = time.monotonic()
            r = client.request(method, path, **kwargs, timeout=30)
            assert r.status_code == 503, (path, r.status_code, r.text)
            assert r.headers["content-type"] == PROBLEM and time.monotonic() - start < 10
        assert client.get("/healthz").status_code == 200  # liveness does not depend on Redis
    finally:
        stack.procs["redis"] = supervised  # dead: the supervisor restarts it
    until(lambda: client.get("/readyz").status_code == 200 and len(_workers(client)) >= 2, 90, "recovery")
    assert client.get(f"/jobs/{trained['id']}").json()["status"] == "succeeded"


def test_gateway_restart_mid_job_loses_nothing(client, stack, trained):
    job = client.post("/train", json=tiny_train(epochs=(3, 1))).json()
    wait_for(client, job["id"], statuses=("running",), timeout_s=60)
    stack.kill("gateway")
    until(lambda: _ok(f"{stack.url}/healthz"), 30, "the gateway is back")
    done = wait_for(client, job["id"], timeout_s=180)
    assert done["status"] == "succeeded" and len(done["metrics"]) == 4


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
