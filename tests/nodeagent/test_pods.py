"""The node agent as the kubelet: container states, KUBESIM_* behaviours, init containers,
volumes, the stager image running for real, and pods/log through the API server."""

from __future__ import annotations

from kubernetes import watch

from tests.fixtures.controlplane import SIMULATED_IMAGE
from tests.nodeagent.helpers import (
    api_error,
    container,
    empty_dir,
    job,
    job_finished,
    pod,
    pod_phase,
    raw,
    wait_for,
)


def statuses(obj: dict, key: str = "containerStatuses") -> dict[str, dict]:
    return {s["name"]: s for s in obj["status"].get(key) or []}


def test_pod_goes_pending_running_succeeded(core_v1, namespace):
    # Running lasts 40 simulated seconds (2 s): long enough for polling to see it under load.
    core_v1.create_namespaced_pod(namespace, pod("p", container(KUBESIM_RUN_SECONDS=40)))
    running = wait_for(pod_phase(core_v1, namespace, "p", "Running"))
    main = statuses(running)["main"]
    assert "running" in main["state"] and main["ready"] is True and main["started"] is True
    assert main["restartCount"] == 0 and main["image"] == "busybox:1.36"
    assert running["status"]["podIP"] and running["status"]["hostIP"]
    assert running["status"]["startTime"]
    conditions = {c["type"]: c["status"] for c in running["status"]["conditions"]}
    assert conditions["Ready"] == "True" and conditions["PodScheduled"] == "True"
    done = wait_for(pod_phase(core_v1, namespace, "p", "Succeeded"))
    term = statuses(done)["main"]["state"]["terminated"]
    assert term["exitCode"] == 0 and term["reason"] == "Completed"
    assert term["startedAt"] and term["finishedAt"] and main["ready"]
    assert statuses(done)["main"]["ready"] is False


def test_exit_code_oom_and_log(core_v1, namespace):
    core_v1.create_namespaced_pod(
        namespace,
        pod(
            "multi",
            container("fails", KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=7, KUBESIM_LOG="oops"),
            container("oom", KUBESIM_RUN_SECONDS=0, KUBESIM_OOMKILLED=1),
        ),
    )
    done = wait_for(pod_phase(core_v1, namespace, "multi", "Failed"))
    fails = statuses(done)["fails"]["state"]["terminated"]
    assert (fails["exitCode"], fails["reason"]) == (7, "Error")
    oom = statuses(done)["oom"]["state"]["terminated"]
    assert (oom["exitCode"], oom["reason"]) == (137, "OOMKilled")
    assert core_v1.read_namespaced_pod_log("multi", namespace, container="fails") == "oops\n"


def test_image_pull_error_stays_pending(core_v1, namespace):
    core_v1.create_namespaced_pod(namespace, pod("pull", container(KUBESIM_IMAGE_PULL_ERROR=1)))

    # ErrImagePull lasts one simulated second (50 ms): a watch sees every state the pod
    # went through, where polling could miss that one.
    seen: list[tuple[str, dict]] = []
    stream = watch.Watch()
    for event in stream.stream(
        core_v1.list_namespaced_pod,
        namespace,
        field_selector="metadata.name=pull",
        timeout_seconds=10,
        _preload_content=False,
    ):
        obj = event["raw_object"]
        waiting = statuses(obj).get("main", {}).get("state", {}).get("waiting") or {}
        seen.append((waiting.get("reason", ""), obj))
        if waiting.get("reason") == "ImagePullBackOff":
            stream.stop()
    reasons = [r for r, _ in seen]
    first = next(obj for r, obj in seen if r == "ErrImagePull")
    assert reasons.index("ErrImagePull") < reasons.index("ImagePullBackOff")
    assert (
        "failed to pull and unpack image" in statuses(first)["main"]["state"]["waiting"]["message"]
    )
    later = seen[-1][1]
    assert later["status"]["phase"] == "Pending"
    status, body = api_error(core_v1.read_namespaced_pod_log, "pull", namespace)
    assert status == 400
    # The kubelet words the common pull failures itself (validateContainerLogStatus), and
    # ends its errors with a newline.
    assert body["message"] == (
        'container "main" in pod "pull" is waiting to start: trying and failing to pull image\n'
    )


