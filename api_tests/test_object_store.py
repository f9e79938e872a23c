"""Models and datasets in an object store (FPAR_MODEL_STORE and FPAR_DATA_STORE s3://..., a
real SeaweedFS server): three "hosts", worker processes whose model and data folders are
apart from each other's and the gateway's, share checkpoints, models, datasets and uploads
through the store alone (and prediction frames through Redis). A training on two ranks
(`devices` 2) whose host is killed loses its ranks with it and resumes on another host, on
two ranks, from its last epoch; a third host serves, exports and runs a timeline of an
upload with the model it never saw trained; recordings put into the store are ingested by
one host into a dataset the gateway lists and every host can train on."""
import os
import shutil
import signal

import boto3
import httpx
import psutil
import pytest

from fpar_models.data.recordings import write_recording
from launcher import Stack
from launcher.publish import publish
from launcher.seaweed import start_s3
from launcher.stack import Worker

from stack_helpers import (
    STACK_ENV,
    assert_nothing_left_running,
    frames_of,
    ranks_of,
    tiny_train,
    until,
    wait_for,
    write_incoming,
)

STORE, DATA = "s3://fpar/models", "s3://fpar/data"


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    s3 = start_s3(tmp_path_factory.mktemp("seaweed"))
    root = tmp_path_factory.mktemp("hosts")
    stack = Stack.on_synthetic_data(root, videos_per_class=1,
                                    # (PyTorch serves: compiling a runtime's graph is not what this tests)
                                    env={**STACK_ENV, **s3.env, "FPAR_MODEL_STORE": STORE, "FPAR_DATA_STORE": DATA,
                                         "FPAR_INFERENCE": "torch"},
                                    workers=[Worker("a", "train,ingest", env=_host(root, "a")),
                                             Worker("c", "train,ingest", env=_host(root, "c")),
                                             Worker("b", "predict", env=_host(root, "b"))])
    saved = dict(os.environ)
    os.environ.update({**s3.env, "FPAR_DATA_STORE": DATA})
    publish(["synthetic"], stack.data_dir)  # as `python -m launcher.publish synthetic` does; no host has it
    try:
        stack.start(timeout_s=90)
        yield stack, root, boto3.client("s3", **_client(s3.env))
    finally:
        try:
            assert_nothing_left_running(stack)
        finally:
            os.environ.clear()
            os.environ.update(saved)
            stack.stop(deadline_s=3)  # a throwaway stack: no need to wait out the workers' warm shutdown
            s3.stop(deadline_s=0.5)


def _host(root, name: str) -> dict[str, str]:
    return {"FPAR_MODEL_DIR": str(root / f"host-{name}"), "FPAR_DATA_DIR": str(root / f"host-{name}" / "data")}


def _client(env: dict[str, str]) -> dict:
    return {"endpoint_url": env["AWS_ENDPOINT_URL"], "aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"], "region_name": env["AWS_DEFAULT_REGION"]}


def _keys(s3, prefix: str, store: str = "models") -> list[str]:
    return [o["Key"] for o in s3.list_objects_v2(Bucket="fpar", Prefix=f"{store}/{prefix}").get("Contents", [])]


