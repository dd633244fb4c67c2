"""The local cloud's nodes, as a kubelet keeps them: each registers its Node object with
capacity, allocatable, addresses and a Ready condition, then renews its Lease in
kube-node-lease every RENEW_SECONDS and reports its status every STATUS_SECONDS, as the
kubelet does with leases (nodeLeaseDurationSeconds 40, renewal at a quarter of it;
nodeStatusReportFrequency). Each node speaks as itself, `system:node:<name>` in the group
`system:nodes`: the API server's Node authorizer and NodeRestriction admission hold it to
its own objects, as they hold a kubelet.

Two nodes, as a GKE cluster with a Spot node pool has them: `local-node`, and
`local-spot-node` with the Spot label and taint, so that a `spot: true` job is placed by the
real scheduler.
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import threading
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

SPOT_LABEL = "cloud.google.com/gke-spot"  # GKE's, on a Spot node pool's nodes and taint
# GKE labels each node with its provisioning model: Kueue's flavors select nodes by it
# (shared/model/queues.py), and so does a job that asks for Spot capacity.
PROVISIONING_LABEL = "cloud.google.com/gke-provisioning"
LEASE_SECONDS = 40  # the kubelet's nodeLeaseDurationSeconds
RENEW_SECONDS = 10.0  # a quarter of it, as the kubelet renews
STATUS_SECONDS = 60.0  # how often the Ready condition's heartbeat is posted
MAX_PODS = "110"  # the kubelet's default maxPods
RELEASE = "v1.36.3"  # the control plane's (infra/local/controlplane/build.py)


@dataclass(frozen=True)
class NodeSpec:
    name: str
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()


NODES = (
    NodeSpec("local-node", labels={PROVISIONING_LABEL: "standard"}),
    NodeSpec(
        "local-spot-node",
        labels={SPOT_LABEL: "true", PROVISIONING_LABEL: "spot"},
        taints=({"key": SPOT_LABEL, "value": "true", "effect": "NoSchedule"},),
    ),
)


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="microseconds")


def _capacity() -> dict[str, str]:
    """This machine's: every node of the local cloud is all of it."""
    memory_kib = 0
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                memory_kib = int(line.split()[1])
    disk = shutil.disk_usage("/").total
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib}Ki",
        "ephemeral-storage": str(disk),
        "pods": MAX_PODS,
    }


def _conditions(now: str) -> list[dict[str, str]]:
    healthy = [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID"),
        ("Ready", "True", "KubeletReady"),
    ]
    return [
        {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": "local cloud node agent",
            "lastHeartbeatTime": now,
            "lastTransitionTime": now,
        }
        for kind, status, reason in healthy
    ]


def node_object(spec: NodeSpec, kubelet_port: int) -> dict[str, Any]:
    """The Node a kubelet registers: labels, taints, and a status that says it is ready."""
    capacity = _capacity()
    labels = {
        "kubernetes.io/hostname": spec.name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        **spec.labels,
    }
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": spec.name, "labels": labels},
        "spec": {"taints": list(spec.taints)} if spec.taints else {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": _conditions(_now()),
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": spec.name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "kubeletVersion": RELEASE,
                "kubeProxyVersion": "",
                "containerRuntimeVersion": "nodeagent://local",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "osImage": "local cloud",
                "kernelVersion": os.uname().release,
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


class Node:
    """One node: registered once, then kept alive until `stop`."""

    def __init__(self, spec: NodeSpec, api: Any, kubelet_port: int) -> None:
        from kubernetes import client

        self.spec = spec
        # Plain dicts as bodies, as a kubelet sends JSON: the models' types are not used.
        self.core: Any = client.CoreV1Api(api)
        self.leases: Any = client.CoordinationV1Api(api)
        self.kubelet_port = kubelet_port
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> None:
        """Create the Node, or take over the one a previous run left (its status anew)."""
        from kubernetes.client import ApiException

        body = node_object(self.spec, self.kubelet_port)
        try:
            self.core.create_node(body)
        except ApiException as error:
            if error.status != 409:
                raise
            self.core.patch_node_status(self.spec.name, {"status": body["status"]})
        self._renew()

    def start(self) -> None:
        self.register()
        self._thread = threading.Thread(target=self._beat, name=self.spec.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _beat(self) -> None:
        since_status = 0.0
        while not self._stop.wait(RENEW_SECONDS):
            try:
                self._renew()
                since_status += RENEW_SECONDS
                if since_status >= STATUS_SECONDS:
                    self._report()
                    since_status = 0.0
            except Exception as error:  # noqa: BLE001 - a beat missed is retried next time
                log.warning(
                    "node heartbeat failed", extra={"node": self.spec.name, "error": str(error)}
                )

    def _renew(self) -> None:
        """The Lease in kube-node-lease: created on first beat, renewed after."""
        from kubernetes.client import ApiException

        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self.spec.name, "namespace": "kube-node-lease"},
            "spec": {
                "holderIdentity": self.spec.name,
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": _now(),
            },
        }
        try:
            self.leases.patch_namespaced_lease(self.spec.name, "kube-node-lease", body)
        except ApiException as error:
            if error.status != 404:
                raise
            self.leases.create_namespaced_lease("kube-node-lease", body)

    def _report(self) -> None:
        """The conditions' heartbeat (their transition times stay)."""
        now = _now()
        beats = [{"type": kind["type"], "lastHeartbeatTime": now} for kind in _conditions(now)]
        self.core.patch_node_status(self.spec.name, {"status": {"conditions": beats}})
