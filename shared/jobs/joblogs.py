"""A job's log: read from the cluster while the job runs, and saved to the bucket as
`<name>-logs.txt` before its pod is deleted, so that it outlives the job.

Only the user's container's log is kept: at most MAX_LOG_BYTES, its end, with a first line
saying what was cut. A log that cannot be read is never an error for the caller: the text
says why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from shared.cloud.backends import Backends
from shared.errors import ClusterApiError, ClusterNotFoundError
from shared.jobs import tasks
from shared.model import diagnosis, manifests
from shared.model.job import FINAL, Job, Status

log = logging.getLogger(__name__)
POD_GONE = b"(No log: the job's pod was gone before its log could be saved.)\n"
PARTIAL_LINE_LIMIT = 4096  # bytes: after a cut, a partial first line shorter than this goes


@dataclass(frozen=True)
class LogView:
    log: str
    complete: bool  # the job is over: this is all there will ever be
    truncated: bool  # its beginning was cut to MAX_LOG_BYTES

    def as_dict(self) -> dict[str, Any]:
        return {"log": self.log, "complete": self.complete, "truncated": self.truncated}


def job_pods(job: Job, backends: Backends) -> list[dict[str, Any]]:
    return backends.cluster.pods(manifests.job_selector(job.id))


def log_object(job: Job, task: int | None) -> str:
    return job.log_object if task is None else job.task_log_object(task)


def save(
    job: Job, backends: Backends, pods: list[dict[str, Any]], *, task: int | None = None
) -> None:
    """Save the user container's log unless it is saved already (an array job's: each
    task's, `task` the one whose `pods` these are). Raises BucketError (and ClusterApiError
    when the cluster is out of reach): the caller must then keep the pod."""
    if task is None and job.task_count is not None:
        _save_tasks(job, backends, pods)
        return
    keep = backends.settings.max_log_bytes
    text, truncated = _final_text(job, backends, pods, keep)
    saved = backends.bucket.save_text(
        log_object(job, task),
        text,
        job_id=job.id,
        metadata={"truncated": "true" if truncated else "false"},
    )
    log.info(
        "log saved" if saved else "log was saved already",
        extra={"bytes": len(text), "task": task},
    )


def _save_tasks(job: Job, backends: Backends, pods: list[dict[str, Any]]) -> None:
    """Each task's log as `<name>-logs-<index>.txt`, from its newest pod that ran. A task
    that never had a pod (killed, or its job failed, before its turn) has no log."""

    def save_task(index: int) -> None:
        save(job, backends, tasks.pods_of(pods, index), task=index)

    tasks.each(save_task, tasks.indexes_of(pods))


def _final_text(
    job: Job, backends: Backends, pods: list[dict[str, Any]], keep: int
) -> tuple[bytes, bool]:
    pod = diagnosis.user_pod(pods)
    if pod is None:
        return POD_GONE, False
    name = pod["metadata"]["name"]
    try:
        data, cut = backends.cluster.pod_log_end(name, manifests.USER_CONTAINER, keep)
    except ClusterNotFoundError:
        return POD_GONE, False
    except ClusterApiError as error:
        if error.transient:
            raise
        reason = diagnosis.waiting_reason(pod)
        return f"(No log: the job's container never ran: {reason}.)\n".encode(), False
    if not cut:
        return data, False
    newline = data.find(b"\n", 0, PARTIAL_LINE_LIMIT)
    if newline >= 0:
        data = data[newline + 1 :]
    note = f"[log cut: only its last {len(data)} bytes are kept]\n".encode()
    return note + data, True


def read(job: Job, backends: Backends, *, tail: int | None, task: int | None = None) -> LogView:
    """The log as it is now: from the cluster while the job runs, from the bucket after.
    An array job's: task `task`'s (the first task's when not given)."""
    if job.task_count is not None and task is None:
        task = 0
    if job.status in FINAL:
        found = backends.bucket.read(log_object(job, task))
        if found is None:
            why = "the job never ran" if job.start_time is None else "it could not be saved"
            return LogView(f"(No log was saved: {why}.)\n", complete=True, truncated=False)
        data, metadata = found
        return LogView(
            _tail(data.decode("utf-8", "replace"), tail),
            complete=True,
            truncated=metadata.get("truncated") == "true",
        )
    if job.status is Status.CREATED:
        return LogView("(The job has not started yet.)\n", complete=False, truncated=False)
    pod = None
    try:
        pods = job_pods(job, backends)
        if task is not None:
            pods = tasks.pods_of(pods, task)
        pod = diagnosis.user_pod(pods)
        if pod is None:
            return LogView("(The job's pod does not exist yet.)\n", complete=False, truncated=False)
        data = backends.cluster.pod_log(
            pod["metadata"]["name"],
            manifests.USER_CONTAINER,
            tail_lines=tail,
            limit_bytes=backends.settings.max_log_bytes,
        )
    except ClusterApiError as error:
        # 400: the container has not started (still pulling, or stage-in runs).
        if error.status == 400:
            text = f"(The job's container has not started yet: {diagnosis.waiting_reason(pod)}.)\n"
        else:
            text = f"(The log could not be read from the cluster: {error}.)\n"
        return LogView(text, complete=False, truncated=False)
    return LogView(data.decode("utf-8", "replace"), complete=False, truncated=False)


def _tail(text: str, lines: int | None) -> str:
    if lines is None:
        return text
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept)
