"""Pod status as the kubelet reports it: phase, conditions and container states.

Kept apart from the kubelet's threads so the shape of a status (what clients and the
product's diagnosis read) is in one place.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from infra.local.nodeagent import podlogs
from infra.local.nodeagent.clock import now_rfc3339

Status = dict[str, Any]
TERMINATION_MESSAGE_LENGTH = 4 * 1024  # kubecontainer.MaxContainerTerminationMessageLength
TERMINATION_LOG_LENGTH = 2 * 1024  # kubecontainer.MaxContainerTerminationMessageLogLength
TERMINATION_LOG_LINES = 80  # kubecontainer.MaxContainerTerminationMessageLogLines


def termination_message(
    container: dict[str, Any], exit_code: int, reason: str, message_path: Path, log_path: Path
) -> str:
    """getTerminationMessage: the last 4,096 bytes of the terminationMessagePath, else, with
    FallbackToLogsOnError and a failure, the log's tail (readLastStringFromContainerLogs:
    the last 80 lines, then their last 2,048 bytes)."""
    try:
        with message_path.open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - TERMINATION_MESSAGE_LENGTH))
            text = handle.read().decode(errors="replace")
    except OSError:
        text = ""
    fallback = (
        container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
        and exit_code != 0
        and reason != "ContainerCannotRun"
    )
    if text or not fallback:
        return text
    try:
        data = log_path.read_bytes()
    except OSError:
        return ""
    data = podlogs.tail_lines(data, TERMINATION_LOG_LINES)[-TERMINATION_LOG_LENGTH:]
    return data.decode(errors="replace")


def set_condition(
    status: Status, kind: str, value: bool, reason: str | None = None, message: str | None = None
) -> None:
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    wanted = "True" if value else "False"
    for cond in conditions:
        if cond["type"] == kind:
            if cond["status"] != wanted:
                cond["lastTransitionTime"] = now_rfc3339()
            cond["status"] = wanted
            _reason(cond, reason, message)
            return
    cond = {
        "type": kind,
        "status": wanted,
        "lastProbeTime": None,
        "lastTransitionTime": now_rfc3339(),
    }
    _reason(cond, reason, message)
    conditions.append(cond)


def _reason(cond: dict[str, Any], reason: str | None, message: str | None) -> None:
    for key, value in (("reason", reason), ("message", message)):
        if value:
            cond[key] = value
        else:
            cond.pop(key, None)


def container_status(container: dict[str, Any], reason: str) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container.get("image", ""),
        "imageID": "",
        "ready": False,
        "restartCount": 0,
        "started": False,
        "state": {"waiting": {"reason": reason}},
        "lastState": {},
    }


def initial(spec: dict[str, Any], host_ip: str, pod_ip: str) -> Status:
    init = spec.get("initContainers") or []
    waiting = "PodInitializing" if init else "ContainerCreating"
    status: Status = {
        "phase": "Pending",
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "podIP": pod_ip,
        "podIPs": [{"ip": pod_ip}],
        "startTime": now_rfc3339(),
        "qosClass": "BestEffort",
        "conditions": [],
        "containerStatuses": [container_status(c, waiting) for c in spec.get("containers") or []],
    }
    if init:
        # convertToAPIContainerStatuses (pkg/kubelet/kubelet_pods.go): every container of a
        # pod with init containers, the first init container included, waits with
        # PodInitializing until it has a runtime status.
        status["initContainerStatuses"] = [container_status(c, "PodInitializing") for c in init]
    set_condition(status, "PodReadyToStartContainers", False)
    update_initialized(status)
    update_ready(status)
    set_condition(status, "PodScheduled", True)
    return status


def _names(names: list[str]) -> str:
    return "[" + " ".join(names) + "]"


def update_initialized(status: Status) -> None:
    """GeneratePodInitializedCondition (pkg/kubelet/status/generate.go): initialized once
    every init container has terminated with exit code 0."""
    incomplete = [
        item["name"]
        for item in status.get("initContainerStatuses") or []
        if (item["state"].get("terminated") or {}).get("exitCode", 1) != 0
    ]
    if incomplete:
        message = f"containers with incomplete status: {_names(incomplete)}"
        set_condition(status, "Initialized", False, "ContainersNotInitialized", message)
    else:
        set_condition(status, "Initialized", True)


def update_ready(status: Status) -> None:
    """GenerateContainersReadyCondition and GeneratePodReadyCondition: ready while every
    regular container is ready; in a terminal phase, False with PodCompleted or PodFailed."""
    phase = status.get("phase")
    if phase in ("Succeeded", "Failed"):
        reason = "PodCompleted" if phase == "Succeeded" else "PodFailed"
        for kind in ("Ready", "ContainersReady"):
            set_condition(status, kind, False, reason)
        return
    unready = [i["name"] for i in status.get("containerStatuses") or [] if not i.get("ready")]
    if unready:
        message = f"containers with unready status: {_names(unready)}"
        for kind in ("Ready", "ContainersReady"):
            set_condition(status, kind, False, "ContainersNotReady", message)
    else:
        for kind in ("Ready", "ContainersReady"):
            set_condition(status, kind, True)


def entry(status: Status, init: bool, name: str) -> dict[str, Any] | None:
    key = "initContainerStatuses" if init else "containerStatuses"
    for item in status.get(key) or []:
        if item["name"] == name:
            result: dict[str, Any] = item
            return result
    return None


def waiting(item: dict[str, Any], reason: str, message: str | None = None) -> None:
    item["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def crash_loop(item: dict[str, Any], message: str) -> None:
    """A container that ended waits to be started again: its run becomes lastState, and
    restartCount counts it (the kubelet's CrashLoopBackOff)."""
    item["lastState"] = {"terminated": item["state"]["terminated"]}
    item["restartCount"] = int(item.get("restartCount") or 0) + 1
    waiting(item, "CrashLoopBackOff", message)


def running(item: dict[str, Any]) -> None:
    item["state"] = {"running": {"startedAt": now_rfc3339()}}
    item["started"] = True
    item["containerID"] = f"containerd://{uuid.uuid4().hex}"
    item["imageID"] = f"{item['image']}@sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"


def terminated(
    item: dict[str, Any],
    exit_code: int,
    reason: str,
    message: str = "",
    *,
    init: bool = False,
) -> None:
    """A container's end. An init container that exited 0 is ready (the prober manager's
    UpdatePodStatus); a regular one is not ready once it stopped."""
    started = (item.get("state") or {}).get("running", {}).get("startedAt", now_rfc3339())
    term: dict[str, Any] = {"exitCode": exit_code, "reason": reason}
    if message:
        term["message"] = message
    term.update(
        startedAt=started, finishedAt=now_rfc3339(), containerID=item.get("containerID", "")
    )
    item["state"] = {"terminated": term}
    item["ready"] = init and exit_code == 0
    item["started"] = False


UNKNOWN_MESSAGE = "The container could not be located when the pod was terminated"


def _unknown(item: dict[str, Any]) -> None:
    item["state"] = {
        "terminated": {
            "exitCode": 137,
            "reason": "ContainerStatusUnknown",
            "message": UNKNOWN_MESSAGE,
            "startedAt": None,
            "finishedAt": None,
        }
    }
    item["ready"] = False
    item["started"] = False


def _has_initialized(status: Status) -> bool:
    """hasPodInitialized (pkg/kubelet/status/status_manager.go)."""
    inits = status.get("initContainerStatuses") or []
    if not inits:
        return True
    if any("waiting" not in i["state"] for i in status.get("containerStatuses") or []):
        return True
    last = inits[-1]["state"].get("terminated")
    return last is not None and last.get("exitCode") == 0


def terminate(status: Status) -> None:
    """TerminatePod (pkg/kubelet/status/status_manager.go): once a pod has stopped, a
    container with no known end is reported terminated with exit code 137 and reason
    ContainerStatusUnknown: every regular container once the pod had initialized, and
    every init container but the trailing ones that never started (at least the first)."""
    if _has_initialized(status):
        for item in status.get("containerStatuses") or []:
            if "terminated" not in item["state"]:
                _unknown(item)
    inits = status.get("initContainerStatuses") or []
    attempted = 1 if inits else 0
    for index, item in enumerate(inits):
        if "waiting" not in item["state"]:
            attempted = index + 1
    for item in inits[:attempted]:
        if "terminated" not in item["state"]:
            _unknown(item)


def is_ready(status: Status) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )


def started(status: Status, item: dict[str, Any], init: bool) -> None:
    """A container has started; a regular one makes the pod Running."""
    running(item)
    if init:
        return
    item["ready"] = True
    status["phase"] = "Running"
    update_ready(status)


def ended(
    status: Status, item: dict[str, Any], init: bool, exit_code: int, reason: str, message: str
) -> None:
    """A container has ended, with its exit code, reason and termination message."""
    terminated(item, exit_code, reason, message, init=init)
    if init:
        update_initialized(status)
        return
    update_ready(status)


def finished(status: Status, stopped_for: tuple[str, str] | None) -> None:
    """The pod's terminal phase: Succeeded when every container exited 0 by itself;
    `stopped_for` (reason, message) when the node stopped it."""
    main = [i["state"].get("terminated") for i in status.get("containerStatuses") or []]
    ok = all(t is not None and t["exitCode"] == 0 for t in main)
    status["phase"] = "Succeeded" if ok and stopped_for is None else "Failed"
    if stopped_for is not None:
        status["reason"], status["message"] = stopped_for
    terminate(status)
    update_ready(status)
    set_condition(status, "PodReadyToStartContainers", False)
