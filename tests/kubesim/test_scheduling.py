"""The one node's labels against a pod's nodeSelector: a Spot pod runs, a pod asking for a
node that does not exist stays Pending with the scheduler's message."""

from __future__ import annotations

from tests.kubesim.helpers import container, pod, pod_phase, raw, wait_for


def scheduled_condition(core_v1, namespace: str, name: str):
    def check():
        obj = raw(core_v1.read_namespaced_pod, name, namespace)
        cond = {c["type"]: c for c in obj["status"].get("conditions") or []}.get("PodScheduled")
        return cond if cond else None

    return wait_for(check)


def test_a_spot_pod_runs_on_the_node(core_v1, namespace):
    spot = {
        "nodeSelector": {"cloud.google.com/gke-spot": "true", "kubernetes.io/os": "linux"},
        "tolerations": [
            {"key": "cloud.google.com/gke-spot", "operator": "Equal", "value": "true",
             "effect": "NoSchedule"}
        ],
    }  # fmt: skip
    core_v1.create_namespaced_pod(namespace, pod("spot", container(KUBESIM_RUN_SECONDS=0), **spot))
    done = wait_for(pod_phase(core_v1, namespace, "spot", "Succeeded"))
    assert done["spec"]["nodeName"] == "kubesim"


def test_a_pod_for_a_node_that_does_not_exist_stays_pending(core_v1, namespace):
    selector = {"nodeSelector": {"cloud.google.com/gke-nodepool": "gpu-pool"}}
    core_v1.create_namespaced_pod(namespace, pod("gpu", container(), **selector))
    cond = scheduled_condition(core_v1, namespace, "gpu")
    assert cond["status"] == "False" and cond["reason"] == "Unschedulable"
    assert "didn't match Pod's node affinity/selector" in cond["message"]
    obj = raw(core_v1.read_namespaced_pod, "gpu", namespace)
    assert obj["status"]["phase"] == "Pending" and not obj["spec"].get("nodeName")
