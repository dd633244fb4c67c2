"""Reading jobs: one by its id, a page of one status, a job's log, an array task's output.

A succeeded job's signed output URL is signed again when it is read after it expired, so a
reader never gets a URL that no longer works."""

from __future__ import annotations

from typing import Any

from shared.cloud.backends import Backends
from shared.cloud.store import JobStore
from shared.errors import DoesNotExist, InvalidParameters, NotFound
from shared.jobs import arrays, joblogs
from shared.model.access import Caller, Role
from shared.model.job import Job, Status, canonical_id, now_ms
from shared.model.validation import name_error


def find(job_id: str, store: JobStore) -> Job:
    """The job with this id, in any spelling of a UUID the earlier API took."""
    canonical = canonical_id(job_id)
    job = store.get(canonical) if canonical else None
    if job is None:
        raise DoesNotExist(job_id)
    return job


def visible(job_id: str, backends: Backends, caller: Caller) -> Job:
    """The job, if the caller may see it; a job it may not see is as missing as one that
    is (404 DoesNotExist), so that ids cannot be probed."""
    job = find(job_id, backends.store)
    if not caller.can(job.account_id, Role.VIEWER):
        raise DoesNotExist(job_id)
    return job


def get(job_id: str, backends: Backends, caller: Caller) -> Job:
    return fresh(visible(job_id, backends, caller), backends)


MAX_LISTED_ACCOUNTS = 30  # Firestore's `in` takes 30 values


def page(
    status: Status | None,
    account_id: str | None,
    backends: Backends,
    caller: Caller,
    *,
    size: int,
    after: tuple[int, str] | None,
    name: str | None = None,
) -> tuple[list[Job], bool]:
    """Up to `size` jobs in `status` oldest first, or of every status (None) newest first,
    of one account if given (else of every account the caller may see), after the
    (created, id) `after`; and whether there are more. With `name`, the job of that name if
    it passes the same filters (names are unique)."""
    if account_id is not None:
        caller.require(account_id, Role.VIEWER)
    accounts = [account_id] if account_id is not None else caller.viewable()
    if name is not None:
        job = backends.store.get_by_name(name) if name_error(name) is None else None
        if job is None or (status is not None and job.status is not status):
            return [], False
        seen = accounts is None or job.account_id in accounts
        return ([fresh(job, backends)] if seen else []), False
    if accounts == []:
        return [], False
    if accounts is not None and len(accounts) > MAX_LISTED_ACCOUNTS:
        raise InvalidParameters(
            data={"account_id": f"You see {len(accounts)} accounts: list them one at a time"}
        )
    # One more than the page: whether it exists says whether there is a next page.
    jobs = backends.store.find_page(status, accounts, limit=size + 1, after=after)
    return [fresh(job, backends) for job in jobs[:size]], len(jobs) > size


def log(
    job_id: str, backends: Backends, caller: Caller, *, tail: int | None, task: str | None
) -> joblogs.LogView:
    """The user container's log: from the cluster while the job runs, saved after; an
    array job's task `task` (an index, as the request gave it), or its first."""
    job = visible(job_id, backends, caller)
    index = _task_index(job, task, "task") if task is not None else None
    return joblogs.read(job, backends, tail=tail, task=index)


def task_output_url(job_id: str, index: str, backends: Backends, caller: Caller) -> str:
    """An array job's task's output (`index` as the request gave it): a URL signed for this
    request, for any number of tasks (the record lists them up to MAX_LISTED_OUTPUTS)."""
    job = visible(job_id, backends, caller)
    name = job.task_output_object(_task_index(job, index, "index"))
    metadata = backends.bucket.metadata(name)
    if metadata is None or metadata.get("job-id") != job.id:
        raise NotFound(msg=f"Task {index} of job {job.id} has no output (yet)")
    url, _ = backends.bucket.output_url(name, backends.settings.output_url_lifetime)
    return url


def _task_index(job: Job, raw: str, field: str) -> int:
    """An array job's task index as a request gave it (`field` names it in the error)."""
    count = job.task_count
    if count is None:
        raise InvalidParameters(data={field: "Only for array jobs (task_count)"})
    if not raw.isascii() or not raw.isdigit() or not int(raw) < count:
        raise InvalidParameters(data={field: f"Must be a task index from 0 to {count - 1}"})
    return int(raw)


def fresh(job: Job, backends: Backends) -> Job:
    """The job, its output URLs signed again if they have expired."""
    if job.status is not Status.SUCCEEDED or job.output_url_expires is None:
        return job
    if job.output_url_expires > now_ms():
        return job
    changes: dict[str, Any]
    if job.task_count is not None:
        if job.task_output_urls is not None:
            landed = {index for index, url in enumerate(job.task_output_urls) if url}
        else:
            landed = arrays.landed(job, backends)
        changes = arrays.success_urls(job, backends, landed)
    else:
        url, expires = backends.bucket.output_url(
            job.output_object, backends.settings.output_url_lifetime
        )
        changes = {"output_file_url": url, "output_url_expires": expires}
    backends.store.update(job.id, changes, status=Status.SUCCEEDED)
    for key, value in changes.items():
        setattr(job, key, value)
    return job
