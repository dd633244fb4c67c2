"""The Eviction API (pods/eviction, what `kubectl drain` calls) and what a Job's
podFailurePolicy makes of an evicted pod."""

from __future__ import annotations

import re

from kubernetes.client import V1DeleteOptions, V1Eviction, V1ObjectMeta, V1Preconditions

from tests.nodeagent.helpers import (
    HOST_IMAGE,
    api_error,
    conditions,
    container,
    is_gone,
    job,
    job_finished,
    job_pods,
    layout_job,
    must_condition,
    pod,
    pod_phase,
    raw,
    wait_for,
)

SUCCESS = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}


def eviction(name: str, namespace: str, **delete_options) -> V1Eviction:
    options = V1DeleteOptions(**delete_options) if delete_options else None
    return V1Eviction(
        api_version="policy/v1",
        kind="Eviction",
        metadata=V1ObjectMeta(name=name, namespace=namespace),
        delete_options=options,
    )


def evict(core_v1, name, namespace, **delete_options):
    return raw(
        core_v1.create_namespaced_pod_eviction,
        name,
        namespace,
        eviction(name, namespace, **delete_options),
    )


def test_discovery_names_the_eviction_subresource(core_v1):
    resources = raw(core_v1.get_api_resources)["resources"]
    [entry] = [r for r in resources if r["name"] == "pods/eviction"]
    assert (entry["group"], entry["version"], entry["kind"]) == ("policy", "v1", "Eviction")
    assert entry["verbs"] == ["create"]


def test_evicting_a_running_pod(core_v1, namespace):
    stubborn = container(KUBESIM_RUN_SECONDS=1000, KUBESIM_IGNORE_SIGTERM=1)
    core_v1.create_namespaced_pod(namespace, pod("web", stubborn))
    wait_for(pod_phase(core_v1, namespace, "web", "Running"))
    assert evict(core_v1, "web", namespace) == SUCCESS
    evicted = raw(core_v1.read_namespaced_pod, "web", namespace)
    target = conditions(evicted)["DisruptionTarget"]
    assert target["status"] == "True"
    assert target["reason"] == "EvictionByEvictionAPI"
    assert target["message"] == "Eviction API: evicting"
    # deleted with the pod's own grace period (terminationGracePeriodSeconds, default 30)
    assert evicted["metadata"]["deletionGracePeriodSeconds"] == 30
    assert evicted["metadata"]["deletionTimestamp"]
    wait_for(lambda: is_gone(core_v1.read_namespaced_pod, "web", namespace))


def test_delete_options_set_the_grace_period(core_v1, namespace):
    stubborn = container(KUBESIM_RUN_SECONDS=1000, KUBESIM_IGNORE_SIGTERM=1)
    core_v1.create_namespaced_pod(namespace, pod("quick", stubborn))
    wait_for(pod_phase(core_v1, namespace, "quick", "Running"))
    assert evict(core_v1, "quick", namespace, grace_period_seconds=4) == SUCCESS
    assert (
        raw(core_v1.read_namespaced_pod, "quick", namespace)["metadata"][
            "deletionGracePeriodSeconds"
        ]
        == 4
    )


def test_errors_and_dry_run(core_v1, namespace):
    status, body = api_error(
        core_v1.create_namespaced_pod_eviction, "ghost", namespace, eviction("ghost", namespace)
    )
    assert status == 404
    assert body["message"] == 'pods "ghost" not found'
    assert body["details"] == {"name": "ghost", "kind": "pods"}
    core_v1.create_namespaced_pod(namespace, pod("p", container(KUBESIM_RUN_SECONDS=1000)))
    wait_for(pod_phase(core_v1, namespace, "p", "Running"))
    status, body = api_error(
        core_v1.create_namespaced_pod_eviction, "p", namespace, eviction("other", namespace)
    )
    assert status == 400 and body["message"] == "name in URL does not match name in Eviction object"
    wrong_uid = V1DeleteOptions(preconditions=V1Preconditions(uid="0000"))
    body_wrong = eviction("p", namespace)
    body_wrong.delete_options = wrong_uid
    status, body = api_error(core_v1.create_namespaced_pod_eviction, "p", namespace, body_wrong)
    uid = raw(core_v1.read_namespaced_pod, "p", namespace)["metadata"]["uid"]
    assert status == 409 and body["reason"] == "Conflict"
    assert body["message"] == (
        f'Operation cannot be fulfilled on Pod "p": the UID in the precondition (0000) does not '
        f"match the UID in record ({uid}). The object might have been deleted and then recreated"
    )
    assert evict(core_v1, "p", namespace, dry_run=["All"]) == SUCCESS
    untouched = raw(core_v1.read_namespaced_pod, "p", namespace)
    assert "DisruptionTarget" not in conditions(untouched)
    assert "deletionTimestamp" not in untouched["metadata"]


