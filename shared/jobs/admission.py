"""Whether Kueue has admitted a job yet, and while it has not, where and why it waits.

A job is `running` from the moment its Job exists (as the earlier API said: deployed to
the cluster), but until Kueue admits its workload the Job stays suspended and no pod runs.
Meanwhile its record's `queued` says so: its queue, its position there (1: admitted next),
Kueue's reason (e.g. "couldn't assign flavors to pod set main: insufficient unused quota
for cpu in flavor spot, 1 more needed") and since when. Once Kueue resumes the Job,
`queued` goes and `admitted` records when (a notification announces it: jobs/notify.py).

The sync reads Kueue's workloads and its visibility API once a pass, only when some job
waits (`snapshot`), and writes what changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.cloud.backends import Backends
from shared.model.diagnosis import epoch_ms
from shared.model.job import Job, Status, now_ms

PENDING = "Waiting for Kueue to admit its workload"


def pending(queue: str | None) -> dict[str, Any]:
    """The `queue` and `queued` of a job whose Job was just made in `queue`."""
    if queue is None:
        return {}
    queued = {"queue": queue, "position": None, "reason": PENDING, "since": now_ms()}
    return {"queue": queue, "queued": queued, "admitted": None}


@dataclass(frozen=True)
class Snapshot:
    """Kueue's view of the waiting jobs, read once: their workloads (by Job name) and
    their places in their LocalQueues (by workload name; 0: next)."""

    workloads: dict[str, dict[str, Any]]
    positions: dict[str, int]


def snapshot(backends: Backends, jobs: list[Job]) -> Snapshot | None:
    """What Kueue says of the jobs that wait; None when none does (nothing is read)."""
    waiting = {
        job.queue for job in jobs if job.status is Status.RUNNING and job.queued and job.queue
    }
    if not waiting:
        return None
    positions: dict[str, int] = {}
    for queue in sorted(waiting):
        positions.update(backends.queues.positions(queue))
    return Snapshot(backends.queues.workloads(), positions)


def facts(job: Job, k8s_job: dict[str, Any] | None, seen: Snapshot | None) -> dict[str, Any]:
    """The record's changes: admitted (its Job resumed), or where it waits now."""
    if job.queued is None or k8s_job is None:
        return {}
    if not (k8s_job.get("spec") or {}).get("suspend"):
        workload = seen.workloads.get(job.name) if seen else None
        # Kueue's condition keeps whole seconds: never before the job began to wait.
        at = max(_admitted_at(workload) or now_ms(), int(job.queued.get("since") or 0))
        return {"queued": None, "admitted": at}
    if seen is None or (workload := seen.workloads.get(job.name)) is None:
        return {}
    place = seen.positions.get(workload["metadata"]["name"])
    queued = {
        "queue": job.queued.get("queue"),
        "position": place + 1 if place is not None else None,
        "reason": _reason(workload),
        "since": job.queued.get("since"),
    }
    return {"queued": queued} if queued != job.queued else {}


def _condition(workload: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for found in (workload.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def _reason(workload: dict[str, Any]) -> str:
    """Kueue's own words for why it has not reserved quota for the workload yet."""
    reserved = _condition(workload, "QuotaReserved")
    if reserved and reserved.get("status") == "False" and reserved.get("message"):
        return str(reserved["message"])
    return PENDING


def _admitted_at(workload: dict[str, Any] | None) -> int | None:
    admitted = _condition(workload, "Admitted") if workload else None
    if admitted and admitted.get("status") == "True":
        return epoch_ms(admitted.get("lastTransitionTime"))
    return None
