"""Load and limits: many concurrent predictions all answered right, a full queue says
429, Redis memory stays bounded, and Idempotency-Key makes retries safe."""
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import redis

from launcher import free_port

from stack_helpers import frames_of, tiny_train, until, wait_for

CLIPS = [("S2", "lift_cup"), ("S2", "lower_ball"), ("S2", "open_box"), ("S4", "close_box")]


def test_256_predictions_from_32_clients_all_answered_right(client, stack, trained):
    files = [frames_of(stack, user, action) for user, action in CLIPS]
    expected = []
    for f in files:
        r = client.post("/predict", files=f, data={"wait": "30", "top_k": "3"})
        expected.append(r.json()["result"]["top_k"])

    def one(i: int):
        with httpx.Client(base_url=stack.url, timeout=120) as c:
            r = c.post("/predict", files=files[i % len(files)], data={"wait": "60", "top_k": "3"})
            return i, r.status_code, r.json()

    with ThreadPoolExecutor(32) as pool:
        answers = list(pool.map(one, range(256)))  # 8 rounds of 32 at once
    assert [status for _, status, _ in answers].count(200) == 256
    for i, _, job in answers:
        want = expected[i % len(files)]
        got = job["result"]["top_k"]
        assert [x["label"] for x in got] == [x["label"] for x in want]
        assert [x["probability"] for x in got] == pytest.approx([x["probability"] for x in want], abs=1e-4)
    assert len({job["id"] for _, _, job in answers}) == 256
    r = redis.Redis.from_url(stack.redis_url)
    sizes = [int(r.hget(f"fpar:job:{job['id']}", "batch_size")) for _, _, job in answers]
    assert max(sizes) > 1  # concurrent requests shared forward passes (dynamic batching)
    assert max(sizes) <= 8  # FPAR_PREDICT_MAX_BATCH


@pytest.fixture(scope="module")
def limited(stack):
    """A second gateway on the same Redis with a queue limit of 3 (gateways keep no state)."""
    url = stack.add_gateway("gateway-limited", free_port(), {"FPAR_QUEUE_LIMIT": "3"})
    yield url
    stack.remove("gateway-limited")


def test_a_full_queue_answers_429_and_accepted_jobs_complete(limited, stack, trained):
    files = frames_of(stack, count=4)

    def one(_):
        with httpx.Client(base_url=limited, timeout=60) as c:
            return c.post("/predict", files=files)

    with ThreadPoolExecutor(16) as pool:
        replies = list(pool.map(one, range(48)))
    refused = [r for r in replies if r.status_code == 429]
    accepted = [r for r in replies if r.status_code == 202]
    outliers = [(r.status_code, r.text[:300]) for r in replies if r.status_code not in (202, 429)]
    assert not outliers, outliers
    assert refused and accepted
    assert all(r.headers["retry-after"].isdigit() and r.headers["content-type"] == "application/problem+json"
               for r in refused)
    with httpx.Client(base_url=limited, timeout=60) as c:
        for r in accepted:
            assert wait_for(c, r.json()["id"], timeout_s=120)["status"] == "succeeded"


def test_redis_memory_stays_bounded(client, stack, trained):
    job = client.post("/predict", files=frames_of(stack), data={"wait": "30"}).json()
    assert job["status"] == "succeeded"
    r = redis.Redis.from_url(stack.redis_url)
    assert 0 < r.ttl(f"fpar:job:{job['id']}") <= 600  # FPAR_PREDICT_TTL_S in the test stack
    spool = stack.data_dir / ".frames"
    until(lambda: not (spool / job["id"]).exists(), 5, "the frames go as soon as the job ends", every_s=0.02)
    assert not list(r.scan_iter("fpar:frames:*"))  # and never were in Redis
    assert 0 < r.ttl(f"fpar:job:{job['id']}:done") <= 120
    assert not list(r.scan_iter("celery-task-meta-*"))  # no Celery result backend
    queued = client.post("/predict", files=frames_of(stack)).json()
    assert wait_for(client, queued["id"])["status"] == "succeeded"
    until(lambda: not (spool / queued["id"]).exists(), 5, "a queued prediction's frames gone once it ended",
          every_s=0.02)
    train_job = r.ttl(f"fpar:job:{trained['id']}")
    assert train_job == -1  # training records are kept: they are the experiment log


def test_idempotency_key_returns_the_same_job(client, stack, trained):
    body = tiny_train(epochs=(1, 1))
    first = client.post("/train", json=body, headers={"Idempotency-Key": "exp-42"})
    again = client.post("/train", json=body, headers={"Idempotency-Key": "exp-42"})
    assert first.status_code == again.status_code == 202
    assert first.json()["id"] == again.json()["id"]
    other = client.post("/train", json={**body, "seed": 7}, headers={"Idempotency-Key": "exp-42"})
    assert other.status_code == 422 and "Idempotency-Key" in other.text

    files = frames_of(stack, count=3)
    p1 = client.post("/predict", files=files, data={"wait": "30"}, headers={"Idempotency-Key": "p-1"})
    p2 = client.post("/predict", files=files, data={"wait": "30"}, headers={"Idempotency-Key": "p-1"})
    assert p1.json()["id"] == p2.json()["id"] and p2.status_code == 200
    p3 = client.post("/predict", files=frames_of(stack, count=2), headers={"Idempotency-Key": "p-1"})
    assert p3.status_code == 422
    assert wait_for(client, first.json()["id"], timeout_s=180)["status"] == "succeeded"