def test_a_terminal_pod_is_deleted_at_once(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, pod("done", container(KUBESIM_RUN_SECONDS=0)))
    wait_for(pod_phase(core_v1, namespace, "done", "Succeeded"))
    assert evict(core_v1, "done", namespace) == SUCCESS
    assert is_gone(core_v1.read_namespaced_pod, "done", namespace)


def test_ignored_disruption_is_replaced_without_using_a_retry(
    batch_v1, core_v1, namespace, tmp_path
):
    """podReplacementPolicy Failed (the default with a podFailurePolicy): no new pod while
    the evicted one terminates; then it fails, the Ignore rule leaves `failed` alone, and
    a replacement runs to completion although backoffLimit is 0."""
    mark = tmp_path / "first-run"  # a host path: the first run waits to be evicted
    script = (
        f"trap '' TERM; cp /input/in.txt /output/out.txt; "
        f"if [ ! -e {mark} ]; then touch {mark}; sleep 30; fi"
    )
    user = container(image=HOST_IMAGE, KUBESIM_SH=script)
    body = layout_job("drain", user, backoff_limit=0)
    # 10 s wall: the Job controller counts the terminating pod within it, however busy
    # the machine (2 s was once missed under load).
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 200
    batch_v1.create_namespaced_job(namespace, body)
    spec = raw(batch_v1.read_namespaced_job, "drain", namespace)["spec"]
    assert spec["podReplacementPolicy"] == "Failed"

    def user_running():
        pods = job_pods(core_v1, namespace, "drain")
        for p in pods:
            for s in p["status"].get("initContainerStatuses") or []:
                if s["name"] == "job" and "running" in s["state"]:
                    return p
        return None

    first = wait_for(user_running, what="the user's container to run")
    name = first["metadata"]["name"]
    assert "batch.kubernetes.io/job-tracking" in first["metadata"]["finalizers"]
    assert evict(core_v1, name, namespace) == SUCCESS

    def terminating():
        status = raw(batch_v1.read_namespaced_job, "drain", namespace)["status"]
        return status if status.get("terminating") == 1 else None

    status = wait_for(terminating, what="the Job to see a terminating pod")
    assert "active" not in status
    assert [p["metadata"]["name"] for p in job_pods(core_v1, namespace, "drain")] == [name]

    def replaced():
        names = [p["metadata"]["name"] for p in job_pods(core_v1, namespace, "drain")]
        return names if any(n != name for n in names) else None

    wait_for(replaced, what="a replacement pod")
    done = wait_for(job_finished(batch_v1, namespace, "drain"))
    assert must_condition(done, "Complete")
    assert done["status"]["succeeded"] == 1
    assert "failed" not in done["status"]  # the disruption used no retry


def test_without_an_ignore_rule_an_eviction_counts(batch_v1, core_v1, namespace):
    body = job("plain", container(KUBESIM_RUN_SECONDS=1000), backoffLimit=0)
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = 0
    batch_v1.create_namespaced_job(namespace, body)
    first = wait_for(lambda: job_pods(core_v1, namespace, "plain"))[0]["metadata"]["name"]
    wait_for(pod_phase(core_v1, namespace, first, "Running"))
    assert evict(core_v1, first, namespace) == SUCCESS
    done = wait_for(job_finished(batch_v1, namespace, "plain"))
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 1


def test_fail_job_rule_on_the_disruption_condition(batch_v1, core_v1, namespace):
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onPodConditions": [{"type": "DisruptionTarget"}],  # status defaults to True
            }
        ]
    }
    body = job("strict", container(KUBESIM_RUN_SECONDS=1000), backoffLimit=3)
    body["spec"]["podFailurePolicy"] = policy
    batch_v1.create_namespaced_job(namespace, body)
    created = raw(batch_v1.read_namespaced_job, "strict", namespace)
    assert created["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"] == [
        {"type": "DisruptionTarget", "status": "True"}
    ]
    first = wait_for(lambda: job_pods(core_v1, namespace, "strict"))[0]["metadata"]["name"]
    wait_for(pod_phase(core_v1, namespace, first, "Running"))
    evict(core_v1, first, namespace, grace_period_seconds=0)
    done = wait_for(job_finished(batch_v1, namespace, "strict"))
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert re.fullmatch(
        rf"Pod {namespace}/{first} has condition DisruptionTarget matching FailJob rule at index 0",
        failed["message"],
    )
