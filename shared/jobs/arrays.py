"""Array jobs: one Indexed Job whose pods are the tasks, and the record that sums them up.

- `tasks` ({count, succeeded, failed, running, pending}) comes from the Job's own status
  (completedIndexes, failedIndexes, active), so the sync reads no pod and writes nothing
  for it unless a number changed.
- `failed_tasks` (index, reason, exit code; at most MAX_FAILED_TASKS) is read from the pods
  of the indexes the Job has newly marked failed.
- An output lands as `<name>-output-<index>.zip`. What has landed is the bucket's listing
  of the job's prefix: counting it again is idempotent, so a redelivered finalize event
  counts once, and no event writes the record unless it completes the job.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.cloud.backends import Backends
from shared.jobs.tasks import each, pods_of, task_of
from shared.model import diagnosis
from shared.model.diagnosis import Failure, Pod
from shared.model.job import Job

log = logging.getLogger(__name__)
MAX_FAILED_TASKS = 100
# task_output_urls are kept on the record up to this many tasks: a signed URL is up to about
# 800 bytes, and a Firestore document holds 1 MiB. Any task's output, in any array job, is
# also at GET /batch/<id>/outputs/<index>, a redirect to a URL signed for that request.
MAX_LISTED_OUTPUTS = 1000


def parse_indexes(text: str | None) -> set[int]:
    """The Job status' interval lists, "0,2-5" (completedIndexes, failedIndexes)."""
    found: set[int] = set()
    for part in (text or "").split(","):
        first, _, last = part.strip().partition("-")
        if first.isdigit():
            found.update(range(int(first), int(last or first) + 1))
    return found


def completed_indexes(k8s_job: dict[str, Any]) -> set[int]:
    return parse_indexes((k8s_job.get("status") or {}).get("completedIndexes"))


def failed_indexes(k8s_job: dict[str, Any]) -> set[int]:
    return parse_indexes((k8s_job.get("status") or {}).get("failedIndexes"))


def counts(job: Job, k8s_job: dict[str, Any]) -> dict[str, int]:
    count = job.task_count or 0
    succeeded = len(completed_indexes(k8s_job))
    failed = len(failed_indexes(k8s_job))
    active = int((k8s_job.get("status") or {}).get("active") or 0)
    running = min(active, count - succeeded - failed)
    pending = max(0, count - succeeded - failed - running)
    return {
        "count": count,
        "succeeded": succeeded,
        "failed": failed,
        "running": running,
        "pending": pending,
    }


def progress(job: Job, k8s_job: dict[str, Any], pods: list[Pod]) -> dict[str, Any]:
    """The record's changes: `tasks` when a number moved, `failed_tasks` when a task newly
    failed. Empty when nothing changed."""
    changes: dict[str, Any] = {}
    tasks = counts(job, k8s_job)
    if tasks != job.tasks:
        changes["tasks"] = tasks
    known = {entry["index"] for entry in job.failed_tasks}
    failed = failed_indexes(k8s_job) - known
    room = MAX_FAILED_TASKS - len(job.failed_tasks)
    if failed and room > 0:
        retries = int(job.job_parameters.get("retries", 0))
        added = [_failed_task(index, pods_of(pods, index), retries) for index in sorted(failed)]
        changes["failed_tasks"] = [*job.failed_tasks, *added[:room]]
    return changes


def _failed_task(index: int, pods: list[Pod], retries: int) -> dict[str, Any]:
    """Why one task failed, from its pods, as a failed plain job is diagnosed."""
    failure = diagnosis.diagnose({"status": {}}, pods, retries=retries)
    if failure.reason == "Failed":
        failure = Failure("Error", "The task failed")
    return {
        "index": index,
        "reason": failure.reason,
        "message": failure.message,
        "exit_code": failure.exit_code,
    }


def tasks_failed(job: Job, k8s_job: dict[str, Any]) -> Failure:
    """The array job failed because more tasks failed than it tolerates."""
    failed = failed_indexes(k8s_job)
    tolerated = int(job.job_parameters.get("max_failed_tasks", 0))
    shown = ", ".join(str(index) for index in sorted(failed)[:10])
    more = "" if len(failed) <= 10 else f" and {len(failed) - 10} more"
    return Failure(
        "TasksFailed",
        f"{len(failed)} of {job.task_count} tasks failed (tasks {shown}{more}); "
        f"max_failed_tasks is {tolerated}",
    )


def users_done(job: Job, k8s_job: dict[str, Any], pods: list[Pod]) -> bool:
    """Every task has failed for good, or its user container has exited 0."""
    done = completed_indexes(k8s_job) | failed_indexes(k8s_job)
    for pod in pods:
        index = task_of(pod)
        if index is not None and index not in done and diagnosis.user_succeeded([pod]):
            done.add(index)
    return len(done) >= (job.task_count or 0)


def expected_outputs(job: Job, k8s_job: dict[str, Any] | None) -> set[int]:
    """The tasks whose outputs make the job: all but those that failed for good."""
    failed = {entry["index"] for entry in job.failed_tasks}
    if k8s_job is not None:
        failed |= failed_indexes(k8s_job)
    return set(range(job.task_count or 0)) - failed


def landed(job: Job, backends: Backends) -> set[int]:
    """The tasks whose output is in the bucket, written through this job's upload plan
    (which sets the job-id metadata: another object under the name proves nothing)."""
    pattern = re.compile(re.escape(f"{job.name}-output-") + r"(\d+)\.zip")
    found = set()
    for name, metadata in backends.bucket.listing(f"{job.name}-output-").items():
        if (match := pattern.fullmatch(name)) and metadata.get("job-id") == job.id:
            found.add(int(match.group(1)))
    return {index for index in found if index < (job.task_count or 0)}


def output_urls(
    job: Job, backends: Backends, indexes: set[int]
) -> tuple[list[str | None], int | None]:
    """A signed URL per task, in index order (None for a task that failed), and when the
    first of them expires (epoch ms; None = never)."""
    lifetime = backends.settings.output_url_lifetime

    def sign(index: int) -> tuple[str, int | None] | None:
        if index not in indexes:
            return None
        return backends.bucket.output_url(job.task_output_object(index), lifetime)

    signed = each(sign, range(job.task_count or 0))
    expiries = [entry[1] for entry in signed if entry is not None and entry[1] is not None]
    return [entry[0] if entry else None for entry in signed], min(expiries, default=None)


def success_urls(job: Job, backends: Backends, outputs: set[int]) -> dict[str, Any]:
    """The record's URLs once the tasks `outputs` have landed: output_file_url (the first
    task's), when it expires, and task_output_urls when the job has few enough tasks."""
    if (job.task_count or 0) <= MAX_LISTED_OUTPUTS:
        urls, expires = output_urls(job, backends, outputs)
        first = next((url for url in urls if url is not None), None)
        return {"task_output_urls": urls, "output_file_url": first, "output_url_expires": expires}
    url, expires = backends.bucket.output_url(
        job.task_output_object(min(outputs)), backends.settings.output_url_lifetime
    )
    return {"task_output_urls": None, "output_file_url": url, "output_url_expires": expires}
