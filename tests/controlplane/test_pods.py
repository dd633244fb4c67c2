"""Pods run by the node agent under the real control plane: Jobs completed and failed by
the real Job controller, init containers in order, an Indexed Job whose pods read their
index, a Spot job on the Spot node, a graceful deletion, an active deadline. Commands run
for real in the sandbox, as they would in a container."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.controlplane.test_control_plane import as_json, kubectl
from tests.controlplane.test_nodes import SPOT
from tests.fixtures.waiting import wait_for

pytestmark = pytest.mark.usefixtures("node_agent")


def job(name: str, script: str, **spec: Any) -> str:
    pod_spec = spec.pop("pod", {})
    body = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            **spec,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {"name": "main", "image": "busybox:1.36", "command": ["sh", "-c", script]}
                    ],
                    **pod_spec,
                }
            },
        },
    }
    return json.dumps(body)


def finished(control_plane, namespace: str, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        found = as_json(control_plane.admin_kubeconfig, "get", "job", name, "-n", namespace)
        conditions = {c["type"]: c for c in found["status"].get("conditions", [])}
        if conditions.get("Complete", {}).get("status") == "True":
            return dict(found)
        if conditions.get("Failed", {}).get("status") == "True":
            return dict(found)
        return None

    return wait_for(done, what=f"job {name} to finish")


def pods_of(control_plane, namespace: str, name: str) -> list[dict[str, Any]]:
    admin = control_plane.admin_kubeconfig
    return list(as_json(admin, "get", "pods", "-n", namespace, "-l", f"job-name={name}")["items"])


def running_pod(control_plane, namespace: str, name: str) -> str:
    """The name of the job's pod, once it runs."""

    def running() -> str | None:
        for pod in pods_of(control_plane, namespace, name):
            if pod["status"].get("phase") == "Running":
                return str(pod["metadata"]["name"])
        return None

    return wait_for(running, what=f"job {name}'s pod to run")


def test_a_job_completes(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("ok", "echo hello"))
    done = finished(control_plane, namespace, "ok")
    assert done["status"]["succeeded"] == 1
    (pod,) = pods_of(control_plane, namespace, "ok")
    assert pod["status"]["phase"] == "Succeeded"
    assert pod["spec"]["nodeName"] == "local-node"
    (state,) = pod["status"]["containerStatuses"]
    assert state["state"]["terminated"]["exitCode"] == 0
    assert state["state"]["terminated"]["reason"] == "Completed"


def test_a_job_fails_with_the_containers_exit_code(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    script = "echo broken > /dev/termination-log; exit 3"
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("bad", script))
    done = finished(control_plane, namespace, "bad")
    failed = {c["type"]: c for c in done["status"]["conditions"]}["Failed"]
    assert failed["reason"] == "BackoffLimitExceeded"
    (pod,) = pods_of(control_plane, namespace, "bad")
    assert pod["status"]["phase"] == "Failed"
    terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (3, "Error")
    assert terminated["message"] == "broken\n"


