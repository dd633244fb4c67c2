"""Pod status as the kubelet reports it: phase, conditions and container states.

Kept apart from the kubelet's threads so the shape of a status (what clients and the
product's diagnosis read) is in one place.
"""

from __future__ import annotations

import uuid
from typing import Any

from infra.local.kubesim.clock import now_rfc3339

Status = dict[str, Any]


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
        status["initContainerStatuses"] = [container_status(c, "PodInitializing") for c in init]
        status["initContainerStatuses"][0]["state"] = {"waiting": {"reason": "ContainerCreating"}}
    set_condition(status, "PodReadyToStartContainers", False)
    set_condition(
        status,
        "Initialized",
        not init,
        None if not init else "ContainersNotInitialized",
        None
        if not init
        else f"containers with incomplete status: [{' '.join(c['name'] for c in init)}]",
    )
    set_condition(status, "Ready", False, "ContainersNotReady")
    set_condition(status, "ContainersReady", False, "ContainersNotReady")
    set_condition(status, "PodScheduled", True)
    return status


def entry(status: Status, init: bool, name: str) -> dict[str, Any] | None:
    key = "initContainerStatuses" if init else "containerStatuses"
    for item in status.get(key) or []:
        if item["name"] == name:
            result: dict[str, Any] = item
            return result
    return None


def waiting(item: dict[str, Any], reason: str, message: str | None = None) -> None:
    item["state"] = {"waiting": {"reason": reason, **({"message": message} if message else {})}}


def running(item: dict[str, Any]) -> None:
    item["state"] = {"running": {"startedAt": now_rfc3339()}}
    item["started"] = True
    item["containerID"] = f"containerd://{uuid.uuid4().hex}"
    item["imageID"] = f"{item['image']}@sha256:{uuid.uuid4().hex}{uuid.uuid4().hex}"


def terminated(item: dict[str, Any], exit_code: int, reason: str) -> None:
    started = (item.get("state") or {}).get("running", {}).get("startedAt", now_rfc3339())
    item["state"] = {
        "terminated": {
            "exitCode": exit_code,
            "reason": reason,
            "startedAt": started,
            "finishedAt": now_rfc3339(),
            "containerID": item.get("containerID", ""),
        }
    }
    item["ready"] = False
    item["started"] = False


def is_ready(status: Status) -> bool:
    return any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or []
    )
