"""The product's one-pod-per-job layout: stage-in and the user's container `job` as init
containers, stage-out as the only regular container. Phases, readiness (the pod's and the
Job's), KUBESIM_SH and the KUBESIM_* simulation in an init container, and its log.

Containers that must be seen running wait for a marker file the test creates (they run
on this host), so no check depends on catching a state within a time window."""

from __future__ import annotations

from tests.nodeagent.helpers import (
    HOST_IMAGE,
    api_error,
    conditions,
    container,
    job_finished,
    job_pods,
    layout_job,
    must_condition,
    raw,
    statuses,
    wait_for,
)


def hold_sh(mark) -> str:
    """Shell: wait until `mark` exists."""
    return f"while [ ! -e {mark} ]; do sleep 0.02; done"


def hold_py(mark) -> str:
    """Python: wait until `mark` exists."""
    return f"import os, time\nwhile not os.path.exists({str(mark)!r}): time.sleep(0.02)\n"


def only_pod(core_v1, namespace, name):
    return wait_for(lambda: job_pods(core_v1, namespace, name), what="the job's pod")[0]


def state_of(core_v1, namespace, pod_name, container_name, wanted, *, init):
    key = "initContainerStatuses" if init else "containerStatuses"

    def check():
        obj = raw(core_v1.read_namespaced_pod, pod_name, namespace)
        state = statuses(obj, key).get(container_name, {}).get("state", {})
        return obj if wanted in state else None

    return check


def test_user_container_runs_as_an_init_container(batch_v1, core_v1, namespace, tmp_path):
    user_done, out_done = tmp_path / "user-done", tmp_path / "out-done"
    user = container(
        image=HOST_IMAGE,
        KUBESIM_SH=f"cat /input/in.txt > /output/out.txt; echo copied; {hold_sh(user_done)}",
    )
    stage_out = "print(open('/output/out.txt').read().strip(), flush=True)\n" + hold_py(out_done)
    batch_v1.create_namespaced_job(
        namespace, layout_job("lay", user, stage_out=stage_out, backoff_limit=0)
    )
    name = only_pod(core_v1, namespace, "lay")["metadata"]["name"]

    running_user = wait_for(state_of(core_v1, namespace, name, "job", "running", init=True))
    assert running_user["status"]["phase"] == "Pending"  # init containers are still running
    conds = conditions(running_user)
    assert conds["Initialized"]["status"] == "False"
    assert conds["Initialized"]["message"] == "containers with incomplete status: [job]"
    assert conds["Ready"]["status"] == "False"
    assert conds["Ready"]["message"] == "containers with unready status: [stage-out]"
    stage_in = statuses(running_user, "initContainerStatuses")["stage-in"]
    assert stage_in["state"]["terminated"]["exitCode"] == 0 and stage_in["ready"] is True
    waiting = statuses(running_user)["stage-out"]["state"]["waiting"]
    assert waiting["reason"] == "PodInitializing"
    k8s_job = raw(batch_v1.read_namespaced_job, "lay", namespace)["status"]
    assert k8s_job["active"] == 1 and k8s_job["ready"] == 0

    user_done.touch()
    staging_out = wait_for(state_of(core_v1, namespace, name, "stage-out", "running", init=False))
    assert staging_out["status"]["phase"] == "Running"
    conds = conditions(staging_out)
    assert conds["Initialized"]["status"] == "True"
    assert conds["Ready"]["status"] == conds["ContainersReady"]["status"] == "True"

    def job_ready():
        status = raw(batch_v1.read_namespaced_job, "lay", namespace)["status"]
        return status if status.get("ready") == 1 else None

    assert wait_for(job_ready, what="the Job's ready count")["active"] == 1

    out_done.touch()
    done = wait_for(job_finished(batch_v1, namespace, "lay"))
    assert must_condition(done, "Complete")["reason"] == "CompletionsReached"
    assert done["status"]["succeeded"] == 1 and done["status"]["ready"] == 0
    finished = raw(core_v1.read_namespaced_pod, name, namespace)
    assert finished["status"]["phase"] == "Succeeded"
    assert conditions(finished)["Ready"]["reason"] == "PodCompleted"
    assert core_v1.read_namespaced_pod_log(name, namespace, container="job") == "copied\n"
    assert core_v1.read_namespaced_pod_log(name, namespace, container="stage-out") == (
        "input data\n"
    )


