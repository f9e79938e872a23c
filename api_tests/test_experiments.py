"""Experiments over HTTP: a grid x trials as one request, run on two train workers at
once, its children starting from a shared stage 1, summarised as the reports' table
(checked against the children), exported, plotted and cancelled; and the pictures of the
models it made."""
import csv
import io
import os
import statistics
import time
from pathlib import Path

import pytest
from PIL import Image

from cli.sse import events
from launcher.stack import Worker

from stack_helpers import TINY, wait_for

ENDED = ("succeeded", "failed", "cancelled")
# both kinds of head with a picture: motion segmentation (classification) and dynamic filters
BASE = {**TINY, "preset": "ms-classification", "image_size": 48, "frames": 4,
        "model": {"mem_size": 32, "heads": [{}, {"kind": "dynamic_filter", "alpha": 0.001}]},
        "stages": [{"epochs": 2}, {"epochs": 1}]}


def _png(r, min_width: int = 400) -> Image.Image:
    assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text[:300]
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG" and image.size[0] >= min_width and image.size[1] >= 250, image.size
    return image


def wait_experiment(client, exp_id: str, timeout_s: float = 300) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        exp = client.get(f"/experiments/{exp_id}").json()
        if exp["status"] in ENDED:
            return exp
        assert time.monotonic() < deadline, exp
        time.sleep(0.5)


@pytest.fixture(scope="module")
def two_train_workers(stack):
    name = stack.add_worker(Worker("train2", "train"))
    yield
    stack.remove(name)


@pytest.fixture(scope="module")
def experiment(client, two_train_workers) -> dict:
    body = {"name": "stage-2 lr x 2 trials", "base": BASE, "grid": {"stages.1.lr": [1e-4, 1e-3]}, "trials": 2}
    r = client.post("/experiments", json=body)
    assert r.status_code == 202, r.text
    exp = r.json()
    assert exp["id"].startswith("ex_") and r.headers["location"] == f"/experiments/{exp['id']}"
    assert len(exp["jobs"]) == 4 and len(exp["shared"]) == 2 and exp["status"] == "queued"
    # two stage 1s (one per seed) of 2 epochs, four stage 2s of 1, instead of four runs of 3
    assert exp["cost"] == {"naive_epochs": 12, "planned_epochs": 8, "trained_epochs": 0}
    with client.stream("GET", f"/experiments/{exp['id']}/events", timeout=300) as stream:  # to its end
        assert stream.headers["content-type"].startswith("text/event-stream")
        seen = list(events(stream.iter_lines()))
    done = wait_experiment(client, exp["id"])
    assert done["status"] == "succeeded", done
    return {**done, "events": seen}


def test_the_event_stream_follows_every_child_to_the_table(client, experiment):
    seen = experiment["events"]
    final = seen[-1]
    assert (final.kind, final.data["status"]) == ("status", "succeeded") and final.data["table"] == experiment["table"]
    assert seen[0].kind == "status" and seen[0].data["status"] in ("queued", "running")
    last_state = {e.data["id"]: e.data for e in seen if e.kind == "job"}
    assert {i: (j["status"], j["best_val_acc"]) for i, j in last_state.items()} == \
        {j["id"]: (j["status"], j["best_val_acc"]) for j in experiment["jobs"]}
    assert [e.data for e in seen if e.kind == "progress"][-1] == {"ended": 6, "total": 6}
    running = [e.data["id"] for e in seen if e.kind == "job" and e.data["status"] == "running"]
    assert len(running) == 4, "each child's start was seen (the stream polls faster than a child runs)"
    shared = {e.data["id"]: e.data["status"] for e in seen if e.kind == "shared"}
    assert shared == {s["id"]: "succeeded" for s in experiment["shared"]}


