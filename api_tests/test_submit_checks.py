"""Accepted, then failed: what the gateway can see will fail is settled at submit. Each of
these requests used to be accepted and then fail in a worker, or fail for a reason a
client could not act on."""
import shutil

import pytest

from stack_helpers import TINY, frames_of, tiny_train, wait_for


def _two_stream(rgb_model: str, **model) -> dict:
    """A two-stream request that leaves every shape field to the preset (mem_size 512)."""
    body = tiny_train("two-stream", (1,))
    body["model"] = {"rgb_model": rgb_model, **model}
    return body


def test_two_stream_takes_the_shapes_of_the_model_it_starts_from(client, trained):
    rgb_model = trained["result"]["model"]  # trained with mem_size 64
    assert TINY["model"]["mem_size"] == 64
    r = client.post("/train", json=_two_stream(rgb_model))
    assert r.status_code == 202, r.text
    assert r.json()["request"]["model"]["mem_size"] == 64
    job = wait_for(client, r.json()["id"], timeout_s=240)
    assert job["status"] == "succeeded", job["error"]

    conflicting = client.post("/train", json=_two_stream(rgb_model, mem_size=128))
    assert conflicting.status_code == 422, conflicting.text
    problem = conflicting.json()
    assert problem["errors"][0]["loc"] == ["model", "mem_size"]
    assert "trained with mem_size 64" in problem["detail"]


def test_two_stream_refuses_a_stream_model_of_another_kind(client, trained):
    r = client.post("/train", json={**tiny_train("two-stream", (1,)), "model": {"flow_model": trained["result"]["model"]}})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["model", "flow_model"], r.text


def _flows_of(stack, user="S2", action="lift_cup", video="1") -> list:
    files = []
    for axis in ("x", "y"):
        folder = stack.data_dir / "synthetic" / f"flow_{axis}_processed" / user / action / video
        files += [(f"flow_{axis}", (p.name, p.read_bytes(), "image/png")) for p in sorted(folder.glob("*.png"))]
    return files


@pytest.fixture(scope="module")
def flow_model(client, trained) -> str:
    r = client.post("/train", json=tiny_train("flow", (1,)))
    job = wait_for(client, r.json()["id"], timeout_s=240)
    assert job["status"] == "succeeded", job["error"]
    return job["result"]["model"]


def test_flow_models_report_the_five_stack_test(client, flow_model):
    model = client.get(f"/models/{flow_model}").json()
    assert 0 <= model["best_val_acc"] <= 1 and 0 <= model["test_acc"] <= 1  # validation: the centre stack


def test_the_default_model_is_the_newest_that_takes_what_was_sent(client, stack, flow_model):
    assert client.get("/models").json()[0]["id"] == flow_model  # the newest model needs flow
    r = client.post("/predict", files=frames_of(stack), data={"wait": "30"})
    assert r.status_code == 200, r.text
    rgb_model = r.json()["result"]["model"]
    assert rgb_model != flow_model and "rgb" in client.get(f"/models/{rgb_model}").json()["inputs"]

    r = client.post("/predict", files=_flows_of(stack), data={"wait": "30"})
    assert r.status_code == 200 and r.json()["result"]["model"] == flow_model, r.text


def test_a_file_that_is_not_an_image_is_named_without_internals(client, stack, trained):
    files = frames_of(stack, count=2) + [("frames", ("notes.txt", b"just some text", "text/plain"))]
    r = client.post("/predict", files=files)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["errors"][0]["loc"] == ["frames", 2]
    assert "frames[2] ('notes.txt') is not an image" in problem["detail"]
    assert "0x" not in r.text and "BytesIO" not in r.text


def test_wait_zero_answers_202_even_when_the_job_is_already_done(client, stack, trained):
    files = frames_of(stack, count=2)
    done = client.post("/predict", files=files, data={"wait": "30"}, headers={"Idempotency-Key": "w0"})
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    again = client.post("/predict", files=files, data={"wait": "0"}, headers={"Idempotency-Key": "w0"})
    assert again.status_code == 202 and again.json()["id"] == done.json()["id"]


def test_a_training_starts_after_a_stage_of_a_trained_model(client, trained):
    source = trained["result"]["model"]  # two stages of 1 epoch, mem_size 64
    after = {"model": source, "stage": 1}
    body = {**tiny_train(epochs=(1, 2)), "init_from": after}
    body["stages"] = [{}, {"epochs": 2}]  # stage 1 is the model's: left to it
    r = client.post("/train", json=body)
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["request"]["stages"][0] == trained["request"]["stages"][0]
    assert client.delete(f"/models/{source}").status_code == 409  # it is starting from that model
    done = wait_for(client, job["id"], timeout_s=240)
    assert done["status"] == "succeeded", done["error"]
    assert [(r["stage"], r.get("from_model")) for r in done["metrics"]] == [(1, source), (2, None), (2, None)]
    assert done["metrics"][0]["val_acc"] == trained["metrics"][0]["val_acc"] and done["epochs_trained"] == 2

    def refused(change: dict, status: int = 422) -> list:
        r = client.post("/train", json={**body, **change})
        assert r.status_code == status, r.text
        return r.json()["errors"][0]["loc"]

    assert refused({"init_from": {"model": "m_nope", "stage": 1}}, 404) == ["init_from", "model"]
    assert refused({"stages": [{"epochs": 5}, {}]}) == ["stages", 0]  # not how the model trained stage 1
    assert refused({"model": {"mem_size": 32}}) == ["model", "mem_size"]
    assert refused({"init_from": {**after, "stage": 2}}) == ["init_from", "stage"]  # nothing left to train
    # the new model trained stage 2 only: its stage 1 is its source's
    child = done["result"]["model"]
    assert refused({"init_from": {"model": child, "stage": 1}}) == ["init_from", "stage"]


def test_a_model_fine_tunes_on_other_classes_only_with_a_new_classifier(client, stack, trained):
    """Another dataset (two of the six actions): keeping the classifier is refused; a reset
    one trains stage 2 on the new classes from the model's stage 1."""
    source, target = stack.data_dir / "synthetic" / "processed_frames2", stack.data_dir / "two_actions"
    for user in source.iterdir():
        for action in ("close_box", "lift_cup"):
            shutil.copytree(user / action, target / "processed_frames2" / user.name / action, dirs_exist_ok=True)
    body = {**tiny_train(epochs=(1, 1)), "dataset": "two_actions", "stages": [{}, {"epochs": 1}],
            "init_from": {"model": trained["result"]["model"], "stage": 1}}
    kept = client.post("/train", json=body)
    assert kept.status_code == 422 and kept.json()["errors"][0]["loc"] == ["init_from", "classes"], kept.text
    reset = client.post("/train", json={**body, "init_from": {**body["init_from"], "classes": "reset"}})
    assert reset.status_code == 202, reset.text
    done = wait_for(client, reset.json()["id"], timeout_s=240)
    assert done["status"] == "succeeded", done["error"]
    assert [r["stage"] for r in done["metrics"]] == [2]  # another classifier: the model's rows are not its history
    assert client.get(f"/models/{done['result']['model']}").json()["classes"] == ["close_box", "lift_cup"]
