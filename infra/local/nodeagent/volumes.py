"""A pod's files on the node: its emptyDir volumes, logs and termination messages, all
under the pod's own directory, DATA/pods/<uid>, which goes away with the pod; and how its
containers' mounts, read-only paths and memory limits are read from its spec.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from infra.local.nodeagent import quantity


def pod_dir(data_dir: Path, uid: str) -> Path:
    return data_dir / "pods" / uid


def log_path(data_dir: Path, uid: str, container: str, *, init: bool = False) -> Path:
    return pod_dir(data_dir, uid) / "logs" / f"{'init-' if init else ''}{container}.log"


def previous_log(path: Path) -> Path:
    """Where a container's log goes when it is restarted: `kubectl logs --previous`."""
    return path.with_suffix(".previous")


PREEMPTION = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def field_path(pod: dict[str, Any], fields: dict[str, str], path: str) -> str:
    """fieldpath.ExtractFieldPathAsString: a plain field, or one label or annotation by key
    (`metadata.labels['k']`, `metadata.annotations['k']`; a missing key is empty), as a Job's
    JOB_COMPLETION_INDEX reads its pod's index."""
    for kind in ("labels", "annotations"):
        prefix = f"metadata.{kind}['"
        if path.startswith(prefix) and path.endswith("']"):
            values = pod["metadata"].get(kind) or {}
            return str(values.get(path[len(prefix) : -2], ""))
    return fields.get(path, "")


def mounts(container: dict[str, Any], paths: dict[str, Path]) -> list[tuple[str, Path]]:
    out = []
    for mount in container.get("volumeMounts") or []:
        host = paths.get(mount.get("name", ""))
        if host is None:
            continue
        if mount.get("subPath"):
            host = host / mount["subPath"]
            host.mkdir(parents=True, exist_ok=True)
        out.append((mount["mountPath"], host))
    return out


def read_only_paths(container: dict[str, Any], spec: dict[str, Any]) -> frozenset[str]:
    """Mount paths a container sees read-only: readOnly mounts, and secret volumes, which
    the kubelet always mounts read-only."""
    secrets = {v.get("name") for v in spec.get("volumes") or [] if "secret" in v}
    return frozenset(
        m["mountPath"]
        for m in container.get("volumeMounts") or []
        if m.get("readOnly") or m.get("name") in secrets
    )


def memory_limit(container: dict[str, Any]) -> int | None:
    """resources.limits.memory in bytes, or None."""
    value = ((container.get("resources") or {}).get("limits") or {}).get("memory")
    return None if value is None else max(1, int(quantity.parse(value).value))


def termination_path(data_dir: Path, uid: str, container: str, *, init: bool = False) -> Path:
    """The host file behind a container's terminationMessagePath."""
    return pod_dir(data_dir, uid) / "termination" / f"{'init-' if init else ''}{container}"


def disk_usage(path: Path) -> int:
    """Bytes a directory takes on disk, as the kubelet measures a volume: DiskUsage in
    pkg/volume/util/fs/fs.go adds st_blocks * 512 of every file and directory under it,
    counts a hard-linked inode once and does not cross into other filesystems."""
    try:
        top = os.lstat(path)
    except OSError:
        return 0
    total, seen, stack = 0, set(), [str(path)]
    while stack:
        current = stack.pop()
        try:
            info = os.lstat(current)
        except OSError:
            continue  # deleted after the directory was read
        if info.st_dev != top.st_dev or info.st_ino in seen:
            continue
        if info.st_nlink > 1:
            seen.add(info.st_ino)
        total += info.st_blocks * 512
        if stat.S_ISDIR(info.st_mode):
            try:
                stack.extend(os.path.join(current, name) for name in os.listdir(current))
            except OSError:
                continue
    return total
