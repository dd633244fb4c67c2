"""Taking a job off the cluster once it is over: its log saved first, then its Job (and
with it its pods) deleted. What cannot be done now is left to the next sync, which saves
what is missing and deletes what is left: everything the product makes is labelled."""

from __future__ import annotations

import logging
from typing import Any

from shared.cloud.backends import Backends
from shared.errors import BucketError, ClusterApiError
from shared.jobs import joblogs
from shared.model.job import Job

log = logging.getLogger(__name__)


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


def remove_unstarted(job: Job, backends: Backends) -> bool:
    """A job that never started (killed while `created`): its suspended Job, if any, has
    no pod and no log. True if the sync must finish."""
    try:
        backends.cluster.delete_job(job.name)
    except ClusterApiError as error:
        log.warning("cleanup postponed to the sync", extra={"error": str(error)})
        return True
    return False
