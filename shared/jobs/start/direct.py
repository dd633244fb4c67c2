"""A job whose input comes with its create: inline (`input_zip`), by reference
(`input_url`), or none. The record is stored first (status `created`), the Job deployed,
and the record moved to `running` (or left `created` and scheduled). A failure part-way
deletes what it made and records the job as `failed` with the reason."""

from __future__ import annotations

import logging

from shared.cloud.backends import Backends
from shared.errors import BucketError, ClusterApiError
from shared.jobs import admission
from shared.jobs.start import scheduled
from shared.jobs.start.deploy import deploy, open_output, undo
from shared.jobs.start.draft import Draft, store
from shared.jobs.start.records import Created, fail
from shared.logs import log_context
from shared.model.job import Status

log = logging.getLogger(__name__)


def create(draft: Draft, backends: Backends) -> Created:
    """Store, deploy, and record the job as running (or scheduled)."""
    job = draft.job
    # The output's upload session is opened while the record is written: it creates no
    # object, so a create refused for its name (or found a repeat, or given the next derived
    # name) just leaves it to expire.
    upload = open_output(job, backends)
    written = store(draft, backends)
    if isinstance(written, Created):
        return written
    if job.name != draft.names.first:
        upload = open_output(job, backends)
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created")
        try:
            urls_expire = deploy(job, draft.data, upload, backends)
        except (ClusterApiError, BucketError) as error:
            undo(job, backends)
            answer = fail(job, error, backends, known=written)
            log.error("create failed; cleaned up", extra={"error": str(error)})
            raise answer from error
        if job.scheduled_for is not None:
            return Created(scheduled.record(job, urls_expire, backends), scheduled.message(job))
        running = backends.store.transition(
            job.id,
            Status.RUNNING,
            reason="deployed to the cluster",
            known=written,
            updates={"urls_expire": urls_expire, **admission.pending(job.queue)},
        )
        log.info("job deployed", extra={"queue": job.queue})
    return Created(running, "")
