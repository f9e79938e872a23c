"""Trainings over several processes through the service: `devices` 2 on this CPU (gloo).
A cancel ends every rank; a killed rank fails the job with the reason; no rank process
outlives either. (Two ranks train what one process trains: tests/test_distributed.py; a
killed worker's ranks die with it and another host resumes on two ranks:
test_object_store.py.)"""
import signal

import psutil

from stack_helpers import ranks_of, tiny_train, until, wait_for

LONG = {**tiny_train(epochs=(40,)), "image_size": 32, "frames": 2, "devices": 2}


def _training(client, stack) -> tuple[str, list[psutil.Process]]:
    """A job that has trained an epoch on two ranks, and its ranks."""
    job_id = client.post("/train", json=LONG).json()["id"]
    until(lambda: client.get(f"/jobs/{job_id}").json()["metrics"], 120, "the first epoch's row")
    ranks = ranks_of(stack)
    assert len(ranks) == 2, [p.cmdline() for p in ranks]
    return job_id, ranks


def _none_left(procs) -> bool:
    return not psutil.wait_procs(procs, timeout=30)[1]


def test_a_cancel_ends_every_rank(client, stack):
    job_id, ranks = _training(client, stack)
    client.post(f"/jobs/{job_id}/cancel")
    assert wait_for(client, job_id, timeout_s=60)["status"] == "cancelled"
    assert _none_left(ranks)


def test_a_killed_rank_fails_the_job_with_the_reason(client, stack):
    job_id, ranks = _training(client, stack)
    ranks[1].send_signal(signal.SIGKILL)  # one rank dies: the group ends, the job fails with the reason
    job = wait_for(client, job_id, timeout_s=60)
    assert job["status"] == "failed" and job["error"]["type"] == "rank_lost", job
    assert "rank 1 of 2 ended with SIGKILL" in job["error"]["message"], job["error"]
    assert _none_left(ranks)
