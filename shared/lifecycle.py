"""Create and kill: the two user actions that change the cluster.

Create stores the record first (status `created`), deploys, and moves it to `running`; a
failure part-way deletes what it made and records the job as `failed` with the reason.
Kill records `killed` first, so that a sync running at the same time cannot mistake the
deleted Job for a failure, then deletes the job's cluster objects.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from shared import joblogs, manifests
from shared.backends import Backends
from shared.bucket import V4_MAX_LIFETIME
from shared.diagnosis import user_started
from shared.errors import (
    ApiError,
    BucketError,
    ClusterApiError,
    ClusterError,
    ConfigurationError,
    DoesNotExist,
    InvalidParameters,
    SigningError,
    SigningUnavailableError,
    StorageError,
    TransitionRefusedError,
)
from shared.inputs import decode_input
from shared.logs import log_context
from shared.model import KILLABLE, Job, Status, now_ms
from shared.settings import Settings
from shared.store import JobStore, NameTakenError
from shared.validation import derived_name, validate_create

log = logging.getLogger(__name__)
WATCH_POLL_SECONDS = 0.25  # how often create looks at a new job's pod while it waits
INPUT_URL_MARGIN = 3600  # s: the input URL outlives the job's timeout by this much


def create(body: Any, *, backends: Backends) -> tuple[Job, str]:
    """Validate, store, deploy. Returns the job and the envelope's message."""
    settings, store = backends.settings, backends.store
    request = validate_create(body)
    data = decode_input(request.input_zip, settings) if request.input_zip is not None else None
    # Clients first: a misconfigured cluster or bucket fails the request before anything is
    # stored, instead of leaving a record that nothing will ever deploy.
    backends.cluster, backends.bucket  # noqa: B018 - built on first use, cached
    created = now_ms()
    job = Job(
        id=str(uuid.uuid4()),
        name=request.name or derived_name(request.job_parameters["docker_image"], created),
        status=Status.CREATED,
        created=created,
        job_parameters=request.job_parameters,
        account_id=request.account_id,
        has_input=data is not None,
    )
    # The output's upload session is opened while the record is written: it creates no
    # object, so a create refused for its name just leaves it to expire.
    upload = _pool().submit(backends.bucket.open_upload, job.output_object, job.id)
    try:
        written = store.create(job)
    except NameTakenError:
        raise InvalidParameters(data={"name": "A job with this name already exists"}) from None
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created")
        try:
            _deploy(job, data, upload, backends)
        except (ClusterApiError, BucketError) as error:
            _undo(job, backends)
            reason, answer = _create_failure(job, error)
            store.transition(
                job.id,
                Status.FAILED,
                reason=f"create failed: {error}",
                updates={"reason": reason, "message": str(error)},
                known=written,
            )
            log.error("create failed; cleaned up", extra={"error": str(error)})
            raise answer from error
        running = store.transition(
            job.id, Status.RUNNING, reason="deployed to the cluster", known=written
        )
        log.info("job deployed")
        if settings.create_wait > 0:
            return _watch_start(running, backends)
    return running, ""


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The process's threads for calls a create overlaps; made once, so a request pays for
    no thread start."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="create")


def _create_failure(job: Job, error: ClusterApiError | BucketError) -> tuple[str, ApiError]:
    """The failed record's reason, and what the client is told."""
    if isinstance(error, ClusterApiError):
        answer: ApiError = ClusterError(
            msg=f"API request failed when creating job {job.name}",
            data={"cluster_response": error.body},
        )
        return "ClusterError", answer
    if isinstance(error, SigningUnavailableError):
        answer = StorageError(msg=f"Could not sign the input URL of job {job.name}: {error}")
        return "StorageError", answer
    if isinstance(error, SigningError):
        answer = ConfigurationError(msg=f"Could not sign the input URL of job {job.name}: {error}")
        return "ConfigurationError", answer
    return "StorageError", StorageError(msg=f"Could not prepare the storage of job {job.name}")


