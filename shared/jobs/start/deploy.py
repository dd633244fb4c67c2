"""A stored job's one Kubernetes Job: its input in the bucket behind a signed URL, its
output's upload session open, and the manifest created (suspended while the job's start
time is ahead). A create that fails part-way deletes what it made (`undo`)."""

from __future__ import annotations

import functools
import logging
from concurrent.futures import Future, ThreadPoolExecutor, wait

from shared.cloud.backends import Backends
from shared.cloud.bucket import V4_MAX_LIFETIME
from shared.errors import BucketError, ClusterApiError
from shared.jobs import references
from shared.jobs.start.placement import queue_of
from shared.model import manifests, queues
from shared.model.job import Job, now_ms
from shared.settings import Settings

log = logging.getLogger(__name__)
INPUT_URL_MARGIN = 3600  # s: the input URL outlives the job's timeout by this much
SESSION_LIFETIME = 7 * 24 * 3600  # s: a resumable upload session's (Cloud Storage's own)


def is_due(job: Job) -> bool:
    return job.scheduled_for is None or job.scheduled_for <= now_ms()


def open_output(job: Job, backends: Backends) -> Future[str]:
    """In the background: the output's upload session, or an array job's tasks' plan."""
    bucket = backends.bucket
    if job.task_count is None:
        return _pool().submit(bucket.open_upload, job.output_object, job.id)
    lifetime = input_url_lifetime(job, backends.settings)
    prefix = f"{job.name}-output-"
    max_bytes = manifests.volume_bytes(backends.settings)
    return _pool().submit(bucket.task_upload, prefix, job.id, lifetime, max_bytes)


def deploy(
    job: Job,
    data: bytes | None,
    upload: Future[str],
    backends: Backends,
    *,
    held: bool | None = None,
) -> int | None:
    """Create the job's one Job, once its input is in the bucket with a signed URL (the two
    overlap) and its output's upload session is open. It waits in its account's queue for
    Kueue to admit it, or `held` in the scheduled jobs' queue while its start time is
    ahead. Returns when the pod's URLs expire (epoch ms): the upload session lives a
    week, a signed input URL as long as it was signed for."""
    settings, bucket = backends.settings, backends.bucket
    if held is None:
        held = not is_due(job)
    job.queue = queues.SCHEDULED if held else queue_of(job, backends)
    lifetime = input_url_lifetime(job, settings)
    opened = now_ms()
    expires = [opened + SESSION_LIFETIME * 1000]
    source = _stage_in_source(job, data, backends, lifetime)
    if source is not None and not source.public:
        expires.append(opened + lifetime * 1000)
    tasks_url = None
    if job.task_environments:
        tasks_url = bucket.input_url(job.tasks_object, lifetime)
    if job.task_count is not None:
        expires.append(opened + lifetime * 1000)  # the tasks' upload plan
    manifest = manifests.batch_job(
        job,
        settings,
        upload_url=upload.result(),
        input_url=source.url if source else None,
        public_input=bool(source and source.public),
        queue=job.queue,
        tasks_url=tasks_url,
    )
    backends.cluster.create_job(manifest)
    return min(expires)


def _stage_in_source(
    job: Job, data: bytes | None, backends: Backends, lifetime: int
) -> references.StageInSource | None:
    """Where stage-in reads the job's input; an inline input is uploaded first."""
    bucket = backends.bucket
    if data is not None:
        stored = _pool().submit(bucket.upload_input, job.input_object, data, job.id)
        try:
            url = bucket.input_url(job.input_object, lifetime)
        finally:
            wait([stored])  # done before any undo deletes the object it writes
        stored.result()
        return references.StageInSource(url, False)
    if job.job_parameters.get("input_url"):
        return references.stage_in_source(job.job_parameters["input_url"], backends, lifetime)
    if job.has_input:  # in the bucket already: uploaded by its user, or by the create
        # A submission's own generation: another upload under its name is not its input.
        url = bucket.input_url(job.input_object, lifetime, generation=job.submission_generation)
        return references.StageInSource(url, False)
    return None


def input_url_lifetime(job: Job, settings: Settings) -> int:
    """Seconds the stage-in URL stays valid: until the job's scheduled start (if ahead),
    plus its timeout and an hour, which covers every retry of the init container (they all
    fall within activeDeadlineSeconds), capped at the 7 days a V4 signed URL may live; the
    sync replaces a scheduled Job whose URLs would not last."""
    wait_ms = max(0, (job.scheduled_for or 0) - now_ms())
    needed = wait_ms // 1000 + manifests.run_seconds(job, settings) + INPUT_URL_MARGIN
    return min(needed, V4_MAX_LIFETIME)


def undo(job: Job, backends: Backends) -> None:
    """Best effort: whatever is left is swept by the next sync (it is labelled as ours)."""
    steps = [("job", lambda: backends.cluster.delete_job(job.name))]
    if job.has_input:
        steps.append(("input object", lambda: backends.bucket.delete(job.input_object)))
    for what, step in steps:
        try:
            step()
        except (ClusterApiError, BucketError) as error:
            log.warning("could not delete the %s; the sync will", what, extra={"error": str(error)})


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The process's threads for calls a create overlaps; made once, so a request pays for
    no thread start."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="create")
