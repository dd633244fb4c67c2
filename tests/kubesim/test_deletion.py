"""Deletion: propagation policies, grace periods, namespaces and protected claims."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.kubesim.helpers import (
    HOST_IMAGE,
    api_error,
    claim,
    container,
    is_gone,
    job,
    job_pods,
    pod,
    pod_phase,
    raw,
    wait_for,
)

FOREVER: dict[str, Any] = {"KUBESIM_RUN_SECONDS": 1000}


def running_job(batch_v1, core_v1, namespace, name):
    batch_v1.create_namespaced_job(namespace, job(name, container(**FOREVER)))
    return wait_for(lambda: job_pods(core_v1, namespace, name), what="the job's pod")[0]


def jobs(batch_v1, namespace):
    return [j["metadata"]["name"] for j in raw(batch_v1.list_namespaced_job, namespace)["items"]]


def test_default_for_jobs_is_orphan(batch_v1, core_v1, namespace):
    pod_obj = running_job(batch_v1, core_v1, namespace, "orph")
    batch_v1.delete_namespaced_job("orph", namespace)  # batch/v1 default: Orphan
    assert jobs(batch_v1, namespace) == []
    left = raw(core_v1.read_namespaced_pod, pod_obj["metadata"]["name"], namespace)
    assert "ownerReferences" not in left["metadata"]


def test_explicit_orphan(batch_v1, core_v1, namespace):
    pod_obj = running_job(batch_v1, core_v1, namespace, "orph2")
    batch_v1.delete_namespaced_job("orph2", namespace, propagation_policy="Orphan")
    left = raw(core_v1.read_namespaced_pod, pod_obj["metadata"]["name"], namespace)
    assert left["status"]["phase"] in ("Pending", "Running")
    assert "ownerReferences" not in left["metadata"]


def test_background_deletes_pods_after_the_job(batch_v1, core_v1, namespace):
    running_job(batch_v1, core_v1, namespace, "bg")
    status = raw(batch_v1.delete_namespaced_job, "bg", namespace, propagation_policy="Background")
    assert status["status"] == "Success"
    assert jobs(batch_v1, namespace) == []  # the job is gone at once
    wait_for(lambda: not job_pods(core_v1, namespace, "bg"), what="pods collected")


def test_foreground_keeps_the_job_until_pods_are_gone(batch_v1, core_v1, namespace):
    running_job(batch_v1, core_v1, namespace, "fg")
    answer = raw(batch_v1.delete_namespaced_job, "fg", namespace, propagation_policy="Foreground")
    assert answer["kind"] == "Job"
    assert answer["metadata"]["deletionTimestamp"]
    assert "foregroundDeletion" in answer["metadata"]["finalizers"]
    wait_for(lambda: jobs(batch_v1, namespace) == [], what="the job to go")
    assert job_pods(core_v1, namespace, "fg") == []


def test_delete_options_in_the_body(batch_v1, core_v1, namespace):
    from kubernetes.client import V1DeleteOptions

    running_job(batch_v1, core_v1, namespace, "body")
    batch_v1.delete_namespaced_job(
        "body", namespace, body=V1DeleteOptions(propagation_policy="Background")
    )
    wait_for(lambda: not job_pods(core_v1, namespace, "body"))


def test_grace_period_keeps_a_terminating_pod(core_v1, namespace):
    stubborn = container(KUBESIM_RUN_SECONDS=1000, KUBESIM_IGNORE_SIGTERM=1)
    core_v1.create_namespaced_pod(namespace, pod("slow", stubborn))
    wait_for(pod_phase(core_v1, namespace, "slow", "Running"))
    answer = raw(core_v1.delete_namespaced_pod, "slow", namespace, grace_period_seconds=40)
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["deletionGracePeriodSeconds"] == 40
    # 40 simulated seconds = 2 s at speed 20: still there shortly after
    assert raw(core_v1.read_namespaced_pod, "slow", namespace)["metadata"]["deletionTimestamp"]
    wait_for(lambda: is_gone(core_v1.read_namespaced_pod, "slow", namespace))


def test_pod_that_exits_on_sigterm_goes_before_its_grace_period(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, pod("polite", container(**FOREVER)))
    wait_for(pod_phase(core_v1, namespace, "polite", "Running"))
    core_v1.delete_namespaced_pod("polite", namespace, grace_period_seconds=600)  # 30 s wall
    wait_for(lambda: is_gone(core_v1.read_namespaced_pod, "polite", namespace), timeout=20)


def test_grace_zero_kills_real_processes_at_once(kubesim, core_v1, namespace):
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("mark"))
    main = {
        **container(
            image=HOST_IMAGE,
            KUBESIM_SH="trap '' TERM; echo $$ > /m/pid.tmp; mv /m/pid.tmp /m/pid; sleep 30",
        ),
        "volumeMounts": [{"name": "m", "mountPath": "/m"}],
    }
    volumes = [{"name": "m", "persistentVolumeClaim": {"claimName": "mark"}}]
    core_v1.create_namespaced_pod(namespace, pod("proc", main, volumes=volumes))
    marker = kubesim.claim_dir(namespace, "mark") / "pid"
    pid = int(wait_for(lambda: marker.exists() and marker.read_text().strip()))
    assert Path(f"/proc/{pid}").exists()
    core_v1.delete_namespaced_pod("proc", namespace, grace_period_seconds=0)
    assert is_gone(core_v1.read_namespaced_pod, "proc", namespace)
    wait_for(lambda: not Path(f"/proc/{pid}").exists(), what="the shell to be killed")


def test_pvc_protection_while_a_pod_uses_it(kubesim, core_v1, namespace):
    core_v1.create_namespaced_persistent_volume_claim(namespace, claim("busy"))
    main = {**container(**FOREVER), "volumeMounts": [{"name": "b", "mountPath": "/b"}]}
    volumes = [{"name": "b", "persistentVolumeClaim": {"claimName": "busy"}}]
    core_v1.create_namespaced_pod(namespace, pod("user", main, volumes=volumes))
    wait_for(pod_phase(core_v1, namespace, "user", "Running"))
    answer = raw(core_v1.delete_namespaced_persistent_volume_claim, "busy", namespace)
    assert answer["metadata"]["deletionTimestamp"]
    assert answer["metadata"]["finalizers"] == ["kubernetes.io/pvc-protection"]
    assert kubesim.claim_dir(namespace, "busy").is_dir()
    core_v1.delete_namespaced_pod("user", namespace, grace_period_seconds=0)
    wait_for(lambda: is_gone(core_v1.read_namespaced_persistent_volume_claim, "busy", namespace))
    assert not kubesim.claim_dir(namespace, "busy").exists()


def test_deleting_a_namespace_deletes_everything(kubesim, core_v1, batch_v1):
    ns = raw(core_v1.create_namespace, {"metadata": {"generateName": "gone-"}})["metadata"]["name"]
    core_v1.create_namespaced_persistent_volume_claim(ns, claim("c"))
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "s"}})
    running_job(batch_v1, core_v1, ns, "j")
    answer = raw(core_v1.delete_namespace, ns)
    assert answer["status"]["phase"] == "Terminating"
    status, body = api_error(core_v1.create_namespaced_secret, ns, {"metadata": {"name": "new"}})
    assert status == 403 and "because it is being terminated" in body["message"]
    wait_for(lambda: is_gone(core_v1.read_namespace, ns), what="namespace gone")
    assert raw(core_v1.list_namespaced_pod, ns)["items"] == []
    assert raw(batch_v1.list_namespaced_job, ns)["items"] == []
    assert not kubesim.claim_dir(ns, "c").exists()


def test_delete_preconditions(core_v1, namespace):
    from kubernetes.client import V1DeleteOptions, V1Preconditions

    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "pre"}})
    options = V1DeleteOptions(preconditions=V1Preconditions(uid="not-the-uid"))
    status, body = api_error(core_v1.delete_namespaced_secret, "pre", namespace, body=options)
    assert status == 409 and "Precondition failed: UID" in body["message"]
