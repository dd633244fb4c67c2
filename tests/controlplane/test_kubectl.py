"""kubectl against the local cloud as against GKE, on pods the node agent runs: describe,
wait, logs (followed too) and drain."""

from __future__ import annotations

import json
import subprocess

from tests.controlplane.test_control_plane import as_json, kubectl
from tests.fixtures.waiting import wait_for


def job(name: str, script: str) -> str:
    container = {"name": "main", "image": "alpine:3", "command": ["sh", "-c", script]}
    spec = {"restartPolicy": "Never", "containers": [container]}
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"backoffLimit": 0, "template": {"spec": spec}},
    }
    return json.dumps(body)


def test_wait_describe_and_logs(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    script = "for i in 1 2 3; do echo line $i; sleep 0.2; done"
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("count", script))

    def started() -> bool:
        pods = as_json(admin, "get", "pods", "-n", namespace, "-l", "job-name=count")["items"]
        states = [c["state"] for p in pods for c in p["status"].get("containerStatuses") or []]
        return any("running" in state or "terminated" in state for state in states)

    wait_for(started, what="the job's container to start")
    followed = kubectl(admin, "logs", "-f", "-n", namespace, "job/count")
    assert followed.stdout == "line 1\nline 2\nline 3\n"
    kubectl(admin, "wait", "-n", namespace, "--for=condition=complete", "job/count",
            "--timeout=60s")  # fmt: skip
    described = kubectl(admin, "describe", "-n", namespace, "job/count").stdout
    assert "Pods Statuses:    0 Active (0 Ready) / 1 Succeeded / 0 Failed" in described
    assert kubectl(admin, "logs", "-n", namespace, "job/count", "--tail=1").stdout == "line 3\n"


def test_drain_evicts_a_nodes_pods_and_cordons_it(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    body = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "resident"},
        "spec": {
            "restartPolicy": "Never",
            "nodeSelector": {"kubernetes.io/hostname": "local-node"},
            "containers": [{"name": "main", "image": "alpine:3", "command": ["sleep", "600"]}],
        },
    }
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    kubectl(admin, "wait", "-n", namespace, "--for=condition=Ready", "pod/resident",
            "--timeout=60s")  # fmt: skip
    try:
        drained = kubectl(admin, "drain", "local-node", "--force", "--timeout=60s")
        assert "pod/resident evicted" in drained.stdout + drained.stderr
        assert as_json(admin, "get", "node", "local-node")["spec"]["unschedulable"] is True
        gone = subprocess.run(
            ["kubectl", f"--kubeconfig={admin}", "get", "pod", "resident", "-n", namespace],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert gone.returncode != 0 and "NotFound" in gone.stderr
    finally:
        kubectl(admin, "uncordon", "local-node")
