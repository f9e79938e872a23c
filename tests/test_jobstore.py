"""The job store's state machine, against a real Redis: transitions are atomic and only
go forward, claims never run a job twice, the reaper sends a dead worker's job again,
cancels or fails it."""
import time

import pytest
import redis

from core.store import Stores, keys
from core.store.experiments import experiment_status as status
from core.store.jobs import Ending
from core.store.records import JobKind, JobStatus
from service.idempotency import claim as idem_claim
from service.idempotency import fingerprint


@pytest.fixture
def stores(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return Stores.over(client, predict_ttl_s=60)


@pytest.fixture
def store(stores):
    return stores.jobs


def test_a_job_goes_forward_only(store):
    job = store.create("train", {"x": 1})
    assert store.get(job).status == "queued"
    assert store.claim(job, "w1", heartbeat_timeout_s=30) == "ok"
    assert store.finish(job, "succeeded", result={"model": "m"}) == "ok"
    assert store.finish(job, "failed") == "succeeded"  # a second terminal state is refused
    assert store.transition(job, "running", ("queued",)) == "succeeded"
    assert store.claim(job, "w2", heartbeat_timeout_s=30) == "succeeded"
    record = store.get(job)
    assert record.status == "succeeded" and record.result == {"model": "m"} and record.attempts == 1
    assert store.list(kind="train", status="succeeded", limit=10)[0][0].id == job
    assert store.list(kind="train", status="running", limit=10)[0] == []


def test_claims_take_queued_or_abandoned_jobs_only(store):
    job = store.create("train", {})
    assert store.claim(job, "w1", heartbeat_timeout_s=30) == "ok"
    assert store.claim(job, "w2", heartbeat_timeout_s=30) == "running"  # alive elsewhere: hands off
    store.r.hset(keys.job(job).record, "heartbeat", time.time() - 60)
    assert store.claim(job, "w2", heartbeat_timeout_s=30) == "ok"  # its worker went silent
    assert store.get(job).attempts == 2 and store.get(job).worker == "w2"
    assert store.claim("tr_missing", "w1", heartbeat_timeout_s=30) == "missing"


def test_reaper_sends_a_dead_workers_job_again_then_fails_it_and_honours_cancel(store):
    job = store.create("train", {})
    store.claim(job, "w1", heartbeat_timeout_s=30)
    assert store.reap(job, heartbeat_timeout_s=30, max_attempts=2) == "alive"
    store.r.hset(keys.job(job).record, "heartbeat", 0)
    assert store.reap(job, heartbeat_timeout_s=30, max_attempts=2) == "requeued"
    assert store.get(job).status == "running"  # never backwards: released for the next worker
    assert store.reap(job, heartbeat_timeout_s=30, max_attempts=2) == "released"  # its task is sent once
    assert store.claim(job, "w2", heartbeat_timeout_s=30) == "ok"
    assert store.get(job).released is False and store.get(job).attempts == 2
    store.r.hset(keys.job(job).record, "heartbeat", 0)
    assert store.reap(job, heartbeat_timeout_s=30, max_attempts=2) == "failed"
    assert store.get(job).error["type"] == "worker_lost"
    assert store.r.lrange(keys.job(job).done, 0, -1) == [b"failed"]  # waiters wake up

    asked = store.create("train", {})
    store.claim(asked, "w1", heartbeat_timeout_s=30)
    assert store.cancel(asked) == "requested"
    store.r.hset(keys.job(asked).record, "heartbeat", 0)
    assert store.reap(asked, heartbeat_timeout_s=30, max_attempts=5) == "cancelled"

    for ask_before_reaper in (True, False):  # a cancel while no worker holds the job ends it at once
        held = store.create("train", {})
        store.claim(held, "w1", heartbeat_timeout_s=30)
        store.r.hset(keys.job(held).record, "heartbeat", 0)
        if ask_before_reaper:  # asked, then its worker died before the next batch: the next claim ends it
            assert store.cancel(held) == "requested"
            assert store.claim(held, "w2", heartbeat_timeout_s=30) == "cancelled"
        else:
            assert store.reap(held, heartbeat_timeout_s=30, max_attempts=5) == "requeued"
            assert store.cancel(held) == "stopped"
            assert store.claim(held, "w2", heartbeat_timeout_s=30) == "cancelled"  # the task sent again finds it ended
        record = store.get(held)
        assert record.status == "cancelled" and record.finished_at and record.attempts == 1
        assert store.r.lrange(keys.job(held).done, 0, -1) == [b"cancelled"]


def test_cancel_outcomes(store):
    queued = store.create("train", {})
    assert store.cancel(queued) == "stopped" and store.get(queued).status == "cancelled"
    assert store.claim(queued, "w", heartbeat_timeout_s=30) == "cancelled"  # a cancelled job never starts
    running = store.create("train", {})
    store.claim(running, "w", heartbeat_timeout_s=30)
    assert store.cancel(running) == "requested" and store.cancel_requested(running)
    assert store.cancel(queued) == "cancelled"
    assert store.cancel("nope") == "missing"


def test_listing_pages_newest_first_and_forgets_expired_jobs(store):
    ids = [store.create("predict", {"model": "m"}) for _ in range(5)]
    store.r.delete(f"fpar:job:{ids[2]}")  # as if its TTL ran out
    first, more = store.list(kind="predict", status=None, limit=2)
    assert [j.id for j in first] == [ids[4], ids[3]] and more is not None
    second, end = store.list(kind="predict", status=None, limit=10, before=more)
    assert [j.id for j in second] == [ids[1], ids[0]] and end is None
    assert store.r.zscore(keys.index("all"), ids[2]) is None
    assert store.r.ttl(f"fpar:job:{ids[0]}") > 0


def test_waiters_all_wake_and_the_token_expires(store):
    job = store.create("predict", {"model": "m"})
    store.claim(job, "w", heartbeat_timeout_s=30)
    store.finish(job, "succeeded", result={})
    store.r.hset(keys.job(job).record, "status", "running")  # force the blocking path
    start = time.monotonic()
    assert store.wait_done(job, 5).status == "running"  # the record read with the token put back
    assert store.wait_done(job, 5, queued_now=True).result == {}  # a second waiter finds the token
    assert time.monotonic() - start < 1
    assert 0 < store.r.ttl(keys.job(job).done) <= 120


def test_a_prediction_is_answered_as_queued_however_fast_its_worker(stores):
    store, queue = stores.jobs, stores.predictions
    queue.join()
    job = store.create_prediction({"model": "m"}, "pr_fast")
    assert [job_id for _, job_id in queue.read("w", 10, None)] == ["pr_fast"]
    assert store.claim_many(["pr_fast"], "w", heartbeat_timeout_s=30) == ["ok"]
    assert (job.id, job.status, job.request) == ("pr_fast", "queued", {"model": "m"})  # as written, not as now
    assert store.get("pr_fast").status == "running"


def test_a_wait_answers_the_job_as_it_is(store):
    job = store.create("predict", {"model": "m"})
    assert store.wait_done(job, 0).status == "queued"  # no wait: as it is now
    start = time.monotonic()
    assert store.wait_done(job, 0.2, queued_now=True).status == "queued"  # no end token: the timeout
    assert time.monotonic() - start >= 0.2
    store.claim(job, "w", heartbeat_timeout_s=30)
    store.finish(job, "succeeded", result={"top_k": []})
    store.r.delete(keys.job(job).done)
    assert store.wait_done(job, 5).result == {"top_k": []}  # ended: answered without a token
    assert store.wait_done("pr_gone", 5) is None


def test_predictions_are_queued_with_their_jobs_read_once_in_batches_and_settled(stores):
    store, queue = stores.jobs, stores.predictions
    queue.join()
    queue.join()  # a second worker joining the group is no error
    request = {"model": "m1", "top_k": 5, "explain": False}
    ids = [store.create("predict", request) for _ in range(3)]
    first = queue.read("w1", 2, None)
    assert [job for _, job in first] == ids[:2]
    assert [job for _, job in queue.read("w2", 5, None)] == ids[2:]  # another reader gets the rest
    assert queue.read("w1", 5, None) == [] and queue.depth() == 3
    store.cancel(ids[1])
    asked = store.prediction_requests(*ids[:2], "pr_missing")
    assert [(a.options and a.options.model, a.cancel) for a in asked] == [("m1", False), ("m1", False), (None, False)]
    assert store.get(ids[1]).status == "cancelled"  # queued: it ended at once; its entry is still read
    pipe = store.r.pipeline()
    queue.settle(pipe, [entry for entry, _ in first])
    pipe.execute()
    assert queue.depth() == 1


def test_entries_a_dead_reader_left_are_taken_over_and_claims_tell_what_to_run(stores):
    store, queue = stores.jobs, stores.predictions
    queue.join()
    done, fresh = store.create("predict", {"model": "m"}), store.create("predict", {"model": "m"})
    queue.read("dead", 5, None)
    assert store.claim_many([done], "dead", heartbeat_timeout_s=30) == ["ok"]
    store.finish_many([Ending(done, JobStatus.succeeded, {"top_k": []}, batch_size=1)])
    time.sleep(0.05)
    taken = queue.take_over("alive", idle_ms=20)
    assert [job for _, job in taken] == [done, fresh]
    assert store.claim_many([done, fresh, "pr_missing"], "alive", heartbeat_timeout_s=30) == \
        ["succeeded", "ok", "missing"]
    assert store.get(done).batch_size == 1
    queue.add(fresh)  # the reaper's resend: a second entry, which a claim will refuse to run twice
    assert store.claim_many([fresh], "alive", heartbeat_timeout_s=30) == ["running"]


def test_a_batch_ends_in_one_pipeline_even_after_redis_forgot_the_scripts(store):
    ids = [store.create("predict", {"model": "m"}) for _ in range(3)]
    assert store.claim_many(ids, "w", heartbeat_timeout_s=30) == ["ok"] * 3
    store.r.script_flush()  # as after a Redis restart
    endings = [Ending(ids[0], JobStatus.succeeded, {"a": 1}), Ending(ids[1], JobStatus.failed, error={"m": "x"}),
               Ending(ids[2], JobStatus.cancelled)]
    assert store.finish_many(endings, after=lambda pipe: pipe.incr("after")) == ["ok"] * 3
    assert store.r.get("after") == b"1"  # what comes after the scripts (acks, say) ran once, with them
    assert store.r.lrange(keys.job(ids[0]).done, 0, -1) == [b"succeeded"]
    assert [store.get(i).status for i in ids] == ["succeeded", "failed", "cancelled"]
    assert store.get(ids[0]).result == {"a": 1} and store.get(ids[1]).error == {"m": "x"}


def test_idempotency_key(stores):
    fp = fingerprint({"a": 1})
    slots, jobs = stores.idempotency, stores.jobs
    assert idem_claim(slots, jobs, "train", "k1", fp, "tr_1", 60) is None
    jobs.create("train", {}, job_id="tr_1")
    assert idem_claim(slots, jobs, "train", "k1", fp, "tr_2", 60) == "tr_1"
    with pytest.raises(Exception, match="different request"):
        idem_claim(slots, jobs, "train", "k1", fingerprint({"a": 2}), "tr_3", 60)
    assert idem_claim(slots, jobs, "train", None, fp, "tr_4", 60) is None


def test_an_experiments_status_follows_its_children():
    assert status(["queued", "queued"], False) == "queued"
    assert status(["succeeded", "running"], False) == "running"
    assert status(["succeeded", "failed"], False) == "succeeded"
    assert status(["failed", "failed"], False) == "failed"
    assert status(["succeeded", "cancelled"], True) == "cancelled"
    # a shared stage runs while the children it starts wait: the experiment is running
    assert status(["queued", "queued"], False, ["running"]) == "running"
    assert status(["failed", "failed"], False, ["succeeded"]) == "failed"  # the children's outcome counts


def test_jobs_wait_for_the_job_they_start_from(store):
    shared = store.create("train", {})
    child = store.create("train", {}, after=shared)
    gone = store.create("train", {}, after="tr_none")
    assert [(j.id, before.id if before else None) for j, before in store.waiting()] == \
        [(child, shared), (gone, None)]
    assert store.get(child).after == shared
    store.unwait(child)
    assert [j.id for j, _ in store.waiting()] == [gone]
    assert store.end_queued(gone, "failed", error={"type": "prerequisite_failed"}) == "ok"
    assert store.get(gone).error == {"type": "prerequisite_failed"} and store.get(gone).finished_at
    assert store.end_queued(gone, "cancelled") == "failed"  # only a queued job
    store.r.delete(keys.job(gone).record)
    assert store.waiting() == []
    assert store.r.zcard(keys.WAITING) == 0  # a job that is gone leaves the set


def test_a_shared_stage_releases_its_dependants_as_it_ended(stores, redis_url):
    from core.settings import Settings
    from worker.app import WorkerApp

    app = WorkerApp(Settings(redis_url=redis_url))
    app.__dict__["stores"] = stores  # this test's Redis database, already flushed
    jobs = stores.jobs
    ok, lost, stopped = (jobs.create("train", {}) for _ in range(3))
    waiting = {name: jobs.create("train", {}, after=before)
               for name, before in (("ok", ok), ("lost", lost), ("stopped", stopped), ("running", ok))}
    app.release_waiting()
    assert jobs.r.llen("train") == 0 and len(jobs.waiting()) == 4  # nothing ended yet: all wait
    for job_id in (ok, lost):
        jobs.claim(job_id, "w", heartbeat_timeout_s=30)
    jobs.finish(ok, "succeeded")
    jobs.finish(lost, "failed", error={"type": "worker_lost", "message": "the worker died"})
    jobs.cancel(stopped)
    app.release_waiting()
    assert jobs.r.llen("train") == 2  # the two behind the succeeded one are sent (a real Celery message each)
    assert jobs.get(waiting["ok"]).status == "queued"
    failed = jobs.get(waiting["lost"])
    assert failed.status == "failed" and failed.error["type"] == "prerequisite_failed"
    assert lost in failed.error["message"] and "the worker died" in failed.error["message"]
    assert jobs.get(waiting["stopped"]).status == "cancelled"
    assert jobs.waiting() == []


def test_epochs_trained_count_the_rows_a_worker_added(store):
    job = store.create("train", {})
    store.reset_metrics(job, [{"epoch": 1, "from_model": "m_x"}])  # rows it starts with are not trained
    store.add_metrics(job, {"epoch": 2})
    store.add_metrics(job, {"epoch": 3})
    record = store.get(job)
    assert record.epochs_trained == 2 and [r["epoch"] for r in record.metrics] == [1, 2, 3]


def test_a_dataset_name_is_taken_once(stores):
    names = stores.datasets
    assert names.take("kitchen", "in_1") and names.take("kitchen", "in_1")  # a retry of the same job
    assert not names.take("kitchen", "in_2")
    assert names.get("kitchen").job == "in_1" and [d.name for d in names.all()] == ["kitchen"]
    names.forget("kitchen", "in_2")  # not the holder: kept
    assert names.get("kitchen") is not None
    names.forget("kitchen", "in_1")
    assert names.get("kitchen") is None and names.take("kitchen", "in_2")


def test_a_job_s_shares_are_leased_one_worker_each_and_their_rows_land_once(stores):
    shares = stores.shares
    assert shares.lease("in_1", 0, "w1", 5) and shares.lease("in_1", 0, "w1", 5)  # renewed by its holder
    assert not shares.lease("in_1", 0, "w2", 5)
    shares.mark_done("in_1", 0)
    assert shares.done("in_1") == {0} and shares.lease("in_1", 0, "w2", 5)  # done: its lease went
    assert shares.lease("in_1", 1, "w1", 0.05)
    time.sleep(0.1)
    assert shares.lease("in_1", 1, "w2", 5)  # a dead holder's lease expires

    job_id = stores.jobs.create(JobKind.timeline, {"video": "v.mp4"})
    rows = [{"index": 0, "start": 0.0}, {"index": 1, "start": 0.5}]
    assert shares.complete(job_id, 0, rows)
    assert not shares.complete(job_id, 0, rows)  # a second worker that computed it too adds nothing
    assert shares.complete(job_id, 1, [{"index": 2, "start": 1.0}]) and shares.done(job_id) == {0, 1}
    assert stores.jobs.get(job_id).windows is None  # not before the result: its event stream tells them
    assert stores.jobs.claim(job_id, "w1", 30) == "ok"
    stores.jobs.finish(job_id, JobStatus.succeeded, result={"segments": []})
    assert [w["index"] for w in stores.jobs.get(job_id).windows] == [0, 1, 2]
