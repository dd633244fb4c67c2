"""The Job controller: completion, retries, deadlines, TTL, suspension, failure policy."""

from __future__ import annotations

import re

from tests.kubesim.helpers import (
    condition,
    container,
    job,
    job_finished,
    job_pods,
    must_condition,
    raw,
    wait_for,
)


def test_job_completes(batch_v1, core_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("ok", container(KUBESIM_RUN_SECONDS=1)))
    done = wait_for(job_finished(batch_v1, namespace, "ok"), what="job to finish")
    assert must_condition(done, "Complete")["reason"] == "CompletionsReached"
    assert condition(done, "SuccessCriteriaMet")
    assert done["status"]["succeeded"] == 1 and "active" not in done["status"]
    assert done["status"]["startTime"] and done["status"]["completionTime"]
    pods = job_pods(core_v1, namespace, "ok")
    assert len(pods) == 1
    pod = pods[0]
    assert re.fullmatch(r"ok-[a-z0-9]{5}", pod["metadata"]["name"])
    uid = done["metadata"]["uid"]
    labels = pod["metadata"]["labels"]
    assert labels["controller-uid"] == uid and labels["batch.kubernetes.io/job-name"] == "ok"
    assert labels["batch.kubernetes.io/controller-uid"] == uid
    [owner] = pod["metadata"]["ownerReferences"]
    assert owner == {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "ok",
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }
    assert pod["status"]["phase"] == "Succeeded"


def test_job_reports_active_and_ready_while_running(batch_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("run", container(KUBESIM_RUN_SECONDS=100)))

    def running():
        status = raw(batch_v1.read_namespaced_job, "run", namespace)["status"]
        return status if status.get("active") == 1 and status.get("ready") == 1 else None

    status = wait_for(running, what="an active, ready pod")
    assert "succeeded" not in status and "failed" not in status


def test_backoff_limit_exceeded_after_retries(batch_v1, core_v1, namespace):
    body = job("bad", container(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=3), backoffLimit=1)
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "bad"), what="job to fail")
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"
    assert failed["message"] == "Job has reached the specified backoff limit"
    assert condition(done, "FailureTarget")
    assert done["status"]["failed"] == 2
    pods = job_pods(core_v1, namespace, "bad")
    assert len(pods) == 2
    for pod in pods:
        state = pod["status"]["containerStatuses"][0]["state"]["terminated"]
        assert state["exitCode"] == 3 and state["reason"] == "Error"


def test_deadline_exceeded_kills_the_pod(batch_v1, core_v1, namespace):
    body = job("slow", container(KUBESIM_RUN_SECONDS=100), activeDeadlineSeconds=2)
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "slow"), what="deadline")
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "DeadlineExceeded"
    assert failed["message"] == "Job was active longer than specified deadline"
    assert "active" not in done["status"]
    wait_for(lambda: not job_pods(core_v1, namespace, "slow"), what="pods deleted")


def test_ttl_after_finished_deletes_job_and_pods(batch_v1, core_v1, namespace):
    # 40 simulated seconds (2 s): the finished Job is surely still there when first read.
    body = job("ttl", container(KUBESIM_RUN_SECONDS=0), ttlSecondsAfterFinished=40)
    batch_v1.create_namespaced_job(namespace, body)
    wait_for(job_finished(batch_v1, namespace, "ttl"))
    assert raw(batch_v1.list_namespaced_job, namespace)["items"]  # still there right after

    def gone():
        return not raw(batch_v1.list_namespaced_job, namespace)["items"] and not job_pods(
            core_v1, namespace, "ttl"
        )

    wait_for(gone, what="the TTL to delete job and pods")


def test_suspend_and_resume(batch_v1, core_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("s", container(KUBESIM_RUN_SECONDS=100)))
    wait_for(lambda: raw(batch_v1.read_namespaced_job, "s", namespace)["status"].get("active"))
    batch_v1.patch_namespaced_job("s", namespace, {"spec": {"suspend": True}})

    def suspended():
        obj = raw(batch_v1.read_namespaced_job, "s", namespace)
        return (
            obj if condition(obj, "Suspended") and not job_pods(core_v1, namespace, "s") else None
        )

    obj = wait_for(suspended, what="suspension to remove the pod")
    assert must_condition(obj, "Suspended")["reason"] == "JobSuspended"
    assert "failed" not in obj["status"]  # suspension is not a failure
    batch_v1.patch_namespaced_job(
        "s", namespace, {"spec": {"suspend": False}}, _content_type="application/merge-patch+json"
    )
    wait_for(lambda: len(job_pods(core_v1, namespace, "s")) == 1, what="a new pod on resume")
    obj = raw(batch_v1.read_namespaced_job, "s", namespace)
    suspended_cond = next(c for c in obj["status"]["conditions"] if c["type"] == "Suspended")
    assert suspended_cond["status"] == "False" and suspended_cond["reason"] == "JobResumed"


