"""Job lifecycle over HTTP: cancel (queued and running), listing and filters, the
error answers, and /metrics."""
import shutil
import time

import pytest

from stack_helpers import frames_of, tiny_train, wait_for

PROBLEM = "application/problem+json"


def _problem(r, status: int) -> dict:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["title"] and body["detail"] and body["type"]
    return body


def test_cancel_queued_and_running_training(client, trained):
    long = client.post("/train", json=tiny_train(epochs=(200, 1))).json()
    wait_for(client, long["id"], statuses=("running",), timeout_s=60)
    queued = client.post("/train", json=tiny_train(epochs=(1, 1))).json()
    assert client.get(f"/jobs/{queued['id']}").json()["status"] == "queued"

    r = client.post(f"/jobs/{queued['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"  # at once

    client.post(f"/jobs/{long['id']}/cancel")
    cancelled_at = time.monotonic()
    job = wait_for(client, long["id"], timeout_s=30)
    assert job["status"] == "cancelled" and job["finished_at"], job
    assert time.monotonic() - cancelled_at < 15  # stops at the next batch, not the next epoch boundary
    _problem(client.post(f"/jobs/{long['id']}/cancel"), 409)

    # the worker is free again: a new job runs
    after = client.post("/train", json=tiny_train(epochs=(1, 1))).json()
    assert wait_for(client, after["id"], timeout_s=120)["status"] == "succeeded"


def test_list_and_filter_jobs_newest_first(client, trained, stack):
    for _ in range(3):
        client.post("/predict", files=frames_of(stack, count=1), data={"wait": "20"})
    page = client.get("/jobs", params={"kind": "predict", "limit": 2}).json()
    assert len(page["jobs"]) == 2 and all(j["kind"] == "predict" for j in page["jobs"])
    assert page["jobs"][0]["created_at"] >= page["jobs"][1]["created_at"]
    older = client.get("/jobs", params={"kind": "predict", "limit": 2, "cursor": page["next"]}).json()
    assert older["jobs"] and not {j["id"] for j in older["jobs"]} & {j["id"] for j in page["jobs"]}
    assert older["jobs"][0]["created_at"] <= page["jobs"][1]["created_at"]
    done = client.get("/jobs", params={"kind": "train", "status": "succeeded"}).json()["jobs"]
    assert trained["id"] in [j["id"] for j in done] and all(j["status"] == "succeeded" for j in done)


def test_unknown_ids_are_404(client):
    assert "nope" in _problem(client.get("/jobs/nope"), 404)["detail"]
    _problem(client.post("/jobs/nope/cancel"), 404)
    _problem(client.get("/models/nope"), 404)
    _problem(client.post("/predict", files=[("frames", ("a.png", b"x", "image/png"))], data={"model": "nope"}), 404)
    _problem(client.get("/no/such/route"), 404)


def test_bad_requests_are_422_naming_the_field(client, trained, stack):
    body = _problem(client.post("/train", json={**tiny_train(), "frames": 0}), 422)
    assert ["frames"] in [e["loc"] for e in body["errors"]]
    body = _problem(client.post("/train", json={**tiny_train(), "preset": "nope"}), 422)
    assert body["errors"][0]["loc"] == ["preset"]
    body = _problem(client.post("/train", json={**tiny_train(), "dataset": "missing"}), 404)
    assert "missing" in body["detail"]
    body = _problem(client.post("/train", json={**tiny_train(), "train_users": ["S9"]}), 422)
    assert body["errors"][0]["loc"] == ["train_users", 0]
    body = _problem(client.post("/train", json={**tiny_train(), "pretrained": "imagenet"}), 422)
    assert body["errors"][0]["loc"] == ["pretrained"] and "FPAR_WEIGHTS_DIR" in body["detail"]
    _problem(client.post("/train", content=b"{not json", headers={"content-type": "application/json"}), 422)
    body = _problem(client.post("/predict", data={"wait": "1"}), 422)
    assert body["errors"][0]["loc"] == ["frames"]
    body = _problem(client.post("/predict", files=[("frames", ("a.png", b"not an image", "image/png"))]), 422)
    assert body["errors"][0]["loc"] == ["frames", 0] and "a.png" in body["detail"]
    body = _problem(client.post("/predict", files=frames_of(stack, count=1), data={"top_k": "0"}), 422)
    assert "top_k" in body["errors"][0]["loc"]


def test_metrics_are_prometheus_text(client, trained):
    text = client.get("/metrics").text
    assert 'fpar_http_requests_total{method="POST",route="/train",status="202"}' in text
    assert "fpar_http_request_duration_seconds_bucket" in text
    assert 'fpar_jobs{kind="train",status="succeeded"}' in text
    assert 'fpar_queue_depth{queue="predict"}' in text and "fpar_workers_alive 2.0" in text


def _truncate_a_frame(root):
    bad = sorted((root / "processed_frames2/S1/lift_cup/1/rgb").glob("*.png"))[0]  # the reference sampling reads every first frame
    bad.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    return bad, "unreadable image"


def _empty_a_video(root):
    folder = root / "processed_frames2/S3/open_box/1/rgb"
    for f in folder.iterdir():
        f.unlink()
    return folder, "video has no frames"


def _drop_flow_folder(root):
    folder = root / "flow_y_processed/S4"
    shutil.rmtree(folder)
    return folder / "close_box" / "1", "no flow images"


@pytest.mark.parametrize("damage, preset", [(_truncate_a_frame, "egornn-attention"),
                                            (_empty_a_video, "egornn-attention"), (_drop_flow_folder, "flow")])
def test_malformed_dataset_fails_the_job_naming_the_path(client, stack, trained, damage, preset):
    broken = stack.data_dir / f"broken-{damage.__name__.strip('_')}"
    shutil.copytree(stack.data_dir / "synthetic", broken)
    path, message = damage(broken)
    epochs = (1,) if preset == "flow" else (1, 1)
    job = client.post("/train", json={**tiny_train(preset, epochs), "dataset": broken.name}).json()
    failed = wait_for(client, job["id"], timeout_s=120)
    assert failed["status"] == "failed" and failed["error"]["type"] == "dataset_error", failed
    assert str(path) in failed["error"]["message"] and message in failed["error"]["message"]


def test_the_worker_lives_on_after_a_failed_job(client, stack, trained):
    ok = client.post("/train", json=tiny_train(epochs=(1, 1))).json()
    assert wait_for(client, ok["id"], timeout_s=120)["status"] == "succeeded"