def test_an_image_the_node_does_not_have_cannot_be_pulled(core_v1, namespace):
    """A misspelled image with a real command: neither the stager, a stand-in, a listed
    simulated image nor given a KUBESIM_* variable. It fails to pull as on GKE, and the
    back-off keeps the pull's error, as the kubelet's image manager words it."""
    typo = {"name": "main", "image": "pyhton:3.11", "command": ["python", "-c", "print(1)"]}
    core_v1.create_namespaced_pod(namespace, pod("typo", typo))

    def backing_off() -> dict | None:
        obj = raw(core_v1.read_namespaced_pod, "typo", namespace)
        waiting = statuses(obj).get("main", {}).get("state", {}).get("waiting") or {}
        return waiting if waiting.get("reason") == "ImagePullBackOff" else None

    waiting = wait_for(backing_off)
    assert waiting["message"].startswith(
        'Back-off pulling image "pyhton:3.11": ErrImagePull: rpc error: code = NotFound desc = '
        'failed to pull and unpack image "pyhton:3.11"'
    )
    assert waiting["message"].endswith("pyhton:3.11: not found")
    assert raw(core_v1.read_namespaced_pod, "typo", namespace)["status"]["phase"] == "Pending"


def test_a_listed_image_is_simulated_without_kubesim_variables(core_v1, namespace):
    listed = {"name": "main", "image": f"{SIMULATED_IMAGE}:2.1"}
    core_v1.create_namespaced_pod(namespace, pod("listed", listed))
    done = wait_for(pod_phase(core_v1, namespace, "listed", "Succeeded"))
    assert statuses(done)["main"]["state"]["terminated"]["exitCode"] == 0


def test_init_containers_run_in_order_on_a_shared_volume(node_folder, core_v1, namespace):
    mount = [{"name": "w", "mountPath": "/work"}]
    inits = [
        {**container(f"init-{i}", KUBESIM_SH=f"echo step{i} >> /work/trace"), "volumeMounts": mount}
        for i in (1, 2, 3)
    ]
    main = {**container("main", KUBESIM_SH="cat /work/trace; echo done"), "volumeMounts": mount}
    volumes = [{"name": "w", "emptyDir": {}}]
    core_v1.create_namespaced_pod(
        namespace, pod("ordered", main, initContainers=inits, volumes=volumes)
    )
    done = wait_for(pod_phase(core_v1, namespace, "ordered", "Succeeded"))
    assert [
        s["state"]["terminated"]["exitCode"] for s in done["status"]["initContainerStatuses"]
    ] == [
        0,
        0,
        0,
    ]
    log = core_v1.read_namespaced_pod_log("ordered", namespace, container="main")
    assert log == "step1\nstep2\nstep3\ndone\n"
    assert (empty_dir(node_folder, done, "w") / "trace").read_text() == "step1\nstep2\nstep3\n"
    assert (
        core_v1.read_namespaced_pod_log("ordered", namespace, container="main", tail_lines=1)
        == "done\n"
    )


def test_failed_init_container_fails_the_pod(core_v1, namespace):
    init = container("setup", KUBESIM_SH="echo broken; exit 4")
    core_v1.create_namespaced_pod(
        namespace, pod("initfail", container(KUBESIM_LOG="never"), initContainers=[init])
    )
    done = wait_for(pod_phase(core_v1, namespace, "initfail", "Failed"))
    setup = statuses(done, "initContainerStatuses")["setup"]["state"]["terminated"]
    assert (setup["exitCode"], setup["reason"]) == (4, "Error")
    assert "waiting" in statuses(done)["main"]["state"]  # never started
    assert core_v1.read_namespaced_pod_log("initfail", namespace, container="setup") == "broken\n"


def test_kubesim_sh_sees_container_env_and_empty_dir(core_v1, namespace):
    main = {
        **container(GREETING="hello", KUBESIM_SH='echo "$GREETING" > /scratch/f; cat /scratch/f'),
        "volumeMounts": [{"name": "tmp", "mountPath": "/scratch"}],
    }
    core_v1.create_namespaced_pod(
        namespace, pod("envs", main, volumes=[{"name": "tmp", "emptyDir": {}}])
    )
    wait_for(pod_phase(core_v1, namespace, "envs", "Succeeded"))
    assert core_v1.read_namespaced_pod_log("envs", namespace) == "hello\n"


