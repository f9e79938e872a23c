"""fpar.timeline: a trained model slid over a long video. The gateway sends the task once
per predict worker; the copies share the job's chunks of windows through leases
(core.store.shares), one chunk at a time per process, each window classified through the
model's loaded runtime in batches of FPAR_PREDICT_MAX_BATCH, as predictions are. A chunk's
window rows land together with its mark, so a worker killed half-way through one loses
only that chunk, which the next worker to pass (or the job's rerun, after the reaper)
computes again.

A copy that finds predictions queued after a chunk sends itself again and returns: they
run first, instead of waiting behind an hour of video. Whoever finds every chunk done
assembles the segments and the picture and ends the job."""
from __future__ import annotations

import logging
import time
from enum import Enum

import numpy as np

from core import tasks
from core.store.records import JobKind, JobStatus
from core.store.shares import FINISH
from fpar_models.ingest.video import read_frames
from fpar_models.serving import Clip
from fpar_models.timeline.options import TimelineJob, upload_prefix
from fpar_models.timeline.picture import timeline_png
from fpar_models.timeline.sampler import ModelInputs, ahead, window_inputs
from fpar_models.timeline.segments import segments
from worker.app import app
from worker.jobs import Stopped, claimed, failure, jobs, joinable, running

log = logging.getLogger("fpar.worker")
CHECK_EVERY_S = 1.0
WAIT_S = 0.5         # for chunks other workers hold
THUMBNAILS = 6


class Outcome(Enum):
    ended = "ended"          # this worker ended the job
    yielded = "yielded"      # predictions were waiting: the task is to be sent again


@app.task(name=tasks.TIMELINE)
def timeline_job(job_id: str) -> None:
    record = jobs().get(job_id, metrics=False)
    if record is None:
        return
    plan = TimelineJob.model_validate(record.request)
    if record.ended or not (claimed(job_id, quiet=True) or joinable(job_id)):
        if record.ended:
            remove_upload(job_id, plan)  # cancelled while queued
        return
    with running(job_id):
        try:
            outcome = Timeline(job_id, plan).run()
        except Stopped:
            record = jobs().get(job_id, metrics=False)
            if record is not None and record.cancel:
                end(job_id, plan, JobStatus.cancelled)
            return
        except Exception as e:
            log.exception("timeline job %s failed", job_id)
            end(job_id, plan, JobStatus.failed, error=failure(e))
            return
    if outcome is Outcome.yielded:
        app.requeue.send(JobKind.timeline, job_id)


def remove_upload(job_id: str, plan: TimelineJob) -> None:
    if plan.uploaded:
        app.settings.data.delete(upload_prefix(job_id))


def end(job_id: str, plan: TimelineJob, status: JobStatus, *, result: dict | None = None,
        error: dict | None = None) -> None:
    """The upload goes first: a client told the job ended finds nothing of it left."""
    remove_upload(job_id, plan)
    jobs().finish(job_id, status, result=result, error=error)


