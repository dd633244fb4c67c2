"""The kubelet's local storage eviction: an emptyDir past its sizeLimit, or a pod past its
ephemeral-storage limit, is evicted at once, Failed with reason Evicted and without the
DisruptionTarget condition, so a Job counts it as a failure."""

from __future__ import annotations

from tests.nodeagent.helpers import (
    conditions,
    container,
    job_finished,
    job_pods,
    layout_job,
    must_condition,
    pod,
    pod_phase,
    raw,
    statuses,
    wait_for,
)

WRITE_AND_WAIT = "head -c {size} /dev/zero > {path}; echo wrote; sleep 20"


def scratch_pod(name: str, size_limit: str | None, size: int, **resources) -> dict:
    main = container(KUBESIM_SH=WRITE_AND_WAIT.format(size=size, path="/scratch/blob"))
    main["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    if resources:
        main["resources"] = resources
    empty_dir = {"sizeLimit": size_limit} if size_limit else {}
    return pod(name, main, volumes=[{"name": "scratch", "emptyDir": empty_dir}])


def test_empty_dir_past_its_size_limit_is_evicted(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, scratch_pod("big", "64Ki", 256 * 1024))
    evicted = wait_for(pod_phase(core_v1, namespace, "big", "Failed"))
    status = evicted["status"]
    assert status["reason"] == "Evicted"
    assert status["message"] == 'Usage of EmptyDir volume "scratch" exceeds the limit "64Ki". '
    assert "DisruptionTarget" not in conditions(evicted)
    main = statuses(evicted)["main"]["state"]["terminated"]
    assert main["exitCode"] in (137, 143)  # killed, not finished
    assert conditions(evicted)["Ready"]["reason"] == "PodFailed"
    assert core_v1.read_namespaced_pod_log("big", namespace) == "wrote\n"
    assert "deletionTimestamp" not in evicted["metadata"]  # evicted pods stay, Failed


def test_the_limit_is_printed_in_canonical_form(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, scratch_pod("canon", "0.0625Mi", 256 * 1024))
    evicted = wait_for(pod_phase(core_v1, namespace, "canon", "Failed"))
    assert evicted["status"]["message"] == (
        'Usage of EmptyDir volume "scratch" exceeds the limit "64Ki". '
    )


def test_usage_under_the_limit_is_left_alone(core_v1, namespace):
    main = container(KUBESIM_SH="head -c 4096 /dev/zero > /scratch/small; sleep 1")
    main["volumeMounts"] = [{"name": "scratch", "mountPath": "/scratch"}]
    volumes = [{"name": "scratch", "emptyDir": {"sizeLimit": "1Mi"}}]
    core_v1.create_namespaced_pod(namespace, pod("fine", main, volumes=volumes))
    done = wait_for(pod_phase(core_v1, namespace, "fine", "Succeeded", "Failed"))
    assert done["status"]["phase"] == "Succeeded" and "reason" not in done["status"]


def test_pod_ephemeral_storage_limit(core_v1, namespace):
    limits = {"limits": {"ephemeral-storage": "100Ki"}}
    core_v1.create_namespaced_pod(namespace, scratch_pod("eph", None, 512 * 1024, **limits))
    evicted = wait_for(pod_phase(core_v1, namespace, "eph", "Failed"))
    assert evicted["status"]["reason"] == "Evicted"
    assert evicted["status"]["message"] == (
        "Pod ephemeral local storage usage exceeds the total limit of containers 100Ki. "
    )


def test_an_evicted_job_pod_counts_as_a_failure(batch_v1, core_v1, namespace):
    """No DisruptionTarget condition, so the Ignore rule does not apply and the user's
    killed container matches no rule: the failure counts against backoffLimit 0."""
    user = container(KUBESIM_SH=WRITE_AND_WAIT.format(size=512 * 1024, path="/output/blob"))
    batch_v1.create_namespaced_job(namespace, layout_job("full", user, size="128Ki"))
    done = wait_for(job_finished(batch_v1, namespace, "full"))
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert done["status"]["failed"] == 1
    [evicted] = job_pods(core_v1, namespace, "full")
    assert evicted["status"]["reason"] == "Evicted"
    assert evicted["status"]["message"] == (
        'Usage of EmptyDir volume "output" exceeds the limit "128Ki". '
    )
    user_state = statuses(evicted, "initContainerStatuses")["job"]["state"]["terminated"]
    assert user_state["exitCode"] in (137, 143)
    assert statuses(evicted)["stage-out"]["state"]["waiting"]["reason"] == "PodInitializing"
    k8s_job = raw(batch_v1.read_namespaced_job, "full", namespace)
    assert k8s_job["status"]["terminating"] == 0
