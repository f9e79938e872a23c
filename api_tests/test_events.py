"""Server-sent events: a training's whole stream read live (status changes, progress at most
twice a second, one metrics row per epoch, closed after the end), a late client told the
rows so far, Last-Event-ID resuming, and an unknown job refused before any stream."""
import json
import time

from cli.sse import events

from stack_helpers import tiny_train, wait_for


def read(client, job_id: str, **headers) -> list:
    with client.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=300) as stream:
        assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
        return [(time.monotonic(), e) for e in events(stream.iter_lines())]


def test_a_trainings_whole_stream(client):
    r = client.post("/train", json=tiny_train(epochs=(3, 2)))
    assert r.status_code == 202, r.text
    job_id = r.json()["id"]
    timed = read(client, job_id)  # returns when the server closes the stream
    seen = [e for _, e in timed]
    job = client.get(f"/jobs/{job_id}").json()
    assert job["status"] == "succeeded", job

    statuses = [e.data["status"] for e in seen if e.kind == "status"]
    assert statuses[-1] == "succeeded" and seen[-1].kind == "status" and "running" in statuses, statuses
    assert seen[-1].data["result"]["model"] == job["result"]["model"]
    assert [e.data for e in seen if e.kind == "metrics"] == job["metrics"] and len(job["metrics"]) == 5
    progress = [t for t, e in timed if e.kind == "progress"]
    assert progress, "a training of 5 epochs reports progress"
    gaps = [b - a for a, b in zip(progress, progress[1:])]
    assert all(g > 0.35 for g in gaps), f"progress at most twice a second (the client's clock): {gaps}"
    assert all(isinstance(e.data, dict) and e.id for e in seen)

    late = [e for _, e in read(client, job_id)]  # after the end: the rows so far, then the end
    assert [e.kind for e in late] == ["metrics"] * 5 + ["status"] and late[-1].data["status"] == "succeeded"

    third_row = [e for e in seen if e.kind == "metrics"][2]
    resumed = [e for _, e in read(client, job_id, **{"Last-Event-ID": third_row.id})]
    assert [e.data for e in resumed if e.kind == "metrics"] == job["metrics"][3:]
    assert resumed[-1].data["status"] == "succeeded"


def test_a_cancelled_job_ends_its_stream(client):
    r = client.post("/train", json=tiny_train(epochs=(30, 1)))
    job_id = r.json()["id"]
    asked = False
    with client.stream("GET", f"/jobs/{job_id}/events", timeout=120) as stream:
        for e in events(stream.iter_lines()):
            if e.kind in ("progress", "metrics") and not asked:  # running: stop it
                assert client.post(f"/jobs/{job_id}/cancel").status_code == 202
                asked = True
            if e.kind == "status" and e.data["status"] == "cancelled":
                break
        else:
            raise AssertionError("the stream ended without the cancelled status")
    assert wait_for(client, job_id)["status"] == "cancelled"


def test_an_unknown_job_is_a_problem_not_a_stream(client):
    r = client.get("/jobs/tr_0000000000000000/events")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert json.loads(r.text)["title"]