def test_children_start_from_one_shared_stage_1_per_seed(client, experiment):
    assert experiment["cost"] == {"naive_epochs": 12, "planned_epochs": 8, "trained_epochs": 8}
    children = {j["id"]: j for j in experiment["jobs"]}
    for share in experiment["shared"]:
        assert share["status"] == "succeeded" and share["stages"] == 1 and share["after"] is None
        first = client.get(f"/jobs/{share['id']}").json()
        model = first["result"]["model"]
        assert first["request"]["until_stage"] == 1 and first["epochs_trained"] == 2
        assert [(r["stage"], r["epoch"]) for r in first["metrics"]] == [(1, 1), (1, 2)]
        dependants = [children[i] for i in share["dependants"]]
        assert len(dependants) == 2 and {j["seed"] for j in dependants} == {first["request"]["seed"]}
        assert {j["point"]["stages.1.lr"] for j in dependants} == {1e-4, 1e-3}
        for child in dependants:
            job = client.get(f"/jobs/{child['id']}").json()
            assert child["after"] == job["after"] == share["id"] and job["epochs_trained"] == 1
            assert job["request"]["init_from"] == {"model": model, "stage": 1, "classes": "keep"}
            # the whole history, stage 1's rows marked as the shared model's
            assert [r.get("from_model") for r in job["metrics"]] == [model, model, None]
            assert [{k: v for k, v in r.items() if k != "from_model"} for r in job["metrics"][:2]] == first["metrics"]


def test_children_are_train_jobs_of_the_experiment_with_their_point_and_seed(client, experiment):
    jobs = experiment["jobs"]
    assert [(j["point"]["stages.1.lr"], j["trial"], j["seed"]) for j in jobs] == [
        (1e-4, 0, 0), (1e-4, 1, 1), (1e-3, 0, 0), (1e-3, 1, 1)]
    for j in jobs:
        job = client.get(f"/jobs/{j['id']}").json()
        assert job["experiment"] == experiment["id"] and job["kind"] == "train" and job["status"] == "succeeded"
        assert job["request"]["stages"][1]["lr"] == j["point"]["stages.1.lr"] and job["request"]["seed"] == j["seed"]
        assert job["result"]["best_val_acc"] == j["best_val_acc"]


def test_two_train_workers_run_two_children_at_once(client, experiment):
    spans = []
    for j in experiment["jobs"]:
        job = client.get(f"/jobs/{j['id']}").json()
        spans.append((job["started_at"], job["finished_at"]))
    overlapping = [(a, b) for i, a in enumerate(spans) for b in spans[i + 1:] if a[0] < b[1] and b[0] < a[1]]
    assert overlapping, spans  # one solo worker runs one job at a time: an overlap needs two workers


def test_the_table_is_the_childrens_mean_and_std(client, experiment):
    table = experiment["table"]
    assert len(table) == 2 and sum(r["best"] for r in table) == 1
    for row in table:
        accs = [j["best_val_acc"] for j in experiment["jobs"] if j["point"] == row["point"]]
        assert row["trials"] == 2
        assert row["mean"] == pytest.approx(statistics.fmean(accs)) and row["std"] == pytest.approx(statistics.stdev(accs))
        assert (row["min"], row["max"]) == (min(accs), max(accs))
    assert max(table, key=lambda r: r["mean"])["best"]

    exported = client.get(f"/experiments/{experiment['id']}/table", params={"format": "csv"})
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert [r["stages.1.lr"] for r in rows] == ["1e-4", "1e-3"]
    assert [float(r["mean"]) for r in rows] == pytest.approx([r["mean"] for r in table])
    assert [int(r["trials"]) for r in rows] == [2, 2]
    md = client.get(f"/experiments/{experiment['id']}/table", params={"format": "md"}).text
    assert md.startswith("| stages.1.lr | trials | mean | std |") and f"{100 * table[0]['mean']:.2f}" in md
    assert client.get(f"/experiments/{experiment['id']}/table", params={"format": "json"}).json()[0]["trials"] == 2
    listed = client.get("/experiments", params={"limit": 5}).json()["experiments"]
    assert experiment["id"] in [e["id"] for e in listed]