def test_init_containers_run_first_and_share_volumes(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    pod = {
        "volumes": [{"name": "work", "emptyDir": {}}],
        "initContainers": [
            {
                "name": "first",
                "image": "busybox:1.36",
                "command": ["sh", "-c", "echo staged > /work/in.txt"],
                "volumeMounts": [{"name": "work", "mountPath": "/work"}],
            }
        ],
    }
    body = json.loads(job("staged", "grep -q staged /work/in.txt", pod=pod))
    main = body["spec"]["template"]["spec"]["containers"][0]
    main["volumeMounts"] = [{"name": "work", "mountPath": "/work"}]
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    done = finished(control_plane, namespace, "staged")
    assert done["status"].get("succeeded") == 1, done["status"]


def test_an_indexed_job_gives_each_pod_its_index(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    # the Job controller sets it from the pod's index annotation (a fieldRef)
    script = 'case "$JOB_COMPLETION_INDEX" in 0|1|2) exit 0;; esac; exit 1'
    spec = {"completionMode": "Indexed", "completions": 3, "parallelism": 3}
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("idx", script, **spec))
    done = finished(control_plane, namespace, "idx")
    assert done["status"]["completedIndexes"] == "0-2", done["status"]


def test_a_spot_job_runs_on_the_spot_node(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("spot", "true", pod=SPOT))
    assert finished(control_plane, namespace, "spot")["status"]["succeeded"] == 1
    (pod,) = pods_of(control_plane, namespace, "spot")
    assert pod["spec"]["nodeName"] == "local-spot-node"


def test_a_deleted_pod_is_stopped_and_removed(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("long", "sleep 600"))

    name = running_pod(control_plane, namespace, "long")
    kubectl(admin, "delete", "pod", name, "-n", namespace, "--wait=false")

    def gone() -> bool:
        return kubectl(admin, "get", "pod", name, "-n", namespace, check=False).returncode != 0

    wait_for(gone, what="the deleted pod to be removed")
    kubectl(admin, "delete", "job", "long", "-n", namespace)


def test_a_pod_past_its_deadline_fails(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    # 20 simulated seconds: one wall second at the tests' speed
    body = job("late", "sleep 600", pod={"activeDeadlineSeconds": 20})
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=body)
    finished(control_plane, namespace, "late")
    (pod,) = pods_of(control_plane, namespace, "late")
    assert pod["status"]["phase"] == "Failed"
    assert pod["status"]["reason"] == "DeadlineExceeded"


def test_logs_come_through_the_api_server(control_plane, namespace):
    """`kubectl logs` asks the API server, which asks the node's kubelet endpoint over TLS."""
    admin = control_plane.admin_kubeconfig
    script = "echo first; echo second"
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("talk", script))
    finished(control_plane, namespace, "talk")
    (pod,) = pods_of(control_plane, namespace, "talk")
    name = pod["metadata"]["name"]
    assert kubectl(admin, "logs", name, "-n", namespace).stdout == "first\nsecond\n"
    assert kubectl(admin, "logs", name, "-n", namespace, "--tail=1").stdout == "second\n"


def test_a_followed_log_streams_until_the_container_ends(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    script = "echo one; sleep 1; echo two"
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=job("slow", script))

    name = running_pod(control_plane, namespace, "slow")
    followed = kubectl(admin, "logs", "-f", name, "-n", namespace)
    assert followed.stdout == "one\ntwo\n"


def test_a_container_not_started_has_no_log_yet(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    body = job("never", "true", pod={"nodeSelector": {"example.com/no-such-node": "true"}})
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=body)
    (pod,) = wait_for(lambda: pods_of(control_plane, namespace, "never"), what="the pod")
    logs = kubectl(admin, "logs", pod["metadata"]["name"], "-n", namespace, check=False)
    assert logs.returncode == 0 and logs.stdout == ""  # not scheduled: an empty log


def test_an_image_that_cannot_be_pulled_waits(control_plane, namespace):
    admin = control_plane.admin_kubeconfig
    body = json.loads(job("nopull", "true"))
    main = body["spec"]["template"]["spec"]["containers"][0]
    main["env"] = [{"name": "KUBESIM_IMAGE_PULL_ERROR", "value": "1"}]
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=json.dumps(body))

    def backing_off() -> dict[str, Any] | None:
        for pod in pods_of(control_plane, namespace, "nopull"):
            for state in pod["status"].get("containerStatuses") or []:
                waiting = state["state"].get("waiting") or {}
                if waiting.get("reason") == "ImagePullBackOff":
                    return dict(pod)
        return None

    pod = wait_for(backing_off, what="ImagePullBackOff")
    assert pod["status"]["phase"] == "Pending"


def test_an_emptydir_past_its_size_limit_is_evicted(control_plane, namespace):
    """The kubelet's emptyDirLimitEviction: Failed, Evicted, and no DisruptionTarget, so the
    Job counts an ordinary failure (backoffLimit 0: it fails)."""
    admin = control_plane.admin_kubeconfig
    pod = {"volumes": [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]}
    script = "head -c 3000000 /dev/zero > /scratch/big; sleep 600"
    body = json.loads(job("full", script, pod=pod))
    main = body["spec"]["template"]["spec"]["containers"][0]
    main["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    kubectl(admin, "create", "-n", namespace, "-f", "-", stdin=json.dumps(body))
    done = finished(control_plane, namespace, "full")
    assert {c["type"] for c in done["status"]["conditions"]} >= {"Failed"}
    (evicted,) = pods_of(control_plane, namespace, "full")
    assert evicted["status"]["phase"] == "Failed"
    assert evicted["status"]["reason"] == "Evicted"
    assert evicted["status"]["message"].startswith('Usage of EmptyDir volume "scratch"')
    kinds = {c["type"] for c in evicted["status"]["conditions"]}
    assert "DisruptionTarget" not in kinds
