"""The node agent's nodes, as the real control plane sees them: registered as kubelets
register (each as `system:node:<name>`, held by the Node authorizer to its own objects),
kept alive by their Leases, made Ready by the node-lifecycle controller, and chosen by the
real scheduler: a Spot job's pod on the Spot node, every other pod on the ordinary one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from infra.local.nodeagent.nodes import SPOT_LABEL
from shared.model.queues import PROVISIONING, PROVISIONING_LABEL
from tests.controlplane.test_control_plane import as_json, kubectl
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.usefixtures("node_agent")
TOLERATION = {"key": SPOT_LABEL, "operator": "Equal", "value": "true", "effect": "NoSchedule"}
SPOT: dict[str, Any] = {"nodeSelector": {SPOT_LABEL: "true"}, "tolerations": [TOLERATION]}
NOT_READY = "node.kubernetes.io/not-ready"  # the taint until node-lifecycle sees Ready


def ready(node: dict[str, Any]) -> bool:
    conditions = node["status"]["conditions"]
    taints = node["spec"].get("taints", [])
    is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
    return is_ready and not any(taint["key"] == NOT_READY for taint in taints)


def both_ready(control_plane) -> dict[str, Any]:
    def nodes() -> dict[str, Any] | None:
        found = as_json(control_plane.admin_kubeconfig, "get", "nodes")["items"]
        named = {node["metadata"]["name"]: node for node in found if ready(node)}
        return named if len(named) == 2 else None

    return wait_for(nodes, what="both nodes ready")


def pod(name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "alpine:3"}], **spec},
    }
    return json.dumps(body)


def test_both_nodes_are_ready_and_the_spot_node_is_tainted(control_plane):
    nodes = both_ready(control_plane)
    spot = nodes["local-spot-node"]
    assert spot["metadata"]["labels"][SPOT_LABEL] == "true"
    assert spot["metadata"]["labels"][PROVISIONING_LABEL] == PROVISIONING["spot"]
    assert nodes["local-node"]["metadata"]["labels"][PROVISIONING_LABEL] == "standard"
    assert {"key": SPOT_LABEL, "value": "true", "effect": "NoSchedule"} in spot["spec"]["taints"]
    assert nodes["local-node"]["status"]["allocatable"]["pods"] == "110"
    listed = kubectl(control_plane.admin_kubeconfig, "get", "nodes").stdout.splitlines()
    assert listed[0].split()[:3] == ["NAME", "STATUS", "ROLES"]
    assert all(line.split()[1] == "Ready" for line in listed[1:]), listed


def test_the_leases_are_renewed(control_plane):
    def renewed() -> str:
        admin = control_plane.admin_kubeconfig
        lease = as_json(admin, "get", "lease", "local-node", "-n", "kube-node-lease")
        return str(lease["spec"]["renewTime"])

    first = renewed()
    wait_for(lambda: renewed() != first, what="the lease to be renewed")


def test_a_node_may_not_touch_another_node(control_plane):
    config = control_plane.kubeconfig_for(
        "node-local-node", "system:node:local-node", ("system:nodes",)
    )
    refused = kubectl(config, "label", "node", "local-spot-node", "x=y", check=False)
    assert refused.returncode != 0 and "forbidden" in refused.stderr.lower(), refused.stderr


@pytest.mark.parametrize(("spec", "node"), [({}, "local-node"), (SPOT, "local-spot-node")])
def test_the_scheduler_places_pods_by_the_spot_label_and_taint(control_plane, spec, node):
    both_ready(control_plane)
    admin = control_plane.admin_kubeconfig
    name = f"placed-{uuid.uuid4().hex[:6]}"
    kubectl(admin, "create", "-f", "-", stdin=pod(name, **spec))
    try:

        def bound() -> str | None:
            return as_json(admin, "get", "pod", name)["spec"].get("nodeName")

        assert wait_for(bound, what="the pod bound to a node") == node
    finally:
        kubectl(admin, "delete", "pod", name, "--grace-period=0", "--force", check=False)


def test_a_spot_selector_without_the_toleration_waits(control_plane):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "create", "-f", "-", stdin=pod("untolerated", nodeSelector=SPOT["nodeSelector"]))
    try:

        def unschedulable() -> str | None:
            status = as_json(admin, "get", "pod", "untolerated")["status"]
            for condition in status.get("conditions", []):
                if condition["type"] == "PodScheduled" and condition["reason"] == "Unschedulable":
                    return str(condition["message"])
            return None

        message = wait_for(unschedulable, what="the scheduler to refuse every node")
        assert "untolerated taint" in message, message
    finally:
        kubectl(admin, "delete", "pod", "untolerated", "--grace-period=0", "--force", check=False)


def test_kubectl_cordon_keeps_new_pods_off_a_node(control_plane):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "cordon", "local-node")
    try:
        assert as_json(admin, "get", "node", "local-node")["spec"]["unschedulable"] is True
    finally:
        kubectl(admin, "uncordon", "local-node")
    assert not as_json(admin, "get", "node", "local-node")["spec"].get("unschedulable")
