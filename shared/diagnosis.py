"""Why a Kubernetes Job failed, read from its conditions and its pods' container states."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.stager.errors import ExitCode

IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")


@dataclass(frozen=True)
class Failure:
    reason: str  # short code: InputRejected, OOMKilled, DeadlineExceeded, Error, ...
    message: str
    exit_code: int | None = None

    def updates(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "exit_code": self.exit_code}


def condition(k8s_job: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in (k8s_job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind and cond.get("status") == "True":
            return dict(cond)
    return None


def finished(k8s_job: dict[str, Any]) -> str | None:
    """ "Complete", "Failed" or None while the Job is still going."""
    if condition(k8s_job, "Complete"):
        return "Complete"
    if condition(k8s_job, "Failed"):
        return "Failed"
    return None


def epoch_ms(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _statuses(pod: dict[str, Any]) -> list[tuple[bool, dict[str, Any]]]:
    status = pod.get("status") or {}
    init = [(True, s) for s in status.get("initContainerStatuses") or []]
    return init + [(False, s) for s in status.get("containerStatuses") or []]


def _newest_first(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)


def image_pull_error(pods: list[dict[str, Any]]) -> Failure | None:
    for pod in _newest_first(pods):
        for _, status in _statuses(pod):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_PULL_REASONS:
                detail = waiting.get("message") or f"cannot pull image {status.get('image')}"
                return Failure(waiting["reason"], detail)
    return None


def diagnose(k8s_job: dict[str, Any], pods: list[dict[str, Any]], *, retries: int) -> Failure:
    """The most telling reason a failed Job failed."""
    failed = condition(k8s_job, "Failed") or {}
    cond_reason = failed.get("reason") or "Failed"
    terminated: list[tuple[bool, dict[str, Any], dict[str, Any]]] = []
    for pod in _newest_first(pods):
        for is_init, status in _statuses(pod):
            state = (status.get("state") or {}).get("terminated")
            if state and state.get("exitCode", 0) != 0:
                terminated.append((is_init, status, state))
    for is_init, _, state in terminated:
        code = state.get("exitCode")
        if is_init and code == ExitCode.INPUT_REJECTED:
            detail = state.get("message") or "unsafe or too large"
            return Failure("InputRejected", f"The stager rejected the input zip: {detail}", code)
        if is_init and code == ExitCode.INPUT_MISSING:
            return Failure("InputMissing", "The input zip was not in the bucket", code)
    if cond_reason == "DeadlineExceeded":
        return Failure("DeadlineExceeded", failed.get("message") or "The job ran past its timeout")
    pull = image_pull_error(pods)
    if pull:
        return pull
    for is_init, status, state in terminated:
        code = int(state.get("exitCode", 1))
        who = f"init container {status.get('name')}" if is_init else "the container"
        if state.get("reason") == "OOMKilled":
            return Failure("OOMKilled", f"{who} ran out of memory (OOMKilled)", code)
        if cond_reason == "BackoffLimitExceeded" and retries > 0:
            return Failure(
                "BackoffLimitExceeded",
                f"failed {retries + 1} times; the last time {who} exited with code {code}",
                code,
            )
        return Failure("Error", f"{who} exited with code {code}", code)
    return Failure(cond_reason, failed.get("message") or "The Kubernetes Job failed")
