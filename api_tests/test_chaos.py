"""Chaos at the scale users run: workers killed with SIGKILL every few seconds while an
experiment trains and predictions stream in, and a disk that fills up under a checkpoint.
Each runs on a stack of its own (its own Redis, workers and gateway)."""
import random
import shutil
import subprocess
import threading
import time

import httpx
import pytest

from fpar_models import checkpoint
from launcher import Stack, free_port
from launcher.stack import Worker

from stack_helpers import TINY, frames_of, tiny_train, wait_for

KILL_EVERY_S = 5


@pytest.fixture(scope="module")
def chaos_stack(tmp_path_factory):
    workers = [Worker("train1", "train"), Worker("train2", "train"), Worker("predict", "predict")]
    s = Stack.on_synthetic_data(tmp_path_factory.mktemp("chaos"), videos_per_class=1, workers=workers,
                                env={"FPAR_TORCH_THREADS": "1", "FPAR_HEARTBEAT_TIMEOUT_S": "8",
                                     "FPAR_MAX_ATTEMPTS": "100", "FPAR_PREDICT_TTL_S": "600"})
    s.start(timeout_s=120)
    supervisor = s.supervise_in_background()
    yield s
    supervisor.set()
    s.stop()


def _epochs(job: dict) -> list[tuple[int, int]]:
    return [(row["stage"], row["epoch"]) for row in job["metrics"]]


def test_an_experiment_and_predictions_survive_workers_killed_every_few_seconds(chaos_stack):
    s = chaos_stack
    with httpx.Client(base_url=s.url, timeout=120) as c:
        small = {"image_size": 32, "frames": 2}
        model = wait_for(c, c.post("/train", json=tiny_train(**small)).json()["id"])["result"]["model"]
        base = {**TINY, **small, "preset": "egornn-attention", "stages": [{"epochs": 2}, {"epochs": 2}]}
        exp = c.post("/experiments", json={"name": "chaos", "base": base, "grid": {"stages.1.lr": [1e-3, 1e-4]},
                                           "trials": 2}).json()
        assert len(exp["jobs"]) == 4 and len(exp["shared"]) == 2  # a stage 1 per seed, two children on each

        answers, stop = [], threading.Event()

        def predict_stream():
            with httpx.Client(base_url=s.url, timeout=120) as p:
                while not stop.is_set():
                    r = p.post("/predict", files=frames_of(s, count=3), data={"model": model})
                    answers.append(r.json()["id"])
                    time.sleep(0.3)

        streamer = threading.Thread(target=predict_stream)
        streamer.start()
        rng, kills = random.Random(7), []
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            state = c.get(f"/experiments/{exp['id']}").json()["status"]
            if state in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(KILL_EVERY_S)
            victim = rng.choice(["worker-train1", "worker-train2", "worker-predict"])
            if s.procs[victim].poll() is None:
                s.kill(victim)
                kills.append(victim)
        stop.set()
        streamer.join()
        print(f"\n{len(kills)} workers killed ({', '.join(sorted(set(kills)))}), {len(answers)} predictions sent")

        done = c.get(f"/experiments/{exp['id']}").json()
        assert done["status"] == "succeeded", done["jobs"]
        assert {j["status"] for j in done["jobs"]} == {"succeeded"}
        want = [(1, 1), (1, 2), (2, 1), (2, 2)]
        shared = {x["id"]: c.get(f"/jobs/{x['id']}").json() for x in done["shared"]}
        for j in done["jobs"]:
            job = c.get(f"/jobs/{j['id']}").json()
            assert _epochs(job) == want, (j["id"], _epochs(job), job["attempts"])  # one row per epoch, in order
            # stage 1 is its shared stage's, trained once however often that one's worker died
            first = shared[j["after"]]
            assert _epochs(first) == want[:2] and job["metrics"][0]["from_model"] == first["result"]["model"]
            assert [r["val_acc"] for r in job["metrics"][:2]] == [r["val_acc"] for r in first["metrics"]]
        for row in done["table"]:  # the table is its children's
            accs = [j["best_val_acc"] for j in done["jobs"] if j["point"] == row["point"]]
            assert row["trials"] == 2 and row["mean"] == pytest.approx(sum(accs) / 2)
        every = [c.get(f"/jobs/{x['id']}").json() for x in (*done["jobs"], *done["shared"])]
        assert kills and sum(j["attempts"] > 1 for j in every) >= 1

        for job_id in answers:  # every prediction answered
            assert wait_for(c, job_id, timeout_s=120)["status"] == "succeeded", job_id
        for status in ("queued", "running"):
            assert c.get("/jobs", params={"status": status}).json()["jobs"] == []


@pytest.fixture
def small_disk(tmp_path):
    """A 200 MB tmpfs: one checkpoint of this model fits beside the best epoch's, a third does not."""
    mount = tmp_path / "models"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_fails_the_job_clearly_and_keeps_the_last_checkpoint(tmp_path, small_disk):
    from fpar_models.data import synthetic

    synthetic.generate(tmp_path / "data" / "synthetic", videos_per_class=1)
    s = Stack(tmp_path / "data", small_disk, port=free_port(), run_dir=tmp_path / "run", log_dir=tmp_path / "logs",
              workers=[Worker("train", "train")], env={"FPAR_TORCH_THREADS": "1"})
    s.start(timeout_s=120)
    try:
        with httpx.Client(base_url=s.url, timeout=60) as c:
            body = {**TINY, "preset": "egornn-attention", "image_size": 32, "stages": [{"epochs": 20}, None]}
            job = wait_for(c, c.post("/train", json=body).json()["id"], timeout_s=240)
        assert job["status"] == "failed" and job["error"]["type"] == "disk_full", job["error"]
        assert "no space left" in job["error"]["message"] and job["metrics"], job["error"]
        last = checkpoint.load(small_disk / "runs" / job["id"] / "last.pt", checkpoint.TRAINING_FORMAT)
        assert last["state"]["epoch"] == len(job["metrics"])  # the previous checkpoint, whole and loadable
        assert not [p for p in (small_disk / "runs" / job["id"]).iterdir() if p.name.startswith(".")]
    finally:
        s.stop()
        shutil.rmtree(tmp_path / "logs", ignore_errors=True)