def _watch_start(job: Job, backends: Backends) -> tuple[Job, str]:
    """Up to CREATE_WAIT_SECONDS for the user's container to start; a slow pod is left to
    the sync."""
    from shared.reconciler import Reconciler

    deadline = time.monotonic() + backends.settings.create_wait
    while True:
        try:
            job, pods = Reconciler(backends).check(job)
        except (ClusterApiError, BucketError, TransitionRefusedError) as error:
            log.info("stopped watching the start: %s", error)
            return job, ""
        if job.status is not Status.RUNNING:
            finished = job.status in (Status.CLEANING, Status.SUCCEEDED)
            return job, f"Job {job.id} finished instantly" if finished else ""
        if user_started(pods) is not None or time.monotonic() >= deadline:
            return job, ""
        time.sleep(min(WATCH_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


def _deploy(job: Job, data: bytes | None, upload: Future[str], backends: Backends) -> None:
    """Create the job's one Job, once its input is in the bucket with a signed URL (the two
    overlap) and its output's upload session is open."""
    settings, bucket = backends.settings, backends.bucket
    input_url = None
    if data is not None:
        stored = _pool().submit(bucket.upload_input, job.input_object, data, job.id)
        try:
            input_url = bucket.input_url(job.input_object, input_url_lifetime(job, settings))
        finally:
            wait([stored])  # done before any undo deletes the object it writes
        stored.result()
    manifest = manifests.batch_job(job, settings, upload_url=upload.result(), input_url=input_url)
    backends.cluster.create_job(manifest)


def input_url_lifetime(job: Job, settings: Settings) -> int:
    """Seconds the stage-in URL stays valid: the job's timeout plus an hour, which covers
    every retry of the init container (they all fall within activeDeadlineSeconds), capped
    at the 7 days a V4 signed URL may live (timeouts are capped below that)."""
    return min(manifests.timeout_seconds(job, settings) + INPUT_URL_MARGIN, V4_MAX_LIFETIME)


def _undo(job: Job, backends: Backends) -> None:
    """Best effort: whatever is left is swept by the next sync (it is labelled as ours)."""
    steps = [("job", lambda: backends.cluster.delete_job(job.name))]
    if job.has_input:
        steps.append(("input object", lambda: backends.bucket.delete(job.input_object)))
    for what, step in steps:
        try:
            step()
        except (ClusterApiError, BucketError) as error:
            log.warning("could not delete the %s; the sync will", what, extra={"error": str(error)})


def get(job_id: str, *, store: JobStore) -> Job:
    """The job with this id, in any spelling of a UUID the earlier API took."""
    canonical = _canonical_uuid(job_id)
    job = store.get(canonical) if canonical else None
    if job is None:
        raise DoesNotExist(job_id)
    return job


def kill(job_id: str, *, backends: Backends) -> tuple[Job, str]:
    store = backends.store
    job = get(job_id, store=store)
    refusal = f"Can't stop batch job {job.id}. Status is: {{}}."
    if job.status not in KILLABLE:
        raise InvalidParameters(msg=refusal.format(job.status.value))
    with log_context(job_id=job.id, job_name=job.name):
        try:
            killed = store.transition(
                job.id,
                Status.KILLED,
                reason="killed by its user",
                expect=KILLABLE,
                updates={"reason": "Killed", "message": "Killed by its user"},
            )
        except TransitionRefusedError as refused:
            raise InvalidParameters(msg=refusal.format(refused.current)) from None
        log.info("job killed")
        pending = remove_from_cluster(killed, backends)
    msg = f"Instance {job.id} was successfully deleted from the cluster."
    if pending:
        msg = f"Instance {job.id} was killed; the next synchronization removes it from the cluster."
    return killed, msg


def remove_from_cluster(
    job: Job, backends: Backends, pods: list[dict[str, Any]] | None = None
) -> bool:
    """Save the job's log, then delete its Job and pod; True if that must wait for a later
    sync (which saves what is missing and deletes what is left).

    The pod is never deleted before its log is saved. The input and output objects stay in
    the bucket, as they did before.
    """
    try:
        if pods is None:
            pods = joblogs.job_pods(job, backends)
        joblogs.save(job, backends, pods)
        backends.cluster.delete_job(job.name)
    except (ClusterApiError, BucketError) as error:
        log.warning("cleanup postponed to the sync", extra={"error": str(error)})
        return True
    return False


def _canonical_uuid(text: str) -> str | None:
    """The earlier API read ids with `uuid.UUID` (mongoengine's UUIDField), so it found a
    job by its id in hex, in capitals, in braces or as a URN too; this is the one spelling
    the records are stored under."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
