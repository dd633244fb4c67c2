"""A cluster event that may end a job (shared/model/clusterevents.py), delivered by its
log sink's Pub/Sub topic: the job it is about is reconciled at once, as a sync would
reconcile it, instead of at the next sync. The sync stays the safety net for an event that
is lost or late.

Delivery is at least once and in no order: an event about a job that has ended, or about
no job of ours, changes nothing."""

from __future__ import annotations

import base64
import json
import logging
from typing import Any

from shared.cloud.backends import Backends
from shared.errors import TransitionRefusedError
from shared.jobs.reconciler import Reconciler
from shared.logs import log_context
from shared.model import clusterevents, manifests
from shared.model.job import Job, Status

log = logging.getLogger(__name__)


def handle(event: dict[str, Any], backends: Backends) -> str:
    """One messagePublished event's data, its message a log entry; returns the job's status
    once reconciled, or what was ignored."""
    try:
        entry = json.loads(base64.b64decode((event.get("message") or {}).get("data") or ""))
    except ValueError:
        log.warning("ignored: the message is not a log entry")
        return "ignored"
    about = clusterevents.involved(entry) if isinstance(entry, dict) else None
    if about is None or about.namespace != backends.settings.namespace:
        log.info("ignored: no event of the jobs' namespace")
        return "ignored"
    job = _job_of(about, backends)
    if job is None or job.status not in (Status.RUNNING, Status.CLEANING):
        log.info("ignored: no running job has this %s", about.kind, extra={"object": about.name})
        return "ignored"
    reason = (entry.get("jsonPayload") or {}).get("reason")
    with log_context(job_id=job.id, job_name=job.name):
        log.info("cluster event: reconciling the job", extra={"event": reason})
        try:
            job, _ = Reconciler(backends).check(job)
        except TransitionRefusedError as refused:
            log.info("status changed meanwhile; left as it is", extra={"current": refused.current})
            return refused.current
        return job.status.value


def _job_of(about: clusterevents.Involved, backends: Backends) -> Job | None:
    """A Job's job, by its name; a pod's, by the job id its labels carry."""
    if about.kind == "Job":
        return backends.store.get_by_name(about.name)
    pod = backends.cluster.pod(about.name)
    job_id = ((pod or {}).get("metadata", {}).get("labels") or {}).get(manifests.JOB_ID)
    return backends.store.get(job_id) if job_id else None
