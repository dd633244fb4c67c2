"""A job whose input is uploaded after its create (`input_upload`): stored at once with a
URL to PUT its input to, and deployed when the input lands (its finalize event, or the
sync once the URL has expired, if the event was lost). A submission's job is deployed the
same way: its input is in the bucket before it is stored."""

from __future__ import annotations

import logging

from shared.cloud.backends import Backends
from shared.errors import BucketError, ClusterConflictError, TransitionRefusedError
from shared.jobs import admission
from shared.jobs.start import scheduled
from shared.jobs.start.deploy import deploy, is_due, open_output
from shared.jobs.start.draft import Draft, store
from shared.jobs.start.records import Created, create_failure
from shared.logs import log_context
from shared.model.job import FINAL, Job, Status, now_ms

log = logging.getLogger(__name__)
INPUT_SUFFIX = "-input.zip"


def create(draft: Draft, backends: Backends) -> Created:
    """Store the job with a URL to PUT its input to; nothing is deployed until it lands."""
    lifetime = backends.settings.input_upload_lifetime

    def sign(job: Job) -> None:  # for the input object of the name about to be written
        try:
            job.input_upload_url = backends.bucket.upload_url(job.input_object, lifetime, job.id)
        except BucketError as error:
            raise create_failure(job, error)[1] from error
        job.input_upload_expires = now_ms() + lifetime * 1000

    written = store(draft, backends, prepare=sign)
    if isinstance(written, Created):
        return written
    job = draft.job
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created; waiting for its input upload")
    return Created(
        job,
        f"Job {job.id} waits for its input: PUT the zip to data.input_upload_url "
        "with Content-Type: application/zip",
    )


def is_input(object_name: str) -> bool:
    return object_name.endswith(INPUT_SUFFIX)


def input_landed(object_name: str, backends: Backends) -> str:
    """The finalize event of `<name>-input.zip`: deploy the job waiting for it. Only the
    holder of the job's upload URL (or whoever may write the bucket) can write it while
    the job waits; the inputs the create uploads itself belong to jobs that wait for
    nothing."""
    job = backends.store.get_by_name(object_name.removesuffix(INPUT_SUFFIX))
    if job is None or not job.awaiting_upload:
        log.info("ignored: no job waits for this input", extra={"object": object_name})
        return "ignored"
    with log_context(job_id=job.id, job_name=job.name):
        try:
            _, what = start(job, backends)
        except TransitionRefusedError as refused:
            log.info("ignored: job became %s meanwhile", refused.current)
            return "ignored"
        log.info("input uploaded: job %s", what, extra={"object": object_name})
        return what


def start(
    job: Job, backends: Backends, *, reason: str = "input uploaded; deployed to the cluster"
) -> tuple[Job, str]:
    """Deploy a stored job whose input is in the bucket: `running`, or still `created` but
    scheduled.

    Safe to run twice at once: a Job that exists already is this job's (the name is
    unique), and the record's checked write lets one caller win. Raises ClusterApiError
    or BucketError without changing anything, for the caller to retry.
    """
    made = True
    try:
        urls_expire = deploy(job, None, open_output(job, backends), backends)
    except ClusterConflictError:
        made = False
        urls_expire = None  # an earlier delivery made it; its URLs are not known here
        log.info("the job's Job exists already")
    if not is_due(job):
        return scheduled.record(job, urls_expire, backends), "scheduled"
    try:
        running = backends.store.transition(
            job.id,
            Status.RUNNING,
            reason=reason,
            expect={Status.CREATED},
            updates={
                "urls_expire": urls_expire,
                "input_upload_url": None,
                "input_upload_expires": None,
                **admission.pending(job.queue),
            },
        )
    except TransitionRefusedError as refused:
        # Killed (or failed by the sync) meanwhile: what was just made goes again. A Job
        # that a concurrent delivery made, and recorded as running, stays.
        if made and refused.current in {status.value for status in FINAL}:
            backends.cluster.delete_job(job.name)
        raise
    log.info("job deployed: %s", reason.partition(";")[0])
    return running, "deployed"
