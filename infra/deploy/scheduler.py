"""The Cloud Scheduler job that calls the sync, created or brought up to date with the
google-cloud-scheduler client, so that deploying twice changes nothing the second time.

Cloud Scheduler fires at most once a minute. A JOB_SYNCHRONIZATION_INTERVAL under a minute
becomes one call a minute that runs several passes, `interval` apart (SYNC_PASSES_PER_CALL).
"""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, cast

from infra.deploy.config import DeployConfig
from infra.deploy.steps import SchedulerJob

if TYPE_CHECKING:
    from google.cloud.scheduler_v1 import CloudSchedulerClient, Job

ATTEMPT_DEADLINE = "180s"  # the sync function's timeout
COMPARED = ("description", "schedule", "time_zone", "retry_config", "attempt_deadline")


def cadence(interval: float) -> tuple[str, int]:
    """The cron schedule for an interval in seconds, and the passes each call runs."""
    if interval < 60:
        return "* * * * *", max(1, math.floor(60 / interval))
    minutes = max(1, round(interval / 60))
    if minutes < 60:
        return f"*/{minutes} * * * *", 1
    hours = round(minutes / 60)
    if hours < 24:
        return f"0 */{hours} * * *", 1
    return "0 0 * * *", 1


def job_body(config: DeployConfig) -> SchedulerJob:
    """The job in the API's JSON form; the sync's URL is looked up after it is deployed."""
    parent = f"projects/{config.project}/locations/{config.region}"
    schedule, passes = cadence(config.sync_interval)
    body: dict[str, Any] = {
        "name": f"{parent}/jobs/{config.scheduler_job}",
        "description": (
            f"kubernetes-task-runner: synchronize jobs every {config.sync_interval:g} s "
            f"({passes} pass{'es' if passes > 1 else ''} per call)"
        ),
        "schedule": schedule,
        "timeZone": "Etc/UTC",
        "httpTarget": {
            "uri": "${SYNC_URL}",
            "httpMethod": "POST",
            "oidcToken": {
                "serviceAccountEmail": config.email(config.scheduler_account),
                "audience": "${SYNC_URL}",
            },
        },
        # A failed call is tried once more soon after, and never into the next call's slot.
        "retryConfig": {
            "retryCount": 1,
            "maxRetryDuration": "50s",
            "minBackoffDuration": "10s",
            "maxBackoffDuration": "30s",
            "maxDoublings": 1,
        },
        "attemptDeadline": ATTEMPT_DEADLINE,
    }
    return SchedulerJob(parent, body)


def _target(job: Job) -> tuple[Any, ...]:
    """The parts of the HTTP target this deploy sets (Scheduler adds headers of its own)."""
    target = job.http_target
    return (target.uri, target.http_method, target.oidc_token, bytes(target.body))


def ensure(client: CloudSchedulerClient, parent: str, body: dict[str, Any]) -> str:
    """Create the job, update what differs, or leave it: "created", "updated", "unchanged"."""
    from google.api_core.exceptions import NotFound
    from google.cloud.scheduler_v1 import Job, UpdateJobRequest

    desired = cast("Job", Job.from_json(json.dumps(body)))
    try:
        current = client.get_job(name=desired.name)
    except NotFound:
        client.create_job(parent=parent, job=desired)
        return "created"
    changed = [name for name in COMPARED if getattr(current, name) != getattr(desired, name)]
    if _target(current) != _target(desired):
        changed.append("http_target")
    if not changed:
        return "unchanged"
    client.update_job(request=UpdateJobRequest(job=desired, update_mask={"paths": changed}))
    return "updated"
