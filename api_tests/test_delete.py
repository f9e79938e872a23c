"""Deleting: an ended job (record, metrics, listing, event stream) but never one still
queued or running; a model (registry entry and files) but never while a job uses it."""
import os
import signal

from stack_helpers import frames_of, tiny_train, wait_for


def test_a_job_is_deleted_only_once_it_has_ended(client):
    job_id = client.post("/train", json=tiny_train(epochs=(40, 1))).json()["id"]
    r = client.delete(f"/jobs/{job_id}")
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"], r.text
    client.post(f"/jobs/{job_id}/cancel")
    assert wait_for(client, job_id)["status"] == "cancelled"

    assert client.delete(f"/jobs/{job_id}").status_code == 204
    for path in (f"/jobs/{job_id}", f"/jobs/{job_id}/events"):
        assert client.get(path).status_code == 404, path
    listed = [j["id"] for j in client.get("/jobs", params={"limit": 500}).json()["jobs"]]
    assert job_id not in listed
    assert client.delete(f"/jobs/{job_id}").status_code == 404


def test_a_model_in_use_is_kept_and_an_unused_one_goes_with_its_files(client, stack):
    job = wait_for(client, client.post("/train", json=tiny_train(image_size=32, frames=2)).json()["id"])
    model_id = job["result"]["model"]
    folder = stack.model_dir / model_id
    assert (folder / "model.pt").is_file()

    worker = stack.procs["worker-predict"].pid
    os.killpg(worker, signal.SIGSTOP)  # frozen (for less than a heartbeat): the prediction stays queued
    try:
        queued = client.post("/predict", files=frames_of(stack), data={"model": model_id}).json()
        assert queued["status"] == "queued"
        r = client.delete(f"/models/{model_id}")
        assert r.status_code == 409 and queued["id"] in r.json()["detail"], r.text
        assert folder.is_dir()
        client.post(f"/jobs/{queued['id']}/cancel")
    finally:
        os.killpg(worker, signal.SIGCONT)
    assert wait_for(client, queued["id"])["status"] == "cancelled"

    assert client.delete(f"/models/{model_id}").status_code == 204
    assert client.get(f"/models/{model_id}").status_code == 404
    assert model_id not in [m["id"] for m in client.get("/models").json()]
    assert not folder.exists()
    r = client.post("/predict", files=frames_of(stack), data={"model": model_id, "wait": "10"})
    assert r.status_code == 404, r.text
    assert client.delete(f"/models/{model_id}").status_code == 404