def test_simulated_user_container_fails_the_pod_and_counts(batch_v1, core_v1, namespace):
    user = container(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=3, KUBESIM_LOG="boom")
    user["terminationMessagePolicy"] = "FallbackToLogsOnError"
    batch_v1.create_namespaced_job(namespace, layout_job("sim", user, backoff_limit=1))
    done = wait_for(job_finished(batch_v1, namespace, "sim"))
    failed = must_condition(done, "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"  # no rule matched: each failure counts
    assert done["status"]["failed"] == 2
    pods = job_pods(core_v1, namespace, "sim")
    assert len(pods) == 2
    for pod in pods:
        assert pod["status"]["phase"] == "Failed"
        user_state = statuses(pod, "initContainerStatuses")["job"]["state"]["terminated"]
        assert (user_state["exitCode"], user_state["reason"]) == (3, "Error")
        assert user_state["message"] == "boom\n"
        # Never initialized, so stage-out is left waiting, not reported as lost.
        assert statuses(pod)["stage-out"]["state"]["waiting"]["reason"] == "PodInitializing"
        assert "batch.kubernetes.io/job-tracking" not in (pod["metadata"].get("finalizers") or [])


def test_init_container_log(batch_v1, core_v1, namespace, tmp_path):
    go = tmp_path / "go"
    held_in = hold_py(go) + "open('/input/in.txt', 'w').write('x')\n"
    lines = "; ".join(f"echo line{i}" for i in range(1, 11))
    user = container(KUBESIM_SH=lines)
    batch_v1.create_namespaced_job(
        namespace, layout_job("logs", user, stage_in=held_in, stage_out="print('out')")
    )
    name = only_pod(core_v1, namespace, "logs")["metadata"]["name"]
    wait_for(state_of(core_v1, namespace, name, "stage-in", "running", init=True))
    for which in ("job", "stage-out"):
        status, body = api_error(core_v1.read_namespaced_pod_log, name, namespace, container=which)
        assert status == 400 and body["reason"] == "BadRequest"
        assert body["message"] == (  # the kubelet's, ending with a newline
            f'container "{which}" in pod "{name}" is waiting to start: PodInitializing\n'
        )

    go.touch()
    wait_for(state_of(core_v1, namespace, name, "job", "terminated", init=True))
    read = core_v1.read_namespaced_pod_log
    full = "".join(f"line{i}\n" for i in range(1, 11))
    assert read(name, namespace, container="job") == full
    assert read(name, namespace, container="job", tail_lines=2) == "line9\nline10\n"
    assert read(name, namespace, container="job", limit_bytes=8) == "line1\nli"
    assert read(name, namespace, container="job", tail_lines=2, limit_bytes=7) == "line9\nl"
    status, body = api_error(read, name, namespace, container="job", limit_bytes=0)
    assert status == 422
    assert body["message"] == (
        f'PodLogOptions "{name}" is invalid: limitBytes: Invalid value: 0: must be greater than 0'
    )
    status, body = api_error(read, name, namespace, container="job", previous=True)
    assert status == 400
    # the kubelet ends its errors with a newline
    assert body["message"] == f'previous terminated container "job" in pod "{name}" not found\n'


def test_follow_streams_until_the_container_ends(batch_v1, core_v1, namespace, tmp_path):
    more, end = tmp_path / "more", tmp_path / "end"
    script = f"echo first; {hold_sh(more)}; echo second; {hold_sh(end)}; echo third"
    user = container(image=HOST_IMAGE, KUBESIM_SH=script)
    batch_v1.create_namespaced_job(namespace, layout_job("follow", user))
    name = only_pod(core_v1, namespace, "follow")["metadata"]["name"]
    wait_for(state_of(core_v1, namespace, name, "job", "running", init=True))
    response = core_v1.read_namespaced_pod_log(
        name, namespace, container="job", follow=True, _preload_content=False, _request_timeout=10
    )
    received = b""
    try:
        chunks = response.stream(1)
        for wanted, release in ((b"first\n", more), (b"first\nsecond\n", end)):
            while received != wanted:
                received += next(chunks)
            release.touch()  # the container goes on only once the stream delivered its line
        received += b"".join(chunks)  # ends when the container does
    finally:
        response.release_conn()
    assert received == b"first\nsecond\nthird\n"
    ended = raw(core_v1.read_namespaced_pod, name, namespace)
    assert "terminated" in statuses(ended, "initContainerStatuses")["job"]["state"]