def test_a_training_resumes_on_another_host_and_a_third_serves_its_model(hosts):
    stack, root, s3 = hosts
    body = {**tiny_train(), "stages": [{"epochs": 4}, None], "image_size": 32, "frames": 2, "devices": 2}
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        job_id = client.post("/train", json=body).json()["id"]
        until(lambda: len(client.get(f"/jobs/{job_id}").json()["metrics"]) >= 2, 120, "two epochs")
        first = next(h for h in "ac" if (root / f"host-{h}" / "runs" / job_id / "last.pt").exists())
        ranks = ranks_of(stack, f"worker-{first}")
        assert len(ranks) == 2, [p.cmdline() for p in ranks]
        stack.remove(f"worker-{first}", signal.SIGKILL)  # that host is gone, and its disk with it
        assert not psutil.wait_procs(ranks, timeout=30)[1]  # its ranks died with it (PDEATHSIG)
        job = wait_for(client, job_id, timeout_s=150)
        assert job["status"] == "succeeded" and job["attempts"] == 2 and job["result"]["devices"] == 2, job
        assert [r["epoch"] for r in job["metrics"]] == [1, 2, 3, 4]
        # the other host trained only what the first had not finished (from scratch: 2 + 4 at least)
        assert job["epochs_trained"] <= 4, job["epochs_trained"]
        model = job["result"]["model"]
        assert sorted(k.rsplit("/", 1)[1] for k in _keys(s3, f"{model}/")) == ["metrics.json", "model.pt"]
        assert not _keys(s3, "runs/") and not any((root / f"host-{h}" / model).exists() for h in "abc")
        assert model in [m["id"] for m in client.get("/models").json()]

        r = client.post("/predict", data={"model": model, "wait": "60"}, files=frames_of(stack))
        assert r.status_code == 200 and r.json()["status"] == "succeeded", r.text
        assert (root / "host-b" / "cache" / model / "model.pt").is_file()  # host b read it from the store
        assert not (root / "host-b" / "data" / ".frames").exists()  # the frames came through Redis
        recording = write_recording(root / "upload" / "kitchen.mp4", [("S2", "open_box", 0), ("S2", "lift_cup", 0)])
        with open(recording.path, "rb") as f:  # an upload the gateway spools, and host b reads from the store
            timeline = client.post("/timelines", files={"video": ("kitchen.mp4", f, "video/mp4")},
                                   data={"model": model}).json()
        assert wait_for(client, timeline["id"], timeout_s=120)["status"] == "succeeded"
        assert not _keys(s3, ".timelines/", "data")  # its upload went with the job
        export = client.get(f"/models/{model}/export", params={"format": "torchscript"}, timeout=120)
        assert export.status_code == 200 and export.content[:2] == b"PK", export.text[:300]
        assert _keys(s3, f"{model}/export/torchscript.zip")  # built once, by host b, kept in the store
        assert client.delete(f"/models/{model}").status_code == 204
        assert not _keys(s3, f"{model}/")


def test_recordings_in_the_store_become_a_dataset_every_host_sees(hosts):
    stack, root, s3 = hosts
    source = write_incoming(stack, "kitchen", {"S1": ["open_box", "lift_cup"], "S2": ["open_box", "lift_cup"]})
    for file in (stack.data_dir / source).iterdir():  # put there as `aws s3 cp` would, and nowhere else
        s3.upload_file(str(file), "fpar", f"data/{source}/{file.name}")
    shutil.rmtree(stack.data_dir / "incoming")
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        job = client.post("/datasets", json={"name": "kitchen", "source": source}).json()
        assert wait_for(client, job["id"], timeout_s=120)["status"] == "succeeded"
        listed = {d["name"]: d for d in client.get("/datasets").json()["datasets"]}
        assert listed["kitchen"]["status"] == "ready" and listed["kitchen"]["videos"] == 4, listed.get("kitchen")
        assert _keys(s3, ".published/kitchen.json", "data") and not _keys(s3, ".ingest/", "data")
        body = {**tiny_train(), "dataset": "kitchen", "train_users": ["S1"], "val_users": ["S2"]}
        training = client.post("/train", json=body)  # the gateway checks it on its copy
        assert training.status_code == 202, training.text
        assert client.delete("/datasets/kitchen").status_code == 409  # in use
        client.post(f"/jobs/{training.json()['id']}/cancel")
        assert wait_for(client, training.json()["id"])["status"] == "cancelled"
        assert client.delete("/datasets/kitchen").status_code == 204
        assert not _keys(s3, "kitchen/", "data") and not _keys(s3, ".published/kitchen", "data")
