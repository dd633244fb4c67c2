"""The Cloud Storage finalize trigger, for three kinds of object:

- a job's output zip landed, so the job succeeded. Stage-out uploads it once the user's
  container has exited 0, so the event may well come before any sync saw the job in
  `cleaning`: a `running` job then records both steps. An array job's tasks each land
  `<name>-output-<index>.zip`; the job succeeds once every task's has (arrays.py).
- the input of a job created with `input_upload` landed, so the job is deployed
  (`created` -> `running`, or its suspended Job made when it has a start time ahead).
- a submission `submissions/<account_id>/<name>.zip` landed, so job `<name>` is created from it
  (shared/jobs/start/submission.py).

Idempotent and order-tolerant: delivery is at least once, so a duplicate or late event,
or one for an object that is not a job's output, is logged and ignored. A transient
failure (Firestore or the cluster unreachable) is raised, so Eventarc redelivers.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from shared.cloud.backends import Backends
from shared.errors import TransitionRefusedError
from shared.jobs import arrays
from shared.jobs.completion import complete_success
from shared.jobs.start import submission, upload
from shared.logs import log_context
from shared.model.job import Status

log = logging.getLogger(__name__)
OUTPUT_SUFFIX = "-output.zip"
TASK_OUTPUT = re.compile(r"(.+)-output-(\d+)\.zip")


def handle(data: dict[str, Any], *, backends: Backends) -> str:
    """Act on one finalized object; returns what was done, for the log and the tests."""
    bucket, name = data.get("bucket"), str(data.get("name", ""))
    if bucket == backends.settings.bucket and submission.is_submission(name):
        return submission.handle(data, backends=backends)
    if bucket == backends.settings.bucket and upload.is_input(name):
        return upload.input_landed(name, backends)
    if bucket == backends.settings.bucket and (task := TASK_OUTPUT.fullmatch(name)):
        return _task_output(task.group(1), name, data, backends)
    if bucket != backends.settings.bucket or not name.endswith(OUTPUT_SUFFIX):
        log.info("ignored: not a job output", extra={"bucket": bucket, "object": name})
        return "ignored"
    job = backends.store.get_by_name(name.removesuffix(OUTPUT_SUFFIX))
    if job is None:
        log.info("ignored: no job has this output", extra={"object": name})
        return "ignored"
    with log_context(job_id=job.id, job_name=job.name):
        # The job's upload session sets its id on the object: an object without it was not
        # written by the job's stage-out, and proves nothing about the job.
        owner = (data.get("metadata") or {}).get("job-id")
        if owner != job.id:
            log.warning("ignored: the object is not this job's output", extra={"owner": owner})
            return "ignored"
        if job.status not in (Status.RUNNING, Status.CLEANING):
            log.info("ignored: job is %s (duplicate or late event)", job.status.value)
            return "ignored"
        try:
            complete_success(job, backends, reason="output zip finalized in the bucket")
        except TransitionRefusedError as refused:
            log.info("ignored: job became %s meanwhile", refused.current)
            return "ignored"
        log.info("job succeeded", extra={"object": name, "generation": data.get("generation")})
        return "succeeded"


def _task_output(job_name: str, name: str, data: dict[str, Any], backends: Backends) -> str:
    """One task's output: the job succeeds if it was the last one owed. Counted from the
    bucket's listing, so a redelivered event counts nothing twice; a job whose tasks may
    still fail (max_failed_tasks) is completed by the sync once its Job has ended."""
    job = backends.store.get_by_name(job_name)
    if job is None or job.task_count is None:
        log.info("ignored: no array job has this output", extra={"object": name})
        return "ignored"
    with log_context(job_id=job.id, job_name=job.name):
        if (data.get("metadata") or {}).get("job-id") != job.id:
            log.warning("ignored: the object is not this job's output", extra={"object": name})
            return "ignored"
        if job.status not in (Status.RUNNING, Status.CLEANING):
            log.info("ignored: job is %s (duplicate or late event)", job.status.value)
            return "ignored"
        landed = arrays.landed(job, backends)
        if len(landed) < (job.task_count or 0):
            log.info("task output landed", extra={"object": name, "landed": len(landed)})
            return "counted"
        try:
            complete_success(job, backends, reason="every task's output landed", outputs=landed)
        except TransitionRefusedError as refused:
            log.info("ignored: job became %s meanwhile", refused.current)
            return "ignored"
        log.info("job succeeded: every task's output landed", extra={"object": name})
        return "succeeded"