def test_curves_of_a_job_and_of_the_experiment(client, experiment):
    _png(client.get(f"/experiments/{experiment['id']}/plot.png"), 1000)
    _png(client.get(f"/jobs/{experiment['jobs'][0]['id']}/plot.png"), 1000)


def test_the_models_pictures(client, experiment):
    model = client.get(f"/jobs/{experiment['jobs'][0]['id']}").json()["result"]["model"]
    confusion = client.get(f"/models/{model}/confusion").json()
    matrix = confusion["matrix"]
    assert len(confusion["classes"]) == len(matrix) == 6
    trace, total = sum(matrix[i][i] for i in range(6)), sum(map(sum, matrix))
    assert total == 6 and trace / total == pytest.approx(experiment["jobs"][0]["best_val_acc"])
    _png(client.get(f"/models/{model}/confusion.png"))
    _png(client.get(f"/models/{model}/cam.png", params={"video": "S2/lift_cup/1"}))
    heads = _png(client.get(f"/models/{model}/heads.png", params={"video": "S2/lift_cup/1"}))
    assert heads.size[1] > 900  # motion maps (3 rows) and next frames (4 rows)
    missing = client.get(f"/models/{model}/cam.png", params={"video": "S2/lift_cup/99"})
    assert missing.status_code == 404 and "S2/lift_cup/99" in missing.json()["detail"]


SEARCH_BASE = {**TINY, "preset": "egornn-attention", "image_size": 32, "stages": [{"epochs": 5}, None]}
LR = {"low": 1e-6, "high": 1e-2, "log": True}


@pytest.fixture(scope="module")
def search(client, two_train_workers) -> dict:
    """A grid of two stage-1 learning rates, then a search of 8 over the same range."""
    grid = client.post("/experiments", json={"name": "the grid a search should beat", "base": SEARCH_BASE,
                                             "grid": {"stages.0.lr": [1e-3, 1e-5]}}).json()
    body = {"name": "search: stage-1 lr", "base": SEARCH_BASE,
            "search": {"trials": 8, "parallel": 2, "space": {"stages.0.lr": LR}, "pruner": "median", "seed": 3}}
    r = client.post("/experiments", json=body, headers={"Idempotency-Key": "search-1"})
    assert r.status_code == 202, r.text
    exp = r.json()
    assert exp["search"]["method"] == "tpe" and len(exp["jobs"]) == 2 and exp["progress"]["total"] == 8
    assert client.post("/experiments", json=body, headers={"Idempotency-Key": "search-1"}).json()["id"] == exp["id"]
    done = wait_experiment(client, exp["id"], timeout_s=400)
    return {"grid": wait_experiment(client, grid["id"]), "search": done}


def test_a_search_prunes_hopeless_trials_and_beats_the_worst_grid_row(client, search):
    done, grid = search["search"], search["grid"]
    assert done["status"] == "succeeded" and sorted(j["trial"] for j in done["jobs"]) == list(range(8)), done["jobs"]
    assert done["progress"] == {"ended": 8, "total": 8}
    pruned = [j for j in done["jobs"] if j["reason"] == "pruned"]
    assert pruned, [(j["point"], j["status"], j["best_val_acc"]) for j in done["jobs"]]
    for j in pruned:
        job = client.get(f"/jobs/{j['id']}").json()
        assert job["status"] == "cancelled" and job["reason"] == "pruned" and len(job["metrics"]) < 5, job
    ended = [j for j in done["jobs"] if j["status"] == "succeeded"]
    assert all(LR["low"] <= j["point"]["stages.0.lr"] <= LR["high"] for j in done["jobs"])
    means = [row["mean"] for row in done["table"]]  # best first, pruned trials (no mean) last
    assert means[:len(ended)] == sorted((j["best_val_acc"] for j in ended), reverse=True)
    assert done["table"][0]["mean"] >= min(row["mean"] for row in grid["table"]), (done["table"], grid["table"])
    md = client.get(f"/experiments/{done['id']}/table", params={"format": "md"}).text
    assert md.startswith("| stages.0.lr | trials | mean | std |"), md


