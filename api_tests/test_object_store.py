"""Models in an object store (FPAR_MODEL_STORE=s3://..., a real SeaweedFS server): two
"hosts", worker processes whose model folders are apart, share models and checkpoints
through the store alone. One trains, the other serves and exports; a training whose
host is killed resumes on the other from its last epoch."""
import signal

import boto3
import pytest
from conftest import STACK_ENV

from launcher import Stack
from launcher.seaweed import start_s3
from launcher.stack import Worker

from stack_helpers import assert_nothing_left_running, frames_of, tiny_train, until, wait_for

STORE = "s3://fpar/models"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    s3 = start_s3(tmp_path_factory.mktemp("seaweed"))
    root = tmp_path_factory.mktemp("hosts")
    stack = Stack.on_synthetic_data(root, videos_per_class=1,
                                    env={**STACK_ENV, **s3.env, "FPAR_MODEL_STORE": STORE},
                                    workers=[Worker("a", "train", env=_host(root, "a")),
                                             Worker("b", "predict", env=_host(root, "b"))])
    stack.start(timeout_s=90)
    try:
        yield stack, root, boto3.client("s3", **_client(s3.env))
    finally:
        try:
            assert_nothing_left_running(stack)
        finally:
            stack.stop()
            s3.stop()


def _host(root, name: str) -> dict[str, str]:
    return {"FPAR_MODEL_DIR": str(root / f"host-{name}")}


def _client(env: dict[str, str]) -> dict:
    return {"endpoint_url": env["AWS_ENDPOINT_URL"], "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"], "region_name": env["AWS_DEFAULT_REGION"]}


def _keys(s3, prefix: str) -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="fpar", Prefix=f"models/{prefix}").get("Contents", [])]


def test_a_model_trained_on_one_host_is_served_and_exported_by_the_other(hosts):
    stack, root, s3 = hosts
    with stack_client(stack) as client:
        job = wait_for(client, client.post("/train", json=tiny_train()).json()["id"])
        assert job["status"] == "succeeded", job
        model = job["result"]["model"]
        assert sorted(k.rsplit("/", 1)[1] for k in _keys(s3, f"{model}/")) == [
            "metrics.json", "model.pt", "stage1_best.pt"]
        assert not (root / "host-a" / model).exists() and not _keys(s3, "runs/")  # nothing left behind
        assert model in [m["id"] for m in client.get("/models").json()]
        r = client.post("/predict", data={"model": model, "wait": "60"}, files=frames_of(stack))
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        assert (root / "host-b" / "cache" / model / "model.pt").is_file()  # host b read it from the store
        export = client.get(f"/models/{model}/export", params={"format": "torchscript"}, timeout=120)
        assert export.status_code == 200 and export.content[:2] == b"PK", export.text[:300]
        assert _keys(s3, f"{model}/export/torchscript.zip")  # built once, by host b, kept in the store
        assert client.delete(f"/models/{model}").status_code == 204
        assert not _keys(s3, f"{model}/")


def test_a_training_whose_host_dies_resumes_on_the_other_from_its_last_epoch(hosts):
    stack, root, s3 = hosts
    body = {**tiny_train(), "stages": [{"epochs": 4}, None], "image_size": 32, "frames": 2}  # stage 1 alone
    with stack_client(stack) as client:
        job_id = client.post("/train", json=body).json()["id"]
        until(lambda: len(client.get(f"/jobs/{job_id}").json()["metrics"]) >= 2, 120, "two epochs on host a")
        stack.remove("worker-a", signal.SIGKILL)  # host a is gone, and its disk with it
        stack.add_worker(Worker("b-train", "train", env=_host(root, "b")), timeout_s=90)
        job = wait_for(client, job_id, timeout_s=180)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert [r["epoch"] for r in job["metrics"]] == [1, 2, 3, 4]
    # host b trained only what host a had not finished (from scratch it would count 2 + 4 at least)
    assert job["epochs_trained"] <= 4, job["epochs_trained"]
    assert not _keys(s3, f"runs/{job_id}/")


def stack_client(stack):
    import httpx
    return httpx.Client(base_url=stack.url, timeout=60)
