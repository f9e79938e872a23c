"""Searches: experiments whose points Optuna samples as their trials end (the request:
fpar_models.search).

Each search is an Optuna study kept in Redis as Optuna's own journal (JournalRedisBackend),
named by the experiment's id; the experiment's record lists each trial's training job as
it is created, `trial` being the study's trial number. Whoever is at hand advances a
search — the gateway when it accepts one, a worker when one of its trials ends, and every
worker's loop every few seconds, so a process that dies half-way leaves nothing undone —
and a lock lets one process at a time do it. Advancing tells Optuna how the ended trials
did and asks for new ones while fewer than `parallel` run.

Pruning is decided where the trial runs, as in an Optuna objective: after each epoch its
worker reports the validation accuracy and asks the pruner (`report`); a pruned trial's
job is cancelled with reason "pruned".
"""
from __future__ import annotations

import logging
import uuid
import warnings
from dataclasses import dataclass

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalRedisBackend
from optuna.trial import TrialState

from core.store import Stores, keys
from core.store.records import ExperimentChild, ExperimentRecord, JobKind, JobRecord, JobStatus, new_id
from core.tasks import TaskQueue
from fpar_models.experiment import GridError, point_config

log = logging.getLogger(__name__)
LOCK_S = 60  # longer than an advance takes; a process that died holding it is waited out


def storage(redis_url: str) -> JournalStorage:
    with warnings.catch_warnings():  # "experimental" since Optuna 3.1; the version is pinned
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return JournalStorage(JournalRedisBackend(redis_url, prefix="optuna:"))


def start(stores: Stores, queue: TaskQueue, redis_url: str, record: ExperimentRecord,
          first: list[dict]) -> None:
    """Create the study (its first trials: the request's grid and points), the experiment,
    and its first `parallel` trials."""
    study = optuna.create_study(storage=storage(redis_url), study_name=record.id, direction="maximize")
    for point in first:
        study.enqueue_trial(point)
    stores.experiments.create(record)
    stores.experiments.set_searching(record.id, True)
    advance(stores, queue, redis_url, record.id)


def advance(stores: Stores, queue: TaskQueue, redis_url: str, exp_id: str) -> None:
    """One round of the search, unless another process is doing one."""
    lock, token = keys.search_lock(exp_id), uuid.uuid4().hex
    if not stores.client.set(lock, token, nx=True, ex=LOCK_S):
        return
    try:
        _advance(stores, queue, redis_url, exp_id)
    finally:
        if stores.client.get(lock) == token.encode():
            stores.client.delete(lock)


def _advance(stores: Stores, queue: TaskQueue, redis_url: str, exp_id: str) -> None:
    experiments, jobs = stores.experiments, stores.jobs
    record = experiments.record(exp_id)
    if record is None or record.search is None:
        experiments.set_searching(exp_id, False)
        return
    spec, children = record.search, list(record.children)
    study = optuna.load_study(study_name=exp_id, storage=storage(redis_url))
    trials = study.get_trials(deepcopy=False)
    states = [jobs.get(child.id, metrics=False) for child in children]
    for child, job in zip(children, states):
        if trials[child.trial].state == TrialState.RUNNING and (job is None or job.ended):
            _tell(study, child.trial, job)
    running = sum(job is not None and not job.ended for job in states)
    while not record.cancel and len(children) < spec.trials and running < spec.parallel:
        study.sampler = spec.sampler(len(children))
        trial = study.ask(spec.distributions())
        child, queued = _create(stores, study, record, trial.number, trial.params)
        children.append(child)
        experiments.set_children(exp_id, children)  # before its task: its worker looks itself up there
        if queued:
            queue.send(JobKind.train, child.id)
            running += 1
    if (record.cancel or len(children) >= spec.trials) and running == 0:
        experiments.set_searching(exp_id, False)
        log.info("search %s ended: %d trials", exp_id, len(children))


def _tell(study: optuna.Study, number: int, job: JobRecord | None) -> None:
    value = (job.result or {}).get("best_val_acc") if job is not None else None
    if job is not None and job.status == JobStatus.succeeded and value is not None:
        study.tell(number, value)
    elif job is not None and job.reason == "pruned":
        study.tell(number, state=TrialState.PRUNED)
    else:
        study.tell(number, state=TrialState.FAIL)


def _create(stores: Stores, study: optuna.Study, record: ExperimentRecord, number: int,
            point: dict) -> tuple[ExperimentChild, bool]:
    """The trial's training job, queued (True); or failed at once when its point makes no
    valid config (a combination the space's checks at submit could not see)."""
    job_id = new_id(JobKind.train)
    try:
        _, cfg = point_config(record.base, point, lambda path: ["search", "space", path])
    except GridError as e:
        stores.jobs.create(JobKind.train, record.base, job_id=job_id, experiment=record.id)
        stores.jobs.end_queued(job_id, JobStatus.failed, error={"type": "invalid_config", "message": str(e)})
        study.tell(number, state=TrialState.FAIL)
        return ExperimentChild(id=job_id, point=point, trial=number, seed=0), False
    stores.jobs.create(JobKind.train, cfg.model_dump(mode="json"), warnings=cfg.start_warnings(), job_id=job_id,
                       experiment=record.id)
    return ExperimentChild(id=job_id, point=point, trial=number, seed=cfg.seed), True


@dataclass(frozen=True)
class Trial:
    experiment: str
    number: int


def trial_of(stores: Stores, job: JobRecord) -> Trial | None:
    """The search trial a training job runs, if it runs one."""
    if job.experiment is None or not stores.experiments.is_searching(job.experiment):
        return None
    record = stores.experiments.record(job.experiment)
    child = next((c for c in record.children if c.id == job.id), None) if record and record.search else None
    return Trial(job.experiment, child.trial) if child else None


def report(stores: Stores, redis_url: str, trial: Trial, step: int, value: float) -> bool:
    """An epoch of a trial: its validation accuracy at `step` (epochs so far, all stages)
    told to the study. Returns whether the pruner stops the trial there."""
    record = stores.experiments.record(trial.experiment)
    if record is None or record.search is None:
        return False
    st = storage(redis_url)
    study = optuna.load_study(study_name=trial.experiment, storage=st, pruner=record.search.make_pruner())
    trial_id = st.get_trial_id_from_study_id_trial_number(st.get_study_id_from_name(trial.experiment),
                                                          trial.number)
    frozen = st.get_trial(trial_id)
    if frozen.state != TrialState.RUNNING:
        return False  # told already (the search was cancelled, say)
    if step not in frozen.intermediate_values:  # a rerun after a lost worker repeats epochs
        st.set_trial_intermediate_value(trial_id, step, value)
        frozen = st.get_trial(trial_id)
    return study.pruner.prune(study, frozen)
