"""Kueue's own manager runs beside the control plane: its webhooks suspend a Job that names a
queue, its scheduler admits it within its ClusterQueue's quota, its visibility API answers
through the API server, and v1beta1 clients are converted by its webhook, all as on GKE."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from infra.kueue import build as kueue_build
from infra.kueue.install import MANAGER_USER
from tests.controlplane.test_control_plane import as_json, kubectl
from tests.fixtures.waiting import wait_for

KUEUE = "kueue.x-k8s.io"


@pytest.fixture
def queue(control_plane, namespace) -> Any:
    """A ClusterQueue of one pod at a time (a flavor of no node labels), its LocalQueue in
    the test's namespace; the cluster-scoped objects deleted afterwards."""
    name = f"q-{uuid.uuid4().hex[:8]}"
    objects = f"""
apiVersion: {KUEUE}/v1beta2
kind: ResourceFlavor
metadata: {{name: {name}}}
---
apiVersion: {KUEUE}/v1beta2
kind: ClusterQueue
metadata: {{name: {name}}}
spec:
  namespaceSelector: {{}}
  resourceGroups:
  - coveredResources: [cpu, memory, pods]
    flavors:
    - name: {name}
      resources: [{{name: cpu, nominalQuota: 4}}, {{name: memory, nominalQuota: 4Gi}},
                  {{name: pods, nominalQuota: 1}}]
---
apiVersion: {KUEUE}/v1beta2
kind: LocalQueue
metadata: {{name: {name}, namespace: {namespace}}}
spec: {{clusterQueue: {name}}}
"""
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "apply", "-f", "-", stdin=objects)
    yield name
    kubectl(admin, "delete", f"clusterqueues.{KUEUE}", name, "--wait=false")
    kubectl(admin, "delete", f"resourceflavors.{KUEUE}", name, "--wait=false")


def job(name: str, namespace: str, queue: str) -> str:
    return f"""
apiVersion: batch/v1
kind: Job
metadata: {{name: {name}, namespace: {namespace}, labels: {{{KUEUE}/queue-name: {queue}}}}}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: main
        image: busybox
        command: [sleep, "3600"]
        resources: {{requests: {{cpu: 100m, memory: 64Mi}}}}
"""


def workload_of(admin: Path, namespace: str, job_name: str) -> dict[str, Any] | None:
    listed = as_json(admin, "get", f"workloads.{KUEUE}", "-n", namespace)["items"]
    owned = [w for w in listed if w["metadata"]["ownerReferences"][0]["name"] == job_name]
    return owned[0] if owned else None


def raw(admin: Path, path: str) -> Any:
    return json.loads(kubectl(admin, "get", "--raw", path).stdout)


def condition(workload: dict[str, Any], kind: str) -> dict[str, Any] | None:
    conditions = (workload.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c["type"] == kind), None)


def test_a_job_waits_for_quota_and_is_admitted_when_it_frees(control_plane, namespace, queue):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "create", "-f", "-", stdin=job("first", namespace, queue))
    kubectl(admin, "create", "-f", "-", stdin=job("second", namespace, queue))

    def admitted(name: str) -> bool:
        workload = workload_of(admin, namespace, name)
        admission = workload and condition(workload, "Admitted")
        return bool(admission and admission["status"] == "True")

    wait_for(lambda: admitted("first"), what="the first job's admission")
    suspended = as_json(admin, "get", "job", "second", "-n", namespace)["spec"]["suspend"]
    assert suspended is True  # Kueue's webhook suspended it: it was created unsuspended

    def waiting() -> dict[str, Any] | None:
        workload = workload_of(admin, namespace, "second")
        reserved = workload and condition(workload, "QuotaReserved")
        return reserved if reserved and reserved["status"] == "False" else None

    reason = wait_for(waiting, what="the second job's reason to wait")["message"]
    assert f"insufficient unused quota for pods in flavor {queue}" in reason
    path = f"/apis/visibility.{KUEUE}/v1beta2/namespaces/{namespace}/localqueues/{queue}"
    pending = raw(admin, f"{path}/pendingworkloads")
    (only,) = pending["items"]
    assert only["positionInLocalQueue"] == 0
    assert only["metadata"]["ownerReferences"][0]["name"] == "second"

    kubectl(admin, "delete", "job", "first", "-n", namespace, "--cascade=foreground")
    wait_for(lambda: admitted("second"), what="the second job's admission")
    started = as_json(admin, "get", "job", "second", "-n", namespace)
    assert started["spec"]["suspend"] is False


def test_v1beta1_clients_are_converted_by_the_webhook(control_plane, queue):
    read = raw(control_plane.admin_kubeconfig, f"/apis/{KUEUE}/v1beta1/clusterqueues/{queue}")
    assert read["apiVersion"] == f"{KUEUE}/v1beta1"
    assert read["spec"]["resourceGroups"][0]["flavors"][0]["name"] == queue


def test_the_manager_holds_only_its_role(control_plane):
    admin = control_plane.admin_kubeconfig

    def can(verb: str, resource: str, *where: str) -> bool:
        asked = kubectl(admin, "auth", "can-i", verb, resource, "--as", MANAGER_USER, *where,
                        check=False)  # fmt: skip
        return asked.stdout.strip() == "yes"

    assert can("update", f"workloads.{KUEUE}", "-A")
    assert can("patch", "jobs.batch", "-A")
    assert can("update", "secrets", "-n", "kueue-system")
    assert not can("get", "secrets", "-n", "default")
    assert not can("delete", "namespaces")


def test_the_generated_crds_are_the_pinned_release(control_plane):
    crd = as_json(control_plane.admin_kubeconfig, "get", "crd", f"workloads.{KUEUE}")
    generated_by = crd["metadata"]["annotations"]["controller-gen.kubebuilder.io/version"]
    assert generated_by == kueue_build.CONTROLLER_TOOLS
    assert [v["name"] for v in crd["spec"]["versions"] if v["storage"]] == ["v1beta2"]


def test_the_manager_writes_nothing_outside_its_sandbox(control_plane):
    assert not Path("/visibility").exists()  # where its visibility server keeps a certificate
