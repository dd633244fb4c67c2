"""Pod volumes on the host, and the environment a container sees.

A PVC is a directory under DATA/pvc/<namespace>/<name>, and so is the claim made for a
generic ephemeral volume (`<pod>-<volume>`); emptyDir and secret volumes live under the
pod's own directory, DATA/pods/<uid>, which goes away with the pod.
"""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

from infra.local.kubesim import quantity
from infra.local.kubesim import resources as r
from infra.local.kubesim.store import Store, meta


class NotReadyError(Exception):
    """A volume or a variable cannot be set up yet (a secret does not exist)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def pod_dir(data_dir: Path, uid: str) -> Path:
    return data_dir / "pods" / uid


def log_path(data_dir: Path, uid: str, container: str, *, init: bool = False) -> Path:
    return pod_dir(data_dir, uid) / "logs" / f"{'init-' if init else ''}{container}.log"


PREEMPTION = "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."


def _controlled_by(obj: dict[str, Any], owner: dict[str, Any]) -> bool:
    return any(
        ref.get("controller") and ref.get("uid") == meta(owner)["uid"]
        for ref in meta(obj).get("ownerReferences") or []
    )


def claim_name(pod: dict[str, Any], volume: dict[str, Any]) -> str | None:
    """The claim behind a volume: its claimName, or `<pod>-<volume>` for an ephemeral one
    (ephemeral.VolumeClaimName, k8s.io/component-helpers/storage/ephemeral)."""
    claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
    if claim:
        return str(claim)
    if volume.get("ephemeral") is not None:
        return f"{meta(pod)['name']}-{volume.get('name')}"
    return None


def scheduling_blocker(store: Store, pod: dict[str, Any]) -> str | None:
    """Why the scheduler cannot place this pod yet, or None: the VolumeBinding plugin's
    podHasPVCs (pkg/scheduler/framework/plugins/volumebinding/volume_binding.go)."""
    namespace = meta(pod)["namespace"]
    for volume in (pod.get("spec") or {}).get("volumes") or []:
        claim = claim_name(pod, volume)
        if claim is None:
            continue
        ephemeral = volume.get("ephemeral") is not None
        found = store.raw(r.PVCS, namespace, claim)
        if found is None:
            reason = (
                "waiting for ephemeral volume controller to create the persistentvolumeclaim "
                f'"{claim}"'
                if ephemeral
                else f'persistentvolumeclaim "{claim}" not found'
            )
        elif meta(found).get("deletionTimestamp"):
            reason = f'persistentvolumeclaim "{claim}" is being deleted'
        elif ephemeral and not _controlled_by(found, pod):
            # ephemeral.VolumeIsForPod
            reason = (
                f"PVC {namespace}/{claim} was not created for pod {namespace}/"
                f"{meta(pod)['name']} (pod is not owner)"
            )
        else:
            continue
        return f"0/1 nodes are available: {reason}. {PREEMPTION}"
    return None


def _secret_files(store: Store, namespace: str, volume: dict[str, Any]) -> dict[str, bytes]:
    source = volume["secret"]
    name = source.get("secretName", "")
    secret = store.raw(r.SECRETS, namespace, name)
    if secret is None:
        if source.get("optional"):
            return {}
        raise NotReadyError(
            "ContainerCreating",
            f'MountVolume.SetUp failed for volume "{volume["name"]}" : secret "{name}" not found',
        )
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    items = source.get("items")
    if items:
        return {item["path"]: data[item["key"]] for item in items if item.get("key") in data}
    return data


def prepare(store: Store, data_dir: Path, pod: dict[str, Any]) -> dict[str, Path]:
    """Host directories for each volume, by volume name; raises NotReady."""
    namespace, uid = meta(pod)["namespace"], meta(pod)["uid"]
    base = pod_dir(data_dir, uid)
    paths: dict[str, Path] = {}
    files: dict[Path, bytes] = {}
    with store.lock:
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            name = volume["name"]
            claim = claim_name(pod, volume)
            if claim:
                paths[name] = data_dir / "pvc" / namespace / claim
            elif "secret" in volume:
                paths[name] = base / "volumes" / name
                for key, content in _secret_files(store, namespace, volume).items():
                    files[paths[name] / key] = content
            else:  # emptyDir and anything kubesim does not model
                paths[name] = base / "volumes" / name
    for path in paths.values():
        path.mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (base / "logs").mkdir(parents=True, exist_ok=True)
    return paths


def container_env(store: Store, pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """The container's `env`, with secretKeyRef and fieldRef resolved; raises NotReady."""
    m = meta(pod)
    env: dict[str, str] = {}
    fields = {
        "metadata.name": m["name"],
        "metadata.namespace": m["namespace"],
        "metadata.uid": m["uid"],
        "spec.nodeName": "kubesim",
        "status.podIP": (pod.get("status") or {}).get("podIP", ""),
    }
    with store.lock:
        for var in container.get("env") or []:
            source = var.get("valueFrom") or {}
            if "value" in var or not source:
                env[var["name"]] = str(var.get("value", ""))
            elif "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                secret = store.raw(r.SECRETS, m["namespace"], ref.get("name", ""))
                data = (secret or {}).get("data") or {}
                if ref.get("key") not in data:
                    if ref.get("optional"):
                        continue
                    what = f'secret "{ref.get("name")}" not found'
                    if secret is not None:
                        where = f"{m['namespace']}/{ref.get('name')}"
                        what = f"couldn't find key {ref.get('key')} in Secret {where}"
                    raise NotReadyError("CreateContainerConfigError", what)
                env[var["name"]] = base64.b64decode(data[ref["key"]]).decode(errors="replace")
            elif "fieldRef" in source:
                env[var["name"]] = field_path(pod, fields, source["fieldRef"].get("fieldPath", ""))
    return env


def field_path(pod: dict[str, Any], fields: dict[str, str], path: str) -> str:
    """fieldpath.ExtractFieldPathAsString: a plain field, or one label or annotation by key
    (`metadata.labels['k']`, `metadata.annotations['k']`; a missing key is empty), as a Job's
    JOB_COMPLETION_INDEX reads its pod's index."""
    for kind in ("labels", "annotations"):
        prefix = f"metadata.{kind}['"
        if path.startswith(prefix) and path.endswith("']"):
            values = meta(pod).get(kind) or {}
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
