"""The local cloud's control plane is Kubernetes itself: the release's API server with RBAC
and Pod Security, its controller manager and its scheduler, driven with kubectl as on GKE.
The product's own Role (infra/k8s/, rendered by the deploy's code) is what it enforces."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from infra.local.controlplane import build
from infra.local.controlplane.cluster import FUNCTION_USERS
from tests.fixtures.waiting import wait_for

API_USER = FUNCTION_USERS[0]


def kubectl(
    config: Path, *args: str, stdin: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        ["kubectl", f"--kubeconfig={config}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if check:
        assert done.returncode == 0, done.stderr
    return done


def as_json(config: Path, *args: str) -> Any:
    return json.loads(kubectl(config, *args, "-o", "json").stdout)


def test_it_is_the_pinned_release(control_plane):
    version = as_json(control_plane.admin_kubeconfig, "version")
    assert version["serverVersion"]["gitVersion"] == build.RELEASE


def test_kubectl_lists_with_the_usual_columns(control_plane):
    listed = kubectl(control_plane.admin_kubeconfig, "get", "namespaces").stdout.splitlines()
    assert listed[0].split() == ["NAME", "STATUS", "AGE"]
    assert any(line.split()[:2] == ["default", "Active"] for line in listed[1:])


def test_the_role_of_infra_k8s_is_what_the_functions_may_do(control_plane, namespace):
    api = control_plane.kubeconfig_for("api", API_USER)

    def can(verb: str, resource: str, config: Path = api) -> bool:
        asked = kubectl(config, "auth", "can-i", verb, resource, "-n", namespace, check=False)
        return asked.stdout.strip() == "yes"

    for verb, resource in [
        ("create", "jobs.batch"),
        ("patch", "jobs.batch"),
        ("get", "pods/log"),
        ("delete", "persistentvolumeclaims"),
    ]:
        assert can(verb, resource), (verb, resource)
    refused = [("get", "secrets"), ("create", "pods"), ("delete", "pods"), ("create", "configmaps")]
    for verb, resource in refused:
        assert not can(verb, resource), (verb, resource)
    stranger = control_plane.kubeconfig_for("stranger", "someone@else.example")
    assert not can("list", "jobs.batch", stranger)
    assert not kubectl(api, "get", "jobs", "-n", "default", check=False).returncode == 0


def test_pod_security_refuses_host_namespaces(control_plane, namespace):
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "hostile", "namespace": namespace},
        "spec": {"hostNetwork": True, "containers": [{"name": "c", "image": "alpine:3"}]},
    }
    refused = kubectl(
        control_plane.admin_kubeconfig, "create", "-f", "-", stdin=json.dumps(pod), check=False
    )
    assert refused.returncode != 0
    assert 'violates PodSecurity "baseline:latest"' in refused.stderr, refused.stderr


def test_the_job_controller_the_scheduler_and_the_garbage_collector_act(control_plane, namespace):
    api = control_plane.kubeconfig_for("api", API_USER)
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "first", "namespace": namespace},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [{"name": "c", "image": "alpine:3", "command": ["true"]}],
                    # no node has it, whether the node agent runs or not
                    "nodeSelector": {"example.com/no-such-node": "true"},
                }
            },
        },
    }
    kubectl(api, "create", "-f", "-", stdin=json.dumps(job))

    def pods() -> list[dict[str, Any]]:
        found = as_json(api, "get", "pods", "-n", namespace, "-l", "job-name=first")
        return list(found["items"])

    def unschedulable() -> dict[str, Any] | None:
        for pod in pods():
            for condition in pod["status"].get("conditions", []):
                if condition["type"] == "PodScheduled" and condition["reason"] == "Unschedulable":
                    return dict(condition)
        return None

    condition = wait_for(unschedulable, what="the scheduler to find no node for the pod")
    assert "available" in condition["message"], condition
    kubectl(api, "delete", "job", "first", "-n", namespace, "--cascade=background")
    wait_for(lambda: not pods(), what="the garbage collector to delete the job's pod")


def test_a_namespace_is_deleted_with_what_it_holds(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "delete", "namespace", namespace, "--wait=false")

    def gone() -> bool:
        return kubectl(admin, "get", "namespace", namespace, check=False).returncode != 0

    wait_for(gone, what="the namespace controller to finish")


def test_with_an_audit_log_every_write_is_recorded(tmp_path):
    """What the benchmarks count a job's Kubernetes writes with: who wrote what, reads not."""
    from infra.local.controlplane import cluster

    with cluster.start(tmp_path / "state", tmp_path / "logs", audit=True) as plane:
        admin = plane.admin_kubeconfig
        kubectl(admin, "create", "namespace", "audited")
        kubectl(admin, "get", "namespaces")
        audit_log = plane.audit_log
        assert audit_log is not None

        def mine() -> list[tuple[str, str]]:
            lines = [json.loads(line) for line in audit_log.read_text().splitlines()]
            return [
                (line["verb"], line["objectRef"]["resource"])
                for line in lines
                if line["user"]["username"] == "local-admin"
                and line["objectRef"].get("name") == "audited"  # not Kueue's install
            ]

        assert wait_for(mine, what="the write in the audit log") == [("create", "namespaces")]
