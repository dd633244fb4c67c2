"""A job with `start_after` ahead, whichever way it started: its Job is made at once, so
the cluster has checked it, in Kueue's held `scheduled` queue, where nothing is admitted;
the record stays `created` until the sync moves the Job to its account's queue when its
time comes (`resume`), and Kueue admits it there within the account's quota."""

from __future__ import annotations

import datetime
import logging
from typing import Any

from shared.cloud.backends import Backends
from shared.jobs import admission
from shared.jobs.start.deploy import deploy, open_output
from shared.jobs.start.placement import queue_of
from shared.model import manifests
from shared.model.job import Job, Status, now_ms

log = logging.getLogger(__name__)


def record(job: Job, urls_expire: int | None, backends: Backends) -> Job:
    """The job's held Job exists: the record says so, and the sync resumes it."""
    changes: dict[str, Any] = {"suspended": True, "urls_expire": urls_expire, "queue": job.queue}
    changes |= {"input_upload_url": None, "input_upload_expires": None}
    if not backends.store.update(job.id, changes, status=Status.CREATED):
        log.info("the job changed while it was deployed; left to the sync")
    log.info("job scheduled", extra={"scheduled_for": job.scheduled_for})
    for key, value in changes.items():
        setattr(job, key, value)
    return job


def message(job: Job) -> str:
    at = datetime.datetime.fromtimestamp((job.scheduled_for or 0) / 1000, datetime.UTC)
    return f"Job {job.id} is scheduled to start at {at.isoformat().replace('+00:00', 'Z')}"


def resume(job: Job, backends: Backends) -> Job:
    """Start a scheduled job whose time has come: move its Job to its account's queue, or,
    when its URLs would expire before its pod is done, replace it with one with fresh
    URLs."""
    settings = backends.settings
    # The Job's own deadline, with a few minutes for the sync to notice the end.
    needed = manifests.run_seconds(job, settings) + manifests.JOB_DEADLINE_MARGIN + 300
    if job.urls_expire is not None and job.urls_expire < now_ms() + needed * 1000:
        backends.cluster.delete_job(job.name)
        urls_expire = deploy(job, None, open_output(job, backends), backends, held=False)
        log.info("replaced the scheduled Job: its URLs would have expired")
    else:
        job.queue = queue_of(job, backends)
        backends.cluster.move_job(job.name, job.queue)
        urls_expire = job.urls_expire
    running = backends.store.transition(
        job.id,
        Status.RUNNING,
        reason="its start time came; resumed",
        expect={Status.CREATED},
        updates={"suspended": False, "urls_expire": urls_expire, **admission.pending(job.queue)},
    )
    log.info("job resumed")
    return running