def test_created_suspended_makes_no_pods(batch_v1, core_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("idle", suspend=True))
    obj = wait_for(
        lambda: condition(raw(batch_v1.read_namespaced_job, "idle", namespace), "Suspended")
    )
    assert obj["reason"] == "JobSuspended"
    assert job_pods(core_v1, namespace, "idle") == []


def test_pod_failure_policy_fails_job_at_once(batch_v1, namespace):
    policy = {
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {"containerName": "main", "operator": "In", "values": [42]},
            }
        ]
    }
    body = job(
        "pfp",
        container(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=42),
        backoffLimit=5,
        podFailurePolicy=policy,
    )
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "pfp"))
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "PodFailurePolicy"
    assert re.fullmatch(
        rf"Container main for pod {namespace}/pfp-[a-z0-9]{{5}} failed with exit code 42 "
        r"matching FailJob rule at index 0",
        failed["message"],
    )
    assert done["status"]["failed"] == 1


def test_parallel_completions(batch_v1, core_v1, namespace):
    body = job("par", container(KUBESIM_RUN_SECONDS=1), completions=3, parallelism=2)
    batch_v1.create_namespaced_job(namespace, body)
    done = wait_for(job_finished(batch_v1, namespace, "par"))
    assert condition(done, "Complete") and done["status"]["succeeded"] == 3
    assert len(job_pods(core_v1, namespace, "par")) == 3


def test_parallelism_without_completions_is_a_work_queue(batch_v1, core_v1, namespace):
    """SetDefaults_Job leaves completions unset when parallelism is given: the Job completes
    once a pod succeeded and none is left running, and starts no more pods after that."""
    body = job("queue", container(KUBESIM_RUN_SECONDS=1), parallelism=2)
    assert batch_v1.create_namespaced_job(namespace, body).spec.completions is None
    done = wait_for(job_finished(batch_v1, namespace, "queue"))
    assert condition(done, "Complete") and done["status"]["succeeded"] == 2
    assert len(job_pods(core_v1, namespace, "queue")) == 2


def test_deleted_running_pod_is_replaced_and_counted(batch_v1, core_v1, namespace):
    batch_v1.create_namespaced_job(namespace, job("rep", container(KUBESIM_RUN_SECONDS=100)))
    first = wait_for(lambda: job_pods(core_v1, namespace, "rep"))[0]["metadata"]["name"]
    core_v1.delete_namespaced_pod(first, namespace, grace_period_seconds=0)

    def replaced():
        names = [p["metadata"]["name"] for p in job_pods(core_v1, namespace, "rep")]
        return names if names and first not in names else None

    wait_for(replaced, what="a replacement pod")
    assert raw(batch_v1.read_namespaced_job, "rep", namespace)["status"]["failed"] == 1


def test_terminating_or_failed_replaces_a_pod_as_soon_as_it_is_deleted(
    batch_v1, core_v1, namespace
):
    """Without a podFailurePolicy the default podReplacementPolicy is TerminatingOrFailed:
    a deleted pod counts as failed at once and its replacement starts while it still
    terminates (isPodFailed, onlyReplaceFailedPods in job_controller.go)."""
    stubborn = container(KUBESIM_RUN_SECONDS=1000, KUBESIM_IGNORE_SIGTERM=1)
    body = job("eager", stubborn, backoffLimit=3)
    body["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = (
        600  # 30 s wall: time to see the replacement
    )
    created = batch_v1.create_namespaced_job(namespace, body)
    assert created.spec.pod_replacement_policy == "TerminatingOrFailed"
    first = wait_for(lambda: job_pods(core_v1, namespace, "eager"))[0]["metadata"]["name"]
    wait_for(lambda: raw(batch_v1.read_namespaced_job, "eager", namespace)["status"].get("ready"))
    core_v1.delete_namespaced_pod(first, namespace)

    def replaced_while_terminating():
        pods = {p["metadata"]["name"]: p for p in job_pods(core_v1, namespace, "eager")}
        old = pods.get(first)
        others = [p for n, p in pods.items() if n != first]
        if old and old["metadata"].get("deletionTimestamp") and others:
            return old
        return None

    old = wait_for(replaced_while_terminating, timeout=20, what="a replacement beside the old pod")
    assert old["status"]["phase"] == "Running"
    status = raw(batch_v1.read_namespaced_job, "eager", namespace)["status"]
    assert status["failed"] == 1 and status["terminating"] == 1
