"""fpar.ingest: recordings in, a dataset in the GTEA61 layout out. The gateway sends the
task once per ingest worker; every copy that finds the job running joins it, and the
copies share its videos through leases (core.store.shares), one video at a time per
process. A video is done once its folder is written and marked; a worker killed half-way
through one loses only that video, which the next worker to pass (or the job's rerun,
after the reaper) writes again. Whoever sees the last video done publishes the dataset."""
from __future__ import annotations

import logging
import time

import cv2

from core import tasks
from core.store.records import JobStatus
from core.store.shares import FINISH
from fpar_models.ingest.layout import Cancelled, VideoDirs
from fpar_models.ingest.options import IngestItem, IngestJob
from fpar_models.ingest.run import UPLOADS, Workspace
from worker.app import app
from worker.jobs import Stopped, claimed, failure, jobs, joinable, running

log = logging.getLogger("fpar.worker")
CHECK_EVERY_S = 1.0
WAIT_S = 1.0     # for videos other workers hold


@app.task(name=tasks.INGEST)
def ingest_job(job_id: str) -> None:
    record = jobs().get(job_id, metrics=False)
    if record is None:
        return
    work = Workspace(app.settings.data_dir, job_id, IngestJob.model_validate(record.request))
    if record.ended or not (claimed(job_id, quiet=True) or joinable(job_id)):
        if record.ended and record.status != JobStatus.succeeded:
            end(work, record.status)  # cancelled while queued: its upload still waits to be removed
        return
    if app.settings.ingest_threads:
        cv2.setNumThreads(app.settings.ingest_threads)
    with running(job_id):
        try:
            app.settings.data.mirror(work.job.source_dir)  # (an s3:// data store's recordings, brought here)
            result = Ingest(job_id, work).run()
        except (Stopped, Cancelled):
            record = jobs().get(job_id, metrics=False)
            if record is not None and record.cancel:
                end(work, JobStatus.cancelled)
            elif record is None or record.status in (JobStatus.failed, JobStatus.cancelled):
                discard(work)  # what this worker wrote after another one ended the job
            return
        except Exception as e:
            log.exception("ingest job %s failed", job_id)
            end(work, JobStatus.failed, error=failure(e))
            return
    if result is not None:
        discard(work)  # first: a client told the job ended finds nothing of its work left
        jobs().finish(job_id, JobStatus.succeeded, result=result)


def discard(work: Workspace) -> None:
    """Its work folders and upload, here and in an s3:// data store."""
    work.discard()
    for folder in (work.state, *([work.data_dir / UPLOADS / work.job_id] if work.job.uploaded else [])):
        app.settings.data.delete(f"{folder.relative_to(work.data_dir).as_posix()}/")


def share(work: Workspace, item: IngestItem) -> None:
    """A video's folders and outcome, to an s3:// data store (a shared data folder has them
    already): whichever worker publishes the dataset gathers every worker's videos."""
    dirs = VideoDirs.of(work.partial, item.user, item.label, item.folder)
    files = [f for d in dirs.all() if d.is_dir() for f in d.iterdir()] + [work.items / f"{item.index}.json"]
    for file in files:
        app.settings.data.put(file.relative_to(work.data_dir).as_posix(), file)


def end(work: Workspace, status: JobStatus, error: dict | None = None) -> None:
    """End the job (if still running) and remove what it wrote; a failed ingest keeps its
    name, listed as failed with the error until deleted, a cancelled one frees it."""
    discard(work)  # first: a client told the job ended finds nothing of its work left
    jobs().finish(work.job_id, status, error=error)
    if status == JobStatus.cancelled:
        app.stores.datasets.forget(work.job.request.name, work.job_id)


class Ingest:
    """This worker's share of one ingest job."""

    def __init__(self, job_id: str, work: Workspace):
        self.job_id, self.work = job_id, work
        self.items = work.job.items
        self.shares = app.stores.shares
        self.lease_s = app.settings.heartbeat_timeout_s
        self.checked = 0.0

    def run(self) -> dict | None:
        """Ingest videos until none is left; the result if this worker published the
        dataset, None when another one does."""
        while True:
            done = self.shares.done(self.job_id)
            todo = [item for item in self.items if item.index not in done]
            if not todo:
                return self.publish()
            if not any(self.take(item) for item in todo):
                time.sleep(WAIT_S)  # the rest is in other workers' hands; take it over if they die
            self.check(force=True)

    def take(self, item: IngestItem) -> bool:
        if not self.shares.lease(self.job_id, item.index, app.worker_name, self.lease_s):
            return False
        if item.index in self.shares.done(self.job_id):  # done between our listing and the lease
            self.shares.release(self.job_id, item.index)
            return False
        log.info("ingest %s: video %d/%d (%s %.1f-%.1f s)", self.job_id, item.index + 1, len(self.items),
                 item.video, item.start, item.end)
        self.work.ingest(item, should_stop=lambda: self.check(item.index), worker=app.worker_name)
        share(self.work, item)
        self.shares.mark_done(self.job_id, item.index)
        self.report()
        return True

    def check(self, item: int | None = None, *, force: bool = False) -> bool:
        """Between frames (at most once a second): renew the lease of the video in hand,
        and stop when the job ended or was asked to stop. Never True: it raises."""
        now = time.monotonic()
        if not force and now - self.checked < CHECK_EVERY_S:
            return False
        self.checked = now
        record = jobs().get(self.job_id, metrics=False)
        if record is None or record.ended or record.cancel:
            raise Stopped(self.job_id)
        if item is not None and not self.shares.lease(self.job_id, item, app.worker_name, self.lease_s):
            raise Stopped(f"{self.job_id}: lost the lease of video {item}")
        return False

    def report(self) -> None:
        done = self.shares.done(self.job_id)
        seconds = self.work.job.seconds
        seconds_done = sum(item.seconds for item in self.items if item.index in done)
        jobs().set_progress(self.job_id, {"videos_done": len(done), "videos": len(self.items),
                                          "seconds_done": round(seconds_done, 2), "seconds": round(seconds, 2),
                                          "fraction": round(seconds_done / seconds, 4) if seconds else 1.0})

    def publish(self) -> dict | None:
        if not self.shares.lease(self.job_id, FINISH, app.worker_name, self.lease_s):
            return None  # another worker publishes
        app.settings.data.mirror(self.work.state.relative_to(self.work.data_dir).as_posix())  # every worker's videos
        result = self.work.publish()
        app.settings.data.send(self.work.job.request.name)  # for the other hosts, once whole
        return result

