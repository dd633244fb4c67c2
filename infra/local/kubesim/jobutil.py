"""What the Job controller asks of a Job and its pods: conditions, the job-tracking
finalizer, and when a pod counts as failed (pkg/controller/job/job_controller.go:
ensureJobConditionStatus, isPodFailed, onlyReplaceFailedPods; util.IsJobFinished)."""

from __future__ import annotations

from typing import Any

from infra.local.kubesim.clock import now_rfc3339
from infra.local.kubesim.store import Obj, meta

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
TERMINAL = ("Succeeded", "Failed")


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            result: dict[str, Any] = cond
            return result
    return None


def set_condition(
    status: dict[str, Any], kind: str, value: bool, reason: str, message: str
) -> None:
    """ensureJobConditionStatus: a new or changed condition gets fresh times."""
    conditions = status.setdefault("conditions", [])
    text = "True" if value else "False"
    now = now_rfc3339()
    for cond in conditions:
        if cond["type"] == kind:
            if (cond["status"], cond.get("reason"), cond.get("message")) != (
                text,
                reason,
                message,
            ):
                cond.update(
                    status=text,
                    reason=reason,
                    message=message,
                    lastProbeTime=now,
                    lastTransitionTime=now,
                )
            return
    if not value:
        return
    conditions.append(
        {
            "type": kind,
            "status": text,
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )


def has_finalizer(pod: Obj) -> bool:
    return TRACKING_FINALIZER in (meta(pod).get("finalizers") or [])


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL


def only_replace_failed(job: Obj) -> bool:
    """onlyReplaceFailedPods: podReplacementPolicy Failed, or any podFailurePolicy."""
    spec = job.get("spec") or {}
    return spec.get("podReplacementPolicy") == "Failed" or spec.get("podFailurePolicy") is not None


def is_pod_failed(pod: Obj, job: Obj) -> bool:
    """isPodFailed (job_controller.go)."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    if only_replace_failed(job):
        return False
    return bool(meta(pod).get("deletionTimestamp")) and phase != "Succeeded"


def is_finished(job: Obj) -> bool:
    status = job.get("status") or {}
    return bool(condition(status, "Complete") or condition(status, "Failed"))
