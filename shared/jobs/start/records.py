"""A new job's record: stored under the first free name, its task environments beside it,
a repeated request answered with the job it made, and what a failed create records and
answers."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, NamedTuple

from shared.cloud.backends import Backends
from shared.cloud.store import JobStore, NameTakenError, RequestKey, Version
from shared.errors import (
    ApiError,
    BucketError,
    ClusterApiError,
    ClusterError,
    ConfigurationError,
    Conflict,
    InvalidParameters,
    SigningError,
    SigningUnavailableError,
    StorageError,
    StoreError,
)
from shared.logs import log_context
from shared.model.job import Job, Status
from shared.model.validation import derived_names

log = logging.getLogger(__name__)


class Created(NamedTuple):
    job: Job
    msg: str  # the envelope's message
    repeat: bool = False  # a repeat of an earlier create (its request_id): nothing was made


class Names:
    """The name a create gives its job: the client's, or derived from the image and the
    creation time. A name the client chose is refused when taken; a derived one is never
    refused, the next free one in the same format is taken (derived_names)."""

    def __init__(self, chosen: str | None, image: str, created_ms: int) -> None:
        self.chosen = chosen
        self._derived = derived_names(image, created_ms)
        self.first = chosen or next(self._derived)

    def after_taken(self, name: str) -> str:
        """The name to try after `name` was found taken."""
        if self.chosen is not None:
            raise InvalidParameters(data={"name": "A job with this name already exists"})
        following = next(self._derived, None)
        if following is None:
            raise StoreError(f"no free name after {name}: too many creates at once")
        log.info("derived name taken; trying the next", extra={"taken": name, "next": following})
        return following


def store(
    job: Job,
    backends: Backends,
    key: RequestKey | None,
    environments: list[Any] | None,
    names: Names,
    prepare: Callable[[Job], None] | None = None,
) -> Version:
    """The record, under the first free name `names` gives, then an array job's
    task_environments: once the name is the job's, so that they never land over another
    job's. `prepare` makes what the record holds for its name, before each write. Raises
    RequestSeenError when `key` was written meanwhile (see repeat)."""
    while True:
        if prepare is not None:
            prepare(job)
        try:
            written = backends.store.create(job, key)
            break
        except NameTakenError as taken:
            job.name = names.after_taken(taken.name)
    if environments is not None:
        _put_task_environments(job, environments, backends)
    return written


def repeat(
    key: RequestKey | None,
    job_id: str,
    fingerprint: str,
    *,
    store: JobStore,
    account_id: str | None,
) -> Created:
    """The answer to a request id seen before: its job as it is now, or 409 Conflict when
    the body differs or the job is another account's (request ids are kept per account:
    another's job is named, never shown)."""
    assert key is not None
    if fingerprint != key.fingerprint:
        raise Conflict(
            msg=f"request_id {key.request_id} was used for a different request (job {job_id})",
            data={"request_id": "Used in the last 24 hours by a request with a different body"},
        )
    job = store.get(job_id)
    if job is None:  # written in one batch with the key: only a hand could have removed it
        raise StoreError(f"request {key.request_id} names job {job_id}, which is missing")
    if job.account_id != account_id:
        raise Conflict(
            msg=f"request_id {key.request_id} was used by another account (job {job_id})",
            data={"request_id": "Used in the last 24 hours by another account's create"},
        )
    with log_context(job_id=job.id, job_name=job.name):
        log.info("repeated create: answered the job", extra={"request_id": key.request_id})
    return Created(job, f"Repeat of request {key.request_id}: job {job.id}", repeat=True)


def write_task_environments(job: Job, environments: list[Any], backends: Backends) -> None:
    """<name>-tasks.json, which each task's pod reads."""
    backends.bucket.put_json(job.tasks_object, environments, {"job-id": job.id})


def _put_task_environments(job: Job, environments: list[Any], backends: Backends) -> None:
    """Write the task environments of a job just stored. A failure fails an API create.
    A submission's job stays `created` and the error is raised, for its event to come
    again: its next start writes them first (submission.start)."""
    try:
        write_task_environments(job, environments, backends)
    except BucketError as error:
        if job.submission is not None:
            with log_context(job_id=job.id, job_name=job.name):
                log.warning("writing the task environments failed; left to the next delivery")
            raise
        raise fail(job, error, backends) from error


def fail(
    job: Job,
    error: ClusterApiError | BucketError,
    backends: Backends,
    known: Version | None = None,
) -> ApiError:
    """Record a create that failed after its job was stored (`known`: as it was written);
    what the client is told, to raise."""
    reason, answer = create_failure(job, error)
    backends.store.transition(
        job.id,
        Status.FAILED,
        reason=f"create failed: {error}",
        updates={"reason": reason, "message": str(error)},
        known=known,
    )
    return answer


def create_failure(job: Job, error: ClusterApiError | BucketError) -> tuple[str, ApiError]:
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
