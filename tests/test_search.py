"""Searches: the request and its space, and the driver against a real Redis (Optuna's journal
in it, real Celery messages): trials asked while fewer than `parallel` run, told as they
end, the grid's points first, pruning decided from the reported epochs."""
import pytest
import redis
from pydantic import ValidationError

from core import search
from core.store import Stores
from core.store.records import ExperimentRecord
from core.tasks import TaskQueue
from fpar_models.experiment import ExperimentRequest, GridError, check_search
from fpar_models.search import SearchRequest

BASE = {"preset": "egornn-attention", "pretrained": "none", "stages": [{"epochs": 4}, None]}
SPACE = {"stages.0.lr": {"low": 1e-5, "high": 1e-2, "log": True}, "batch_size": [4, 8]}


def _request(**search) -> ExperimentRequest:
    return ExperimentRequest.model_validate({"name": "s", "base": BASE, "search": {"space": SPACE, **search}})


@pytest.mark.parametrize("space, words", [
    ({"stages.0.lr": {"low": 1e-2, "high": 1e-5}}, "low must be below high"),
    ({"stages.0.lr": {"low": 0, "high": 1e-2, "log": True}}, "log range needs low > 0"),
    ({"frames": {"low": 4, "high": 8.5, "type": "int"}}, "whole low and high"),
    ({"stages.0.milestones": [[1, 2], [3]]}, "Input should be"),
])
def test_a_bad_space_is_refused(space, words):
    with pytest.raises(ValidationError, match=words):
        SearchRequest(space=space)


def test_a_search_request_and_its_space():
    request = _request(trials=6)
    dims = request.search.distributions()
    assert dims["stages.0.lr"].log and dims["batch_size"].choices == (4, 8)
    assert request.columns == ["stages.0.lr", "batch_size"]
    assert len(request.search.corners()) == 4
    with pytest.raises(ValidationError) as e:
        ExperimentRequest.model_validate({"name": "s", "base": BASE, "trials": 3, "search": {"space": SPACE}})
    assert e.value.errors()[0]["loc"] == ("trials",)
    with pytest.raises(ValidationError) as e:
        ExperimentRequest.model_validate({"name": "s", "base": BASE, "grid": {"frames": [4, 8]},
                                          "search": {"space": SPACE}})
    assert e.value.errors()[0]["loc"] == ("search", "space")
    too_high = ExperimentRequest.model_validate({"name": "s", "base": BASE, "search": {
        "space": {"stages.0.lr": {"low": 1e-3, "high": 20}}}})
    with pytest.raises(GridError) as g:
        check_search(too_high, 200)
    assert g.value.loc == ["search", "space", "stages.0.lr"] and "less than or equal to 10" in str(g.value)


@pytest.fixture
def stores(redis_url):
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    return Stores.over(client)


def _finish(stores, redis_url, job_id, val_accs, status="succeeded"):
    """A trial's job as its worker runs it: an epoch reported at a time, then its end."""
    jobs = stores.jobs
    jobs.claim(job_id, "w", heartbeat_timeout_s=30)
    trial = search.trial_of(stores, jobs.get(job_id))
    for epoch, acc in enumerate(val_accs, 1):
        jobs.add_metrics(job_id, {"stage": 1, "epoch": epoch, "val_acc": acc})
        search.report(stores, redis_url, trial, epoch, acc)
    jobs.finish(job_id, status, result={"best_val_acc": max(val_accs)} if status == "succeeded" else None)


def test_the_driver_asks_tells_and_prunes(stores, redis_url):
    request = ExperimentRequest.model_validate({"name": "s", "base": BASE, "points": [{"stages.0.lr": 1e-3}],
                                                "search": {"space": {"stages.0.lr": SPACE["stages.0.lr"]},
                                                           "trials": 4, "parallel": 2, "startup_trials": 2}})
    record = ExperimentRecord(id="ex_s1", name="s", created_at=1.0, base=BASE, grid={}, points=request.points,
                              trials=1, children=[], search=request.search)
    queue = TaskQueue(redis_url)
    search.start(stores, queue, redis_url, record, check_search(request, 200))
    exp = stores.experiments.get("ex_s1")
    assert [j.trial for j in exp.jobs] == [0, 1] and exp.jobs[0].point == {"stages.0.lr": 1e-3}  # the point first
    assert stores.client.llen("train") == 2 and exp.status == "queued" and exp.progress.total == 4
    assert stores.jobs.get(exp.jobs[1].id).request["stages"][0]["lr"] == exp.jobs[1].point["stages.0.lr"]

    search.advance(stores, queue, redis_url, "ex_s1")  # two running: nothing more to ask
    assert len(stores.experiments.get("ex_s1").jobs) == 2
    _finish(stores, redis_url, exp.jobs[0].id, [0.2, 0.5, 0.6])
    _finish(stores, redis_url, exp.jobs[1].id, [0.3, 0.4, 0.5])
    search.advance(stores, queue, redis_url, "ex_s1")
    exp = stores.experiments.get("ex_s1")
    assert [j.trial for j in exp.jobs] == [0, 1, 2, 3] and stores.client.llen("train") == 4
    assert exp.status == "running" and exp.table[0]["mean"] == 0.6  # the best first

    third = search.trial_of(stores, stores.jobs.get(exp.jobs[2].id))
    assert third == search.Trial("ex_s1", 2)
    assert not search.report(stores, redis_url, third, 1, 0.3)  # above the median of 0.2 and 0.3: goes on
    assert search.report(stores, redis_url, third, 2, 0.1)  # its best (0.3) below the median (0.45): pruned
    stores.jobs.set_reason(exp.jobs[2].id, "pruned")
    stores.jobs.claim(exp.jobs[2].id, "w", heartbeat_timeout_s=30)
    stores.jobs.finish(exp.jobs[2].id, "cancelled")
    _finish(stores, redis_url, exp.jobs[3].id, [0.7])
    search.advance(stores, queue, redis_url, "ex_s1")
    exp = stores.experiments.get("ex_s1")
    assert exp.status == "succeeded" and exp.jobs[2].reason == "pruned" and exp.progress.ended == 4
    assert [r["mean"] for r in exp.table] == [0.7, 0.6, 0.5, None]
    assert stores.experiments.searching() == []
    study = search.optuna.load_study(study_name="ex_s1", storage=search.storage(redis_url))
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "PRUNED", "COMPLETE"]
    assert study.best_value == 0.7


@pytest.mark.parametrize("method, pruner", [("tpe", "asha"), ("random", None), ("random", "median")])
def test_every_sampler_and_pruner_runs_a_study(method, pruner):
    spec = SearchRequest(method=method, pruner=pruner, space=SPACE, trials=6, startup_trials=1)
    study = search.optuna.create_study(direction="maximize", pruner=spec.make_pruner())
    seen = []
    for n in range(6):
        study.sampler = spec.sampler(n)
        trial = study.ask(spec.distributions())
        seen.append(trial.params["stages.0.lr"])
        for step in (1, 2, 3):  # later trials do worse: a pruner that prunes at all prunes them
            trial.report(0.5 - 0.05 * n, step)
            if trial.should_prune():
                study.tell(trial, state=search.TrialState.PRUNED)
                break
        else:
            study.tell(trial, 0.5 - 0.05 * n)
    assert len(set(seen)) == 6 and all(1e-5 <= v <= 1e-2 for v in seen)  # a seed per ask: no point twice
    states = {t.state.name for t in study.trials}
    assert ("PRUNED" in states) == (pruner is not None), states
