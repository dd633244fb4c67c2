"""The kubelet's local storage eviction (pkg/kubelet/eviction/eviction_manager.go,
localStorageEviction): an emptyDir whose usage (DiskUsage: blocks of every file) exceeds
its sizeLimit, or a pod whose ephemeral storage (its emptyDirs, logs and the containers'
working directory) exceeds the pod's ephemeral-storage limit (PodLimits), is evicted with
the message of emptyDirMessageFmt or podEphemeralStorageMessageFmt
(pkg/kubelet/eviction/helpers.go)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infra.local.nodeagent import quantity, volumes

EMPTY_DIR_MESSAGE = 'Usage of EmptyDir volume "{}" exceeds the limit "{}". '  # emptyDirMessageFmt
POD_MESSAGE = "Pod ephemeral local storage usage exceeds the total limit of containers {}. "


def _limit(container: dict[str, Any]) -> quantity.Quantity | None:
    value = ((container.get("resources") or {}).get("limits") or {}).get("ephemeral-storage")
    return None if value is None else quantity.parse(value)


def pod_limit(spec: dict[str, Any]) -> quantity.Quantity | None:
    """PodLimits (k8s.io/component-helpers/resource) for ephemeral-storage: the sum over
    the regular containers, or the largest init container's, whichever is larger."""
    total: quantity.Quantity | None = None
    for container in spec.get("containers") or []:
        if (parsed := _limit(container)) is not None:
            total = parsed if total is None else total + parsed
    for container in spec.get("initContainers") or []:
        parsed = _limit(container)
        if parsed is not None and (total is None or parsed.value > total.value):
            total = parsed
    return total


def verdict(spec: dict[str, Any], pod_dir: Path) -> str | None:
    """Why the pod with this spec and files is to be evicted, or None."""
    in_empty_dirs = 0
    for volume in spec.get("volumes") or []:
        if volume.get("emptyDir") is None:
            continue
        used = volumes.disk_usage(pod_dir / "volumes" / volume["name"])
        in_empty_dirs += used
        limit = volume["emptyDir"].get("sizeLimit")
        if limit is not None and 0 < (size := quantity.parse(limit)).value < used:
            return EMPTY_DIR_MESSAGE.format(volume["name"], size)
    total = pod_limit(spec)
    if total is None:
        return None
    used = (
        in_empty_dirs + volumes.disk_usage(pod_dir / "logs") + volumes.disk_usage(pod_dir / "work")
    )
    return POD_MESSAGE.format(total) if used > total.value else None
