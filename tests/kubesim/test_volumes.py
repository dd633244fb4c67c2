"""Generic ephemeral volumes (the claim the ephemeral volume controller makes for a pod)
and PVC protection (a claim outlives its deletion while a pod uses it)."""

from __future__ import annotations

import time

from tests.kubesim.helpers import (
    claim,
    conditions,
    container,
    is_gone,
    job_finished,
    job_pods,
    layout_job,
    pod,
    pod_phase,
    raw,
    volume,
    wait_for,
)

PROTECTION = "kubernetes.io/pvc-protection"


def ephemeral_pod(name: str, script: str) -> dict:
    main = {**container(KUBESIM_SH=script), "volumeMounts": [{"name": "data", "mountPath": "/d"}]}
    vol = volume("data", size="1Gi", ephemeral=True)
    vol["ephemeral"]["volumeClaimTemplate"]["metadata"]["annotations"] = {"note": "kept"}
    return pod(name, main, volumes=[vol])


def test_ephemeral_volume_claim_is_made_for_the_pod(kubesim, core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, ephemeral_pod("eph", "echo hi > /d/f; sleep 1"))
    made = wait_for(
        lambda: (
            not is_gone(core_v1.read_namespaced_persistent_volume_claim, "eph-data", namespace)
            and raw(core_v1.read_namespaced_persistent_volume_claim, "eph-data", namespace)
        ),
        what="the claim eph-data",
    )
    uid = raw(core_v1.read_namespaced_pod, "eph", namespace)["metadata"]["uid"]
    assert made["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": "eph",
            "uid": uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    assert made["metadata"]["labels"] == {"role": "data"}
    assert made["metadata"]["annotations"]["note"] == "kept"
    assert made["metadata"]["finalizers"] == [PROTECTION]
    assert made["spec"]["storageClassName"] == "standard-rwo"
    assert made["spec"]["resources"] == {"requests": {"storage": "1Gi"}}
    assert made["status"]["phase"] == "Bound"
    wait_for(pod_phase(core_v1, namespace, "eph", "Succeeded"))
    host = kubesim.claim_dir(namespace, "eph-data")
    assert (host / "f").read_text() == "hi\n"
    # The finished pod still holds its claim; deleting the pod lets the garbage collector
    # delete the claim and the protection controller release it.
    assert raw(core_v1.read_namespaced_persistent_volume_claim, "eph-data", namespace)
    core_v1.delete_namespaced_pod("eph", namespace)
    wait_for(
        lambda: is_gone(core_v1.read_namespaced_persistent_volume_claim, "eph-data", namespace),
        what="the claim to follow its pod",
    )
    assert not host.exists()


def test_a_claim_the_pod_does_not_own_keeps_it_pending(core_v1, namespace):
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("taken-data"))
    core_v1.create_namespaced_pod(namespace, ephemeral_pod("taken", "true"))

    def unschedulable():
        obj = raw(core_v1.read_namespaced_pod, "taken", namespace)
        cond = conditions(obj).get("PodScheduled")
        return cond if cond and cond["status"] == "False" else None

    cond = wait_for(unschedulable)
    assert cond["reason"] == "Unschedulable"
    assert cond["message"] == (
        f"0/1 nodes are available: PVC {namespace}/taken-data was not created for pod "
        f"{namespace}/taken (pod is not owner). preemption: 0/1 nodes are available: 1 "
        "Preemption is not helpful for scheduling."
    )
    assert raw(core_v1.read_namespaced_pod, "taken", namespace)["status"]["phase"] == "Pending"


def test_job_with_ephemeral_volumes(kubesim, batch_v1, core_v1, namespace):
    user = container(KUBESIM_SH="cp /input/in.txt /output/out.txt")
    batch_v1.create_namespaced_job(namespace, layout_job("disk", user, ephemeral=True))
    done = wait_for(job_finished(batch_v1, namespace, "disk"))
    assert done["status"]["succeeded"] == 1
    [finished] = job_pods(core_v1, namespace, "disk")
    name = finished["metadata"]["name"]
    claims = raw(core_v1.list_namespaced_persistent_volume_claim, namespace)["items"]
    assert sorted(c["metadata"]["name"] for c in claims) == [f"{name}-input", f"{name}-output"]
    assert core_v1.read_namespaced_pod_log(name, namespace, container="stage-out") == (
        "input data\n"
    )
    batch_v1.delete_namespaced_job("disk", namespace, propagation_policy="Background")
    wait_for(
        lambda: not raw(core_v1.list_namespaced_persistent_volume_claim, namespace)["items"],
        what="the claims to go with the pod",
    )
    assert not kubesim.claim_dir(namespace, f"{name}-output").exists()


def test_claim_stays_terminating_while_a_finished_pod_uses_it(kubesim, core_v1, namespace):
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("kept"))
    mount = [{"name": "k", "mountPath": "/k"}]
    vols = [{"name": "k", "persistentVolumeClaim": {"claimName": "kept"}}]
    for name, code in (("ok", 0), ("bad", 3)):
        main = {**container(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=code), "volumeMounts": mount}
        core_v1.create_namespaced_pod(namespace, pod(name, main, volumes=vols))
    wait_for(pod_phase(core_v1, namespace, "ok", "Succeeded"))
    wait_for(pod_phase(core_v1, namespace, "bad", "Failed"))
    answer = raw(core_v1.delete_namespaced_persistent_volume_claim, "kept", namespace)
    assert answer["metadata"]["deletionTimestamp"]
    core_v1.delete_namespaced_pod("ok", namespace)
    # over several passes of the protection controller: the Failed pod still holds it
    for _ in range(10):
        held = raw(core_v1.read_namespaced_persistent_volume_claim, "kept", namespace)
        assert held["metadata"]["finalizers"] == [PROTECTION]
        time.sleep(0.05)
    assert kubesim.claim_dir(namespace, "kept").is_dir()
    core_v1.delete_namespaced_pod("bad", namespace)
    wait_for(lambda: is_gone(core_v1.read_namespaced_persistent_volume_claim, "kept", namespace))


def test_an_unscheduled_pod_does_not_hold_a_claim(core_v1, namespace):
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("free"))
    vols = [
        {"name": "f", "persistentVolumeClaim": {"claimName": "free"}},
        {"name": "m", "persistentVolumeClaim": {"claimName": "missing"}},  # never scheduled
    ]
    core_v1.create_namespaced_pod(namespace, pod("stuck", container(), volumes=vols))
    core_v1.delete_namespaced_persistent_volume_claim("free", namespace)
    wait_for(lambda: is_gone(core_v1.read_namespaced_persistent_volume_claim, "free", namespace))


def test_protection_finalizer_is_put_back(core_v1, namespace):
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("guard"))
    core_v1.patch_namespaced_persistent_volume_claim(
        "guard",
        namespace,
        [{"op": "remove", "path": "/metadata/finalizers"}],
    )

    def protected():
        obj = raw(core_v1.read_namespaced_persistent_volume_claim, "guard", namespace)
        return obj["metadata"].get("finalizers") == [PROTECTION]

    wait_for(protected, what="the protection controller to add its finalizer again")