def test_a_search_s_picture_shows_each_trial_and_the_best_so_far(client, search, tmp_path):
    image = _png(client.get(f"/experiments/{search['search']['id']}/plot.png"), 1200)
    folder = Path(os.environ.get("FPAR_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    image.save(folder / "search.png")


def test_bad_grids_are_refused_before_anything_is_queued(client, two_train_workers):
    before = {j["id"] for j in client.get("/jobs", params={"kind": "train", "limit": 500}).json()["jobs"]}
    bad = client.post("/experiments", json={"name": "typo", "base": BASE, "grid": {"stages.1.lrr": [1e-4, 1e-3]}})
    assert bad.status_code == 422 and bad.json()["errors"][0]["loc"] == ["grid", "stages.1.lrr"], bad.text
    value = client.post("/experiments", json={"name": "neg", "base": BASE, "grid": {"stages.1.lr": [1e-4, -1]}})
    assert value.status_code == 422 and "stages.1.lr = -1" in value.json()["detail"]
    huge = client.post("/experiments", json={"name": "big", "base": BASE, "grid": {"seed": list(range(50)),
                                             "frames": [4, 5]}, "trials": 3})
    assert huge.status_code == 422 and "FPAR_MAX_EXPERIMENT_JOBS" in huge.json()["detail"]
    searching = {"name": "s", "base": BASE, "search": {"space": {"stages.1.lr": {"low": 1e-4, "high": 20}}}}
    high = client.post("/experiments", json=searching)
    assert high.status_code == 422 and high.json()["errors"][0]["loc"] == ["search", "space", "stages.1.lr"], high.text
    repeated = client.post("/experiments", json={**searching, "trials": 3})
    assert repeated.status_code == 422 and repeated.json()["errors"][0]["loc"][-1] == "trials", repeated.text
    upside_down = client.post("/experiments", json={**searching, "search": {"space": {"stages.1.lr": {
        "low": 1e-2, "high": 1e-4}}}})
    assert upside_down.status_code == 422 and "low must be below high" in upside_down.text, upside_down.text
    after = {j["id"] for j in client.get("/jobs", params={"kind": "train", "limit": 500}).json()["jobs"]}
    assert after == before


def test_cancel_stops_the_shared_stage_and_every_child(client, two_train_workers):
    body = {"name": "to cancel", "base": {**BASE, "stages": [{"epochs": 50}, {"epochs": 50}]},
            "grid": {"stages.1.lr": [1e-4, 1e-3], "frames": [4, 5]}}
    key = {"Idempotency-Key": "cancel-me-1"}
    exp = client.post("/experiments", json=body, headers=key).json()
    again = client.post("/experiments", json=body, headers=key)  # a retry: the same experiment, queued once
    assert again.status_code == 202 and again.json()["id"] == exp["id"]
    other = client.post("/experiments", json={**body, "name": "another"}, headers=key)
    assert other.status_code == 422 and other.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]
    assert len(exp["shared"]) == 2 and [len(s["dependants"]) for s in exp["shared"]] == [2, 2]  # one per frames
    wait_for(client, exp["shared"][0]["id"], statuses=("running",), timeout_s=60)
    r = client.post(f"/experiments/{exp['id']}/cancel")
    assert r.status_code == 202
    done = wait_experiment(client, exp["id"], timeout_s=60)
    assert done["status"] == "cancelled" and {j["status"] for j in done["jobs"]} == {"cancelled"}
    assert {s["status"] for s in done["shared"]} == {"cancelled"}
    cost = done["cost"]
    assert (cost["naive_epochs"], cost["planned_epochs"]) == (4 * 100, 2 * 50 + 4 * 50)
    assert cost["trained_epochs"] < 50
    assert client.post(f"/experiments/{exp['id']}/cancel").status_code == 409
    assert client.get("/experiments/ex_nope").status_code == 404