class Timeline:
    """This worker's share of one timeline job."""

    def __init__(self, job_id: str, plan: TimelineJob):
        self.job_id, self.plan = job_id, plan
        self.shares = app.stores.shares
        self.lease_s = app.settings.heartbeat_timeout_s
        self.predictor = app.models.get(plan.options.model)
        self.inputs = ModelInputs.of(self.predictor.config)
        self.spans = plan.spans
        self.video = app.settings.data.path(plan.video)  # (from an s3:// data store, fetched once)
        self.checked = 0.0

    def run(self) -> Outcome:
        while True:
            done = self.shares.done(self.job_id)
            todo = [c for c in range(self.plan.chunks) if c not in done]
            if not todo and self.shares.lease(self.job_id, FINISH, app.worker_name, self.lease_s):
                return self.finish()
            chunk = next((c for c in todo if self.shares.lease(self.job_id, c, app.worker_name, self.lease_s)), None)
            if chunk is not None and self.shares.complete(self.job_id, chunk, self.compute(chunk)):
                self.report()
            if jobs().queued_count(JobKind.predict):
                return Outcome.yielded
            if chunk is None:  # the rest (or the finish) is in other workers' hands: take it over if they die
                time.sleep(WAIT_S)
                self.check(force=True)

    def compute(self, chunk: int) -> list[dict]:
        """The chunk's windows, classified in batches as the batcher batches predictions; the
        next batch's frames are decoded (on a thread of their own) while the model runs."""
        spans = [(i, *self.spans[i]) for i in self.plan.chunk_windows(chunk)]
        windows = window_inputs(self.video, spans, self.plan.fps, self.inputs, self.plan.data)
        rows, batch = [], []
        for index, arrays in ahead(windows, app.settings.predict_max_batch):
            batch.append((index, arrays))
            if len(batch) == app.settings.predict_max_batch:
                rows += self.classify(batch)
                batch = []
                self.check(chunk)
        return rows + (self.classify(batch) if batch else [])

    def classify(self, batch: list[tuple[int, dict]]) -> list[dict]:
        top_k = self.plan.options.top_k
        with app.models.exclusive:
            probs, _ = self.predictor.run([Clip(a.get("rgb"), a.get("flow"), top_k) for _, a in batch])
        return [{"index": i, "start": self.spans[i][0], "end": self.spans[i][1],
                 "top_k": self.predictor.ranked(p, top_k), "p": [round(float(x), 4) for x in p]}
                for (i, _), p in zip(batch, probs)]

    def check(self, chunk: int | None = None, *, force: bool = False) -> None:
        """Between batches (at most once a second): renew the chunk's lease, and stop when
        the job ended or was asked to stop."""
        now = time.monotonic()
        if not force and now - self.checked < CHECK_EVERY_S:
            return
        self.checked = now
        record = jobs().get(self.job_id, metrics=False)
        if record is None or record.ended or record.cancel:
            raise Stopped(self.job_id)
        if chunk is not None:  # lost to a faster worker? Then both compute it; its rows land once
            self.shares.lease(self.job_id, chunk, app.worker_name, self.lease_s)

    def report(self) -> None:
        done = sorted(self.shares.done(self.job_id))
        covered = _union([(self.spans[w[0]][0], self.spans[w[-1]][1])
                          for w in (self.plan.chunk_windows(c) for c in done)])
        duration = self.plan.duration_s
        windows = sum(len(self.plan.chunk_windows(c)) for c in done)
        jobs().set_progress(self.job_id, {"windows_done": windows, "windows": self.plan.windows,
                                          "seconds_done": round(min(covered, duration), 2),
                                          "seconds": round(duration, 2),
                                          "fraction": round(windows / self.plan.windows, 4)})

    def finish(self) -> Outcome:
        """Segments, picture, result: by the one worker holding the finish's lease."""
        rows = sorted(jobs().windows_since(self.job_id, 0), key=lambda w: w["index"])
        options, classes = self.plan.options, self.predictor.classes
        found = segments([(w["start"], w["end"], w["p"]) for w in rows], classes, self.plan.duration_s,
                         options.stride, smoothing=options.smoothing, min_segment=options.min_segment,
                         threshold=options.threshold)
        png = timeline_png(found, [(w["start"] + w["end"]) / 2 for w in rows], [w["top_k"][0]["probability"]
                           for w in rows], self.plan.duration_s, classes, self.thumbnails(),
                           f"{self.plan.name}: model {options.model}", threshold=options.threshold)
        jobs().put_picture(self.job_id, png)
        result = {"model": options.model, "video": self.plan.name, "duration_s": round(self.plan.duration_s, 3),
                  "fps": self.plan.fps, "window": options.window, "stride": options.stride, "segments": found}
        end(self.job_id, self.plan, JobStatus.succeeded, result=result)
        return Outcome.ended

    def thumbnails(self) -> list[tuple[float, np.ndarray]]:
        """A few frames spread over the video, small, for the picture."""
        duration, shots = self.plan.duration_s, []
        for k in range(THUMBNAILS):
            t = duration * (k + 0.5) / THUMBNAILS
            frame = next(iter(read_frames(self.video, t, t + 1 / self.plan.fps, fps=self.plan.fps,
                                          shorter_side=96)), None)
            if frame is not None:
                shots.append((t, frame))
        return shots


def _union(spans: list[tuple[float, float]]) -> float:
    """Seconds covered by the spans together."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total