def test_kubesim_sh_exit_code(core_v1, namespace):
    core_v1.create_namespaced_pod(
        namespace, pod("sh", container(KUBESIM_SH="echo bad >&2; exit 9"))
    )
    done = wait_for(pod_phase(core_v1, namespace, "sh", "Failed"))
    assert statuses(done)["main"]["state"]["terminated"]["exitCode"] == 9
    assert core_v1.read_namespaced_pod_log("sh", namespace) == "bad\n"


STAGER_SCRIPT = (
    "import os, sys; from pathlib import Path; "
    "out = Path(sys.argv[1]); "
    "(out / 'result.txt').write_text(os.environ['PAYLOAD'] + ':' + os.environ['TARGET']); "
    "print('wrote', out.name, flush=True)"
)


def test_stager_image_runs_for_real(node_folder, batch_v1, core_v1, namespace):
    stager = {
        "name": "stage-out",
        "image": "stager:v2",  # the tag is ignored: same repository as the stager image
        "command": ["python", "-c", STAGER_SCRIPT],
        "args": ["/output"],
        "env": [{"name": "PAYLOAD", "value": "data"}, {"name": "TARGET", "value": "/output/x"}],
        "volumeMounts": [{"name": "out", "mountPath": "/output"}],
    }
    volumes = [{"name": "out", "emptyDir": {}}]
    batch_v1.create_namespaced_job(
        namespace, job("stage", stager, pod_spec={"volumes": volumes}, backoffLimit=0)
    )
    done = wait_for(job_finished(batch_v1, namespace, "stage"))
    assert done["status"].get("succeeded") == 1, done["status"]
    [p] = raw(core_v1.list_namespaced_pod, namespace, label_selector="job-name=stage")["items"]
    host = empty_dir(node_folder, p, "out")
    assert (host / "result.txt").read_text() == f"data:{host}/x"
    log = core_v1.read_namespaced_pod_log(p["metadata"]["name"], namespace)
    assert log == "wrote out\n"


def test_other_images_are_simulated_not_run(core_v1, namespace):
    other = {
        "name": "main",
        "image": "stager-other:test",
        "command": ["python", "-c", "raise SystemExit(3)"],
        "env": [{"name": "KUBESIM_RUN_SECONDS", "value": "0"}],
    }
    core_v1.create_namespaced_pod(namespace, pod("sim", other))
    wait_for(pod_phase(core_v1, namespace, "sim", "Succeeded"))


def test_pod_log_errors(core_v1, namespace):
    core_v1.create_namespaced_pod(
        namespace,
        pod(
            "two", container("a", KUBESIM_RUN_SECONDS=100), container("b", KUBESIM_RUN_SECONDS=100)
        ),
    )
    status, body = api_error(core_v1.read_namespaced_pod_log, "two", namespace)
    assert status == 400
    assert body["message"] == "a container name must be specified for pod two, choose one of: [a b]"
    status, body = api_error(core_v1.read_namespaced_pod_log, "two", namespace, container="zz")
    assert status == 400 and body["message"] == "container zz is not valid for pod two"
    assert api_error(core_v1.read_namespaced_pod_log, "nope", namespace)[0] == 404


def test_a_pod_past_its_active_deadline_is_failed_and_kept(core_v1, namespace):
    """active_deadline.go: killed, Failed with reason DeadlineExceeded, not deleted; its
    log stays readable."""
    script = container(KUBESIM_SH="echo started; sleep 600")
    core_v1.create_namespaced_pod(
        namespace, pod("late", script, activeDeadlineSeconds=2, terminationGracePeriodSeconds=1)
    )
    failed = wait_for(pod_phase(core_v1, namespace, "late", "Failed"))
    assert (failed["status"]["reason"], failed["status"]["message"]) == (
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline",
    )
    assert "terminated" in statuses(failed)["main"]["state"]
    assert core_v1.read_namespaced_pod_log("late", namespace, container="main") == "started\n"
    assert (
        core_v1.read_namespaced_pod(namespace=namespace, name="late").metadata.deletion_timestamp
        is None
    )
