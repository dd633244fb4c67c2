"""Restarts in place, as the kubelet makes them: restartPolicy OnFailure runs a failed
container again after the crash-loop back-off, keeps its run as lastState and counts it in
restartCount, which the Job controller counts against backoffLimit."""

from __future__ import annotations

from tests.nodeagent.helpers import (
    container,
    job,
    job_finished,
    job_pods,
    must_condition,
    pod,
    pod_phase,
    raw,
    statuses,
    wait_for,
)

# Fails on its first two runs: the count lives in an emptyDir, which outlives a container.
FLAKY = (
    "n=$(cat /state/n 2>/dev/null || echo 0); echo $((n+1)) > /state/n; echo run $n; [ $n -ge 2 ]"
)


def flaky() -> dict:
    main = container(KUBESIM_SH=FLAKY)
    main["volumeMounts"] = [{"name": "state", "mountPath": "/state"}]
    return main


def test_a_failed_container_runs_again_in_place(core_v1, namespace):
    body = pod("flaky", flaky(), volumes=[{"name": "state", "emptyDir": {}}])
    body["spec"]["restartPolicy"] = "OnFailure"
    core_v1.create_namespaced_pod(namespace, body)
    done = wait_for(pod_phase(core_v1, namespace, "flaky", "Succeeded"))
    main = statuses(done)["main"]
    assert main["restartCount"] == 2
    assert main["lastState"]["terminated"]["exitCode"] == 1
    assert main["state"]["terminated"]["exitCode"] == 0
    assert core_v1.read_namespaced_pod_log("flaky", namespace) == "run 2\n"
    assert core_v1.read_namespaced_pod_log("flaky", namespace, previous=True) == "run 1\n"


def test_a_crash_loop_waits_and_says_so(core_v1, namespace):
    body = pod("looping", container(KUBESIM_SH="echo failing; exit 3"))
    body["spec"]["restartPolicy"] = "OnFailure"
    core_v1.create_namespaced_pod(namespace, body)

    def backing_off() -> dict | None:
        found = raw(core_v1.read_namespaced_pod, "looping", namespace)
        main = statuses(found).get("main") or {}
        waiting = (main.get("state") or {}).get("waiting") or {}
        return found if waiting.get("reason") == "CrashLoopBackOff" else None

    looping = wait_for(backing_off, what="CrashLoopBackOff")
    main = statuses(looping)["main"]
    assert looping["status"]["phase"] == "Running"
    assert main["restartCount"] >= 1
    assert main["lastState"]["terminated"]["exitCode"] == 3
    assert main["state"]["waiting"]["message"].startswith("back-off ")
    assert "restarting failed container=main pod=looping_" in main["state"]["waiting"]["message"]
    # While it waits, its log is the run that failed, as the kubelet serves it.
    assert core_v1.read_namespaced_pod_log("looping", namespace) == "failing\n"


def test_a_jobs_restarts_count_against_its_backoff_limit(batch_v1, core_v1, namespace):
    failing = job("restarts", container(KUBESIM_SH="exit 1"), backoffLimit=1)
    failing["spec"]["template"]["spec"]["restartPolicy"] = "OnFailure"
    batch_v1.create_namespaced_job(namespace, failing)
    done = wait_for(job_finished(batch_v1, namespace, "restarts"))
    assert must_condition(done, "Failed")["reason"] == "BackoffLimitExceeded"

    ok = job("recovers", flaky(), backoffLimit=6)
    spec = ok["spec"]["template"]["spec"]
    spec["restartPolicy"] = "OnFailure"
    spec["volumes"] = [{"name": "state", "emptyDir": {}}]
    batch_v1.create_namespaced_job(namespace, ok)
    done = wait_for(job_finished(batch_v1, namespace, "recovers"))
    assert must_condition(done, "Complete")
    [only] = job_pods(core_v1, namespace, "recovers")  # one pod, restarted in place
    assert statuses(only)["main"]["restartCount"] == 2
