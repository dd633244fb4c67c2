"""What a job's Job and pods say: whether it ended, whether the user's container is done,
when it started, how many pods were disrupted, and why it failed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.contract.exits import ExitCode
from shared.model.manifests import STAGE_IN, STAGE_OUT, USER_CONTAINER

IMAGE_PULL_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName")
# What a registry answers through containerd for an image that is not there (a misspelled
# name or tag) or not to be had without credentials: another pull cannot succeed.
MISSING_IMAGE = ("not found", "repository does not exist", "manifest unknown", "access denied")
MAX_DISRUPTED_PODS = 100  # pod names kept on a record to count disruptions once each

Pod = dict[str, Any]


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
    """ "Complete", "Failed" or None while the Job is still going.

    Kubernetes 1.31 and later set SuccessCriteriaMet or FailureTarget as soon as the outcome
    is decided, and Complete or Failed only once every pod has terminated: the outcome is
    final from the first (pkg/controller/job/job_controller.go)."""
    if condition(k8s_job, "Complete") or condition(k8s_job, "SuccessCriteriaMet"):
        return "Complete"
    if condition(k8s_job, "Failed") or condition(k8s_job, "FailureTarget"):
        return "Failed"
    return None


def epoch_ms(timestamp: str | None) -> int | None:
    if not timestamp:
        return None
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def _statuses(pod: Pod) -> list[dict[str, Any]]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _container(pod: Pod, name: str) -> dict[str, Any]:
    for status in _statuses(pod):
        if status.get("name") == name:
            return dict(status.get("state") or {})
    return {}


def _newest_first(pods: list[Pod]) -> list[Pod]:
    return sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", reverse=True)


def user_started(pods: list[Pod]) -> int | None:
    """When the user's container first started (epoch ms), over all attempts."""
    starts = []
    for pod in pods:
        state = _container(pod, USER_CONTAINER)
        started = (state.get("running") or state.get("terminated") or {}).get("startedAt")
        if (ms := epoch_ms(started)) is not None:
            starts.append(ms)
    return min(starts, default=None)


def user_finished(pods: list[Pod]) -> int | None:
    """When the user's container last finished (epoch ms), over all attempts (an array
    job's pods: its last task's end); None while none has."""
    ends = []
    for pod in pods:
        terminated = _container(pod, USER_CONTAINER).get("terminated") or {}
        if (ms := epoch_ms(terminated.get("finishedAt"))) is not None:
            ends.append(ms)
    return max(ends, default=None)


def user_succeeded(pods: list[Pod]) -> bool:
    """Whether a pod's user container has exited 0: stage-out runs, or has run."""
    for pod in pods:
        terminated = _container(pod, USER_CONTAINER).get("terminated")
        if terminated is not None and terminated.get("exitCode") == 0:
            return True
    return False


def user_pod(pods: list[Pod]) -> Pod | None:
    """The newest pod whose user container has started; else the newest pod."""
    ordered = _newest_first(pods)
    for pod in ordered:
        state = _container(pod, USER_CONTAINER)
        if "running" in state or "terminated" in state:
            return pod
    return ordered[0] if ordered else None


def disrupted(pods: list[Pod]) -> list[str]:
    """The pods with the DisruptionTarget condition: evicted, drained, preempted. The
    Job's podFailurePolicy ignores them, so they use up no retry."""
    names = []
    for pod in pods:
        for cond in (pod.get("status") or {}).get("conditions") or []:
            if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
                names.append(pod["metadata"]["name"])
                break
    return names


def waiting_reason(pod: Pod | None) -> str:
    """Why the user's container is not running yet, in a few words."""
    if pod is None:
        return "no pod yet"
    state = _container(pod, USER_CONTAINER)
    waiting = state.get("waiting") or {}
    if waiting:
        return str(waiting.get("reason") or "waiting")
    return str((pod.get("status") or {}).get("phase") or "Pending")


def image_pull_error(pods: list[Pod]) -> Failure | None:
    for pod in _newest_first(pods):
        for status in _statuses(pod):
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_PULL_REASONS:
                detail = waiting.get("message") or f"cannot pull image {status.get('image')}"
                return Failure(waiting["reason"], detail)
    return None


def image_missing(failure: Failure) -> bool:
    """Whether an image pull failure is final: the image does not exist (or may not be
    pulled), rather than a registry that did not answer in time."""
    message = failure.message.lower()
    return failure.reason == "InvalidImageName" or any(text in message for text in MISSING_IMAGE)


def _killed_by_kubelet(pods: list[Pod]) -> Failure | None:
    """A pod the kubelet failed itself, which it keeps (phase Failed) with a reason:
    `DeadlineExceeded` past the pod's activeDeadlineSeconds (pkg/kubelet/active_deadline.go),
    `Evicted` past its own limits, an emptyDir's sizeLimit or the pod's ephemeral storage
    (pkg/kubelet/eviction/eviction_manager.go: no DisruptionTarget condition there)."""
    for pod in _newest_first(pods):
        status = pod.get("status") or {}
        if status.get("reason") in ("DeadlineExceeded", "Evicted"):
            message = (status.get("message") or "The kubelet stopped the pod").strip()
            return Failure(status["reason"], message)
    return None


def _last_line(state: dict[str, Any]) -> str:
    """The stager's one-line account of a failure: its termination message, or the last
    line of its log when the message fell back to the log's tail."""
    lines = (state.get("message") or "").strip().splitlines()
    return lines[-1].strip() if lines else ""


def diagnose(k8s_job: dict[str, Any], pods: list[Pod], *, retries: int) -> Failure:
    """The most telling reason a failed Job failed."""
    failed = condition(k8s_job, "Failed") or condition(k8s_job, "FailureTarget") or {}
    cond_reason = failed.get("reason") or "Failed"
    exits: list[tuple[str, dict[str, Any]]] = []
    for pod in _newest_first(pods):
        for status in _statuses(pod):
            state = (status.get("state") or {}).get("terminated")
            if state and state.get("exitCode", 0) != 0:
                exits.append((str(status.get("name")), state))
    for name, state in exits:
        code = state.get("exitCode")
        detail = _last_line(state)
        if name == STAGE_IN and code == ExitCode.INPUT_REJECTED:
            return Failure(
                "InputRejected", f"The stager rejected the input zip: {detail or 'unsafe'}", code
            )
        if name == STAGE_IN and code == ExitCode.INPUT_MISSING:
            return Failure("InputMissing", f"The input zip could not be read: {detail}", code)
    killed = _killed_by_kubelet(pods)
    if killed:
        return killed
    if cond_reason == "DeadlineExceeded":
        return Failure("DeadlineExceeded", failed.get("message") or "The job ran past its timeout")
    for name, state in exits:
        if name == STAGE_OUT:
            detail = _last_line(state) or f"exit code {state.get('exitCode')}"
            return Failure("CleanupFailed", f"Uploading the output failed: {detail}", None)
    pull = image_pull_error(pods)
    if pull:
        return pull
    for name, state in exits:
        code = int(state.get("exitCode", 1))
        who = "the job's container" if name == USER_CONTAINER else f"container {name}"
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
