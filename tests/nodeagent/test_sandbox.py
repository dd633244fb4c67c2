"""Containers of the images the local cloud stands in for (python, alpine, busybox, debian,
ubuntu, bash) run their real command and args in a bubblewrap sandbox: volumes at their
real mount paths, their own /tmp, a memory limit, SIGTERM on deletion."""

from __future__ import annotations

import time
from typing import Any

import pytest

from infra.local.nodeagent.sandbox import BWRAP
from tests.nodeagent.helpers import (
    HOST_IMAGE,
    empty_dir,
    env,
    is_gone,
    pod,
    pod_phase,
    raw,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.skipif(not BWRAP.exists(), reason="bubblewrap is not installed")

PYTHON = "docker.io/library/python:3.11-slim"


def main(image: str = PYTHON, **fields: Any) -> dict[str, Any]:
    return {"name": "main", "image": image, **fields}


def finished(core_v1, namespace: str, name: str, *containers: dict, **spec: Any):
    """Run a pod to its end: (its main container's terminated state, its log)."""
    core_v1.create_namespaced_pod(namespace, pod(name, *containers, **spec))
    done = wait_for(pod_phase(core_v1, namespace, name, "Succeeded", "Failed"))
    log = core_v1.read_namespaced_pod_log(name, namespace, container="main")
    return statuses(done)["main"]["state"]["terminated"], log


def with_volume(name: str, mount: str, **options: Any):
    """What a pod needs to mount an emptyDir volume `name` at `mount`."""
    mounts = [{"name": name, "mountPath": mount, **options}]
    volumes = [{"name": name, "emptyDir": {}}]
    return mounts, volumes


def volume_of(node_folder, core_v1, namespace: str, pod_name: str, volume: str):
    """The node's directory behind a pod's emptyDir volume (gone with the pod)."""
    found = raw(core_v1.read_namespaced_pod, pod_name, namespace)
    return empty_dir(node_folder, found, volume)


def until_gone(core_v1, namespace: str, name: str, since: str) -> list[dict]:
    """Every version of the pod from resourceVersion `since` until it is deleted."""
    from kubernetes import watch

    seen = []
    selector = f"metadata.name={name}"
    stream = watch.Watch().stream(
        core_v1.list_namespaced_pod,
        namespace,
        field_selector=selector,
        resource_version=since,
        timeout_seconds=60,
    )
    for event in stream:
        seen.append(event["raw_object"])
        if event["type"] == "DELETED":
            break
    return seen


def test_command_alone_replaces_the_images_command(core_v1, namespace):
    command = ["python3", "-c", "import sys; print('ran', sys.argv[1:])", "x"]
    term, log = finished(core_v1, namespace, "cmd", main(command=command))
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert log == "ran ['x']\n"


def test_args_alone_run_since_python_images_have_no_entrypoint(core_v1, namespace):
    args = ["python", "-c", "print('from args')"]
    term, log = finished(core_v1, namespace, "args", main(args=args))
    assert log == "from args\n" and term["exitCode"] == 0


def test_command_and_args(core_v1, namespace):
    box = main("alpine:3.19", command=["/bin/sh", "-c"], args=["echo $0 $1; exit 3", "a", "b"])
    term, log = finished(core_v1, namespace, "both", box)
    assert log == "a b\n"
    assert (term["exitCode"], term["reason"]) == (3, "Error")


def test_python_and_python3_are_both_found(core_v1, namespace):
    script = "python -c 'import sys; print(sys.version_info[0])' && python3 -c 'print(3)'"
    term, log = finished(core_v1, namespace, "py", main(command=["sh", "-c", script]))
    assert log == "3\n3\n" and term["exitCode"] == 0


def test_the_image_default_with_nothing_to_read_exits_at_once(core_v1, namespace):
    term, log = finished(core_v1, namespace, "default", main("python:3.11"))
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert log == ""


def test_variables_expand_in_command_and_args(core_v1, namespace):
    box = main(
        "busybox",
        command=["echo", "$(GREETING)"],
        args=["$$(GREETING)", "$(MISSING)", "cost $5"],
        env=env(GREETING="hello"),
    )
    assert finished(core_v1, namespace, "vars", box)[1] == "hello $(GREETING) $(MISSING) cost $5\n"


def test_files_written_to_output_reach_the_volume(node_folder, core_v1, namespace):
    mounts, volumes = with_volume("out", "/output")
    script = "open('/output/result.txt', 'w').write('computed\\n')"
    box = main(command=["python3", "-c", script], volumeMounts=mounts)
    term, _ = finished(core_v1, namespace, "writer", box, volumes=volumes)
    assert term["exitCode"] == 0
    host = volume_of(node_folder, core_v1, namespace, "writer", "out")
    assert (host / "result.txt").read_text() == "computed\n"


def test_a_read_only_input_can_be_read_not_written(node_folder, core_v1, namespace):
    mounts, volumes = with_volume("in", "/input", readOnly=True)
    writer = main("alpine", command=["sh", "-c", "echo given > /input/in.txt"])
    writer |= {"name": "fill", "volumeMounts": with_volume("in", "/input")[0]}
    box = main("debian:12", command=["sh", "-c", "cat /input/in.txt; touch /input/new"])
    term, log = finished(
        core_v1,
        namespace,
        "reader",
        {**box, "volumeMounts": mounts},
        volumes=volumes,
        initContainers=[writer],
    )
    assert log.startswith("given\n") and "Read-only file system" in log
    assert term["exitCode"] != 0
    assert not (volume_of(node_folder, core_v1, namespace, "reader", "in") / "new").exists()


def test_the_working_directory(core_v1, namespace):
    script = "pwd; cd /; echo $PWD"
    box = main("ubuntu:22.04", command=["sh", "-c", script], workingDir="/srv/app")
    assert finished(core_v1, namespace, "wd", box)[1] == "/srv/app\n/\n"
    assert finished(core_v1, namespace, "root", main("ubuntu", command=["pwd"]))[1] == "/\n"


def test_exit_code_reaches_the_pod_status(core_v1, namespace):
    box = main(command=["python3", "-c", "import sys; print('bad input'); sys.exit(42)"])
    core_v1.create_namespaced_pod(namespace, pod("exit", box))
    done = wait_for(pod_phase(core_v1, namespace, "exit", "Failed"))
    term = statuses(done)["main"]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (42, "Error")
    assert core_v1.read_namespaced_pod_log("exit", namespace) == "bad input\n"


def test_a_missing_executable_cannot_run(core_v1, namespace):
    term, log = finished(core_v1, namespace, "missing", main(command=["no-such-tool"]))
    assert (term["exitCode"], term["reason"]) == (128, "ContainerCannotRun")
    assert "no-such-tool" in log


def test_memory_limit_oom_kills(core_v1, namespace):
    limits = {"limits": {"memory": "64Mi"}}
    hog = main(command=["python3", "-c", "b = bytearray(256 * 2**20); print('allocated')"])
    term, log = finished(core_v1, namespace, "hog", {**hog, "resources": limits})
    assert (term["exitCode"], term["reason"]) == (137, "OOMKilled")
    assert "allocated" not in log
    small = main(command=["python3", "-c", "b = bytearray(8 * 2**20); print('allocated')"])
    term, log = finished(core_v1, namespace, "ok", {**small, "resources": limits})
    assert (term["exitCode"], term["reason"], log) == (0, "Completed", "allocated\n")


def test_the_hosts_tmp_and_environment_stay_outside(core_v1, namespace, tmp_path):
    secret = tmp_path / "host-secret"
    secret.write_text("x")
    script = (
        f'test ! -e {secret} && ls -A /tmp | wc -l && echo "$HOME:${{STORAGE_EMULATOR_HOST:-none}}"'
    )
    term, log = finished(core_v1, namespace, "tmp", main("alpine", command=["sh", "-c", script]))
    assert term["exitCode"] == 0, log
    assert log.split() == ["0", "/root:none"]


def test_kubesim_sh_runs_inside_the_sandbox_unrewritten(node_folder, core_v1, namespace):
    mounts, volumes = with_volume("data", "/data")
    script = "echo /data; echo $PWD; echo in > /data/f"
    box = main("busybox:1.36", env=env(KUBESIM_SH=script), volumeMounts=mounts)
    term, log = finished(core_v1, namespace, "sh", box, volumes=volumes)
    assert (term["exitCode"], log) == (0, "/data\n/\n")
    assert (volume_of(node_folder, core_v1, namespace, "sh", "data") / "f").read_text() == "in\n"


def running(node_folder, core_v1, namespace: str, name: str) -> None:
    """Until the pod's command has written /m/up."""

    def up() -> bool:
        return (volume_of(node_folder, core_v1, namespace, name, "m") / "up").exists()

    wait_for(up, what="the command to start")


def test_sigterm_on_delete_reaches_the_command(node_folder, core_v1, namespace):
    mounts, volumes = with_volume("m", "/m")
    script = "trap 'exit 5' TERM; echo up > /m/up; while :; do sleep 0.05; done"
    box = main("bash", command=["bash", "-c", script], volumeMounts=mounts)
    core_v1.create_namespaced_pod(namespace, pod("term", box, volumes=volumes))
    running(node_folder, core_v1, namespace, "term")
    deleted = core_v1.delete_namespaced_pod("term", namespace, grace_period_seconds=600)  # 30 s
    versions = until_gone(core_v1, namespace, "term", deleted.metadata.resource_version)
    last = statuses(versions[-1])["main"]["state"]["terminated"]
    assert last["exitCode"] == 5  # the trap ran, long before the grace period's end


def test_a_command_ignoring_sigterm_lives_until_the_grace_period_ends(
    node_folder, core_v1, namespace
):
    mounts, volumes = with_volume("m", "/m")
    script = "trap '' TERM; echo up > /m/up; while :; do sleep 0.05; done"
    box = main("alpine", command=["sh", "-c", script], volumeMounts=mounts)
    core_v1.create_namespaced_pod(namespace, pod("stubborn", box, volumes=volumes))
    running(node_folder, core_v1, namespace, "stubborn")
    core_v1.delete_namespaced_pod("stubborn", namespace, grace_period_seconds=40)  # 2 s wall
    time.sleep(1.0)
    assert raw(core_v1.read_namespaced_pod, "stubborn", namespace)["metadata"]["deletionTimestamp"]
    wait_for(lambda: is_gone(core_v1.read_namespaced_pod, "stubborn", namespace))


def test_other_images_are_still_simulated(core_v1, namespace, tmp_path):
    command = ["python3", "-c", "print('real')"]
    box = main("example.com/team/tool:1", command=command, env=env(KUBESIM_LOG="simulated"))
    assert finished(core_v1, namespace, "sim", box)[1] == "simulated\n"
    seen = tmp_path / "seen"
    seen.write_text("host file\n")
    host = main(HOST_IMAGE, env=env(KUBESIM_SH=f"cat {seen}"))
    assert finished(core_v1, namespace, "host", host)[1] == "host file\n"


def test_simulation_variables_keep_a_stand_in_simulated(core_v1, namespace):
    box = main("alpine:3", env=env(KUBESIM_RUN_SECONDS=0, KUBESIM_EXIT_CODE=6, KUBESIM_LOG="s"))
    term, log = finished(core_v1, namespace, "simulated", box)
    assert (term["exitCode"], log) == (6, "s\n")
