"""Predictions, read from the predict queue (core.store.predictions) by a thread of every
predict worker, a batch at a time: concurrent requests for one model share one forward
pass (dynamic batching), and each step of a batch (claim, fetch, end) is one Redis round
trip for all its clips, with no Celery message per clip.

The worker's Celery tasks (timelines, analyses, exports) run beside this thread and take
turns with it on the models (ModelCache.exclusive)."""
from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict

import redis
from celery.signals import worker_ready

from core.cpu import meter
from core.frames import open_frames
from core.store.jobs import Ending
from core.store.records import TERMINAL, JobKind, JobStatus
from fpar_models.serving import Clip
from worker.app import app
from worker.jobs import failure, jobs, running

log = logging.getLogger("fpar.worker")
EXPIRED = {"type": "invalid_input", "message": "the uploaded frames expired before a worker got to them"}
READ_BLOCK_MS = 1000   # how long a read waits for work: also how soon the thread sees a shutdown
TAKE_OVER_EVERY_S = 5  # how often to look for entries a dead worker had read
Entries = list[tuple[bytes, str]]  # (stream entry, job id)


class Batcher:
    def __init__(self):
        self.queue, self.settings = app.stores.predictions, app.settings
        self.spool = open_frames(app.settings, app.stores.client)
        self.looked = 0.0
        self.thread = threading.Thread(target=self.run, name="batcher", daemon=True)

    def start(self) -> Batcher:
        self.queue.join()
        self.thread.start()
        return self

    def stop(self, timeout_s: float) -> None:
        """Let the batch in hand end (app.stopping is set): its jobs need no reaper."""
        self.thread.join(timeout_s)

    def run(self) -> None:
        while not app.stopping.is_set():
            try:
                self.step()
            except redis.ResponseError as e:
                if "NOGROUP" not in str(e):  # Redis came back without the group: join again
                    log.exception("the batcher failed")
                self.rejoin()
            except Exception:  # Redis restarting, say: what was read and not settled is read again
                log.warning("the batcher failed; retrying", exc_info=True)
                app.stopping.wait(0.5)

    def rejoin(self) -> None:
        try:
            self.queue.join()
        except redis.RedisError:
            app.stopping.wait(0.5)

    def step(self) -> None:
        cap = self.settings.predict_max_batch
        if time.monotonic() - self.looked > TAKE_OVER_EVERY_S:
            self.looked = time.monotonic()
            left = self.queue.take_over(app.worker_name, int(self.settings.heartbeat_timeout_s * 1000))
            for first in range(0, len(left), cap):
                self.serve(left[first:first + cap])
        entries = self.queue.read(app.worker_name, cap, READ_BLOCK_MS)
        if entries:
            self.serve(self.companions(entries))

    def companions(self, entries: Entries) -> Entries:
        """Read more, up to FPAR_PREDICT_MAX_BATCH, for up to FPAR_PREDICT_MAX_WAIT_MS, but
        only while other predictions are queued: a request that is alone runs at once."""
        cap = self.settings.predict_max_batch
        deadline = time.monotonic() + self.settings.predict_max_wait_ms / 1000
        while len(entries) < cap and time.monotonic() < deadline and \
                jobs().queued_count(JobKind.predict) > len(entries):
            entries += self.queue.read(app.worker_name, cap - len(entries), None) or []
            time.sleep(0.001)
        return entries

    def serve(self, entries: Entries) -> None:
        """Claim, run and end the jobs of these entries; then settle the entries, also those
        of jobs not to run here (ended, or running elsewhere), and remove the frames of every
        job that has ended."""
        ids = [job_id for _, job_id in entries]
        with meter.stage("claim"):
            outcomes = jobs().claim_many(ids, app.worker_name, self.settings.heartbeat_timeout_s)
        mine = [job_id for job_id, outcome in zip(ids, outcomes) if outcome == "ok"]
        ended = [job_id for job_id, outcome in zip(ids, outcomes) if outcome in TERMINAL or outcome == "missing"]

        def settle(pipe):
            self.queue.settle(pipe, [entry for entry, _ in entries])
        if mine:
            with running(*mine):
                endings = self.predict(mine)
                with meter.stage("finish"):
                    jobs().finish_many(endings, after=settle)
        else:
            pipe = app.stores.client.pipeline(transaction=False)
            settle(pipe)
            pipe.execute()
        self.spool.remove(*mine, *ended)

    def predict(self, job_ids: list[str]) -> list[Ending]:
        """How each job ends: its answer, its error, or cancelled (asked before or while it ran)."""
        endings, groups = [], defaultdict(list)
        with meter.stage("fetch"):
            for asked in jobs().prediction_requests(*job_ids):
                if asked.cancel:
                    endings.append(Ending(asked.job_id, JobStatus.cancelled))
                    continue
                arrays = self.spool.get(asked.job_id) if asked.options is not None else None
                if arrays is None:
                    endings.append(Ending(asked.job_id, JobStatus.failed, error=EXPIRED))
                else:
                    clip = Clip(arrays.get("rgb"), arrays.get("flow"), asked.options.top_k, asked.options.explain)
                    groups[asked.options.model].append((asked.job_id, clip))
        for model_id, batch in groups.items():
            endings += run_model(model_id, batch)
        stopped = jobs().cancels_requested(*(e.job_id for e in endings if e.status == JobStatus.succeeded))
        return [Ending(e.job_id, JobStatus.cancelled) if e.job_id in stopped else e for e in endings]


@worker_ready.connect
def _start(**_) -> None:
    """On a predict worker, once worker.app has loaded the newest models (its receiver was
    connected first, so it runs first)."""
    if "predict" in app.queues:
        app.batcher = Batcher().start()


def run_model(model_id: str, batch: list[tuple[str, Clip]]) -> list[Ending]:
    try:
        start = time.perf_counter()
        with app.models.exclusive:
            predictor = app.models.get(model_id)
            elsewhere = predictor.cpu_elsewhere_s
            with meter.stage("model", whole_process=True):
                answers = predictor.predict([clip for _, clip in batch])
            meter.add("model elsewhere", predictor.cpu_elsewhere_s - elsewhere)  # not in this process's own CPU
        log.info("model %s: %d prediction(s) in one batch, %.1f ms", model_id, len(batch),
                 1000 * (time.perf_counter() - start))
    except Exception as e:
        log.exception("predictions %s failed", [job_id for job_id, _ in batch])
        return [Ending(job_id, JobStatus.failed, error=failure(e)) for job_id, _ in batch]
    return [Ending(job_id, JobStatus.succeeded, {"model": model_id, **answer}, batch_size=len(batch))
            for (job_id, _), answer in zip(batch, answers)]
