"""What the sync and the finalize event share: reading what a job's pods show, and
completing a success.

Either may see a job's end first (the finalize event when its output lands, the sync when
it finds the output or the Job's end); both record it the same way, through a checked
transition, so whichever comes second is refused and changes nothing."""

from __future__ import annotations

from typing import Any

from shared.cloud.backends import Backends
from shared.jobs import arrays, joblogs
from shared.jobs.cleanup import remove_from_cluster
from shared.model.diagnosis import MAX_DISRUPTED_PODS, disrupted, user_finished, user_started
from shared.model.job import Job, Status

USER_DONE = "the job's container finished; stage-out uploads the output"
USERS_DONE = "every task's container finished; stage-out uploads the outputs"


def observed(job: Job, pods: list[dict[str, Any]]) -> dict[str, Any]:
    """What the pods add to the record: the user container's start and end, as Kubernetes
    records them, and the pods lost to disruptions (each counted once, by name). Empty
    when nothing is new."""
    facts: dict[str, Any] = {}
    start = user_started(pods)
    if job.start_time is None and start is not None:
        facts["start_time"] = max(start, job.created)  # Kubernetes times are whole seconds
    end = user_finished(pods)
    if end is not None:
        end = max(end, facts.get("start_time") or job.start_time or job.created)
        if end > (job.end_time or 0):
            facts["end_time"] = end  # a retry, or an array job's later task, ends later
    seen = set(job.disrupted_pods)
    new = [name for name in disrupted(pods) if name not in seen]
    if new:
        facts["disrupted_pods"] = [*job.disrupted_pods, *new][-MAX_DISRUPTED_PODS:]
        facts["disruptions"] = job.disruptions + len(new)
    return facts


def complete_success(
    job: Job,
    backends: Backends,
    *,
    reason: str,
    pods: list[dict[str, Any]] | None = None,
    updates: dict[str, Any] | None = None,
    outputs: set[int] | None = None,
) -> Job:
    """running or cleaning -> succeeded with the output URL (a running job passes through
    cleaning in the same write), then save the log and remove the Job from the cluster.
    Without `pods` (the finalize event), the job's pods are read first: they tell when the
    user's container started, and hold its log. An array job's `outputs` are the tasks
    whose outputs landed: see arrays.success_urls."""
    if pods is None:
        pods = joblogs.job_pods(job, backends)
        updates = {**observed(job, pods), **(updates or {})}
    updates = dict(updates or {})
    updates.update(_output_urls(job, backends, outputs, updates.get("tasks")))
    done_why = USERS_DONE if outputs is not None else USER_DONE
    via = [(Status.CLEANING, done_why)] if job.status is Status.RUNNING else []
    done = backends.store.transition(
        job.id,
        Status.SUCCEEDED,
        reason=reason,
        expect={job.status},
        via=via,
        updates=updates,
    )
    remove_from_cluster(done, backends, pods)
    return done


def _output_urls(
    job: Job, backends: Backends, outputs: set[int] | None, tasks_seen: dict[str, int] | None
) -> dict[str, Any]:
    """A succeeded job's output URLs; an array job's also sums its tasks up."""
    if outputs is None:
        url, expires = backends.bucket.output_url(
            job.output_object, backends.settings.output_url_lifetime
        )
        return {"output_file_url": url, "output_url_expires": expires}
    count = job.task_count or 0
    tasks = dict(job.tasks or {}, **(tasks_seen or {}))
    tasks.update(succeeded=len(outputs), failed=count - len(outputs), running=0, pending=0)
    return {**arrays.success_urls(job, backends, outputs), "tasks": tasks}
