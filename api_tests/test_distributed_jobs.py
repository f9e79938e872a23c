"""Trainings over several processes through the service: `devices` 2 on this CPU (gloo).
A cancel ends every rank; a killed worker's ranks die with it and the next worker resumes
the training on two ranks; a killed rank fails the job with the reason; no rank process
outlives any of it. (Two ranks train what one process trains: tests/test_distributed.py.)"""
import signal

import psutil

from stack_helpers import tiny_train, until, wait_for

LONG = {**tiny_train(epochs=(40,)), "image_size": 32, "frames": 2, "devices": 2}


def _ranks(stack) -> list[psutil.Process]:
    """The train worker's rank processes (spawned by fpar_models.distributed.launch)."""
    worker = psutil.Process(stack.procs["worker-train"].pid)
    return [p for p in worker.children() if "spawn_main" in " ".join(p.cmdline())]


def _training(client, stack, body) -> tuple[str, list[psutil.Process]]:
    """A job that has trained an epoch on two ranks, and its ranks."""
    job_id = client.post("/train", json=body).json()["id"]
    until(lambda: client.get(f"/jobs/{job_id}").json()["metrics"], 120, "the first epoch's row")
    ranks = _ranks(stack)
    assert len(ranks) == 2, [p.cmdline() for p in ranks]
    return job_id, ranks


def _none_left(procs) -> bool:
    return not psutil.wait_procs(procs, timeout=30)[1]


def test_a_cancel_ends_every_rank(client, stack):
    job_id, ranks = _training(client, stack, LONG)
    client.post(f"/jobs/{job_id}/cancel")
    assert wait_for(client, job_id, timeout_s=60)["status"] == "cancelled"
    assert _none_left(ranks)


def test_a_killed_worker_s_ranks_die_the_next_resumes_and_a_killed_rank_fails_the_job(client, stack):
    job_id, ranks = _training(client, stack, LONG)
    old = stack.procs["worker-train"].pid
    stack.kill("worker-train")  # SIGKILL: its ranks die with it; the supervisor starts a new worker
    assert _none_left(ranks)
    resumed = until(lambda: (j := client.get(f"/jobs/{job_id}").json())["attempts"] == 2
                    and len(j["metrics"]) > 1 and j, 150, "the next worker resumes the training")
    assert stack.procs["worker-train"].pid != old
    epochs = [row["epoch"] for row in resumed["metrics"]]
    assert epochs == list(range(1, len(epochs) + 1))  # on from the last epoch, none trained twice
    ranks = until(lambda: len(r := _ranks(stack)) == 2 and r, 30, "the new worker's two ranks")
    ranks[1].send_signal(signal.SIGKILL)  # one rank dies: the group ends, the job fails with the reason
    job = wait_for(client, job_id, timeout_s=60)
    assert job["status"] == "failed" and job["error"]["type"] == "rank_lost", job
    assert "rank 1 of 2 ended with SIGKILL" in job["error"]["message"], job["error"]
    assert _none_left(ranks)
