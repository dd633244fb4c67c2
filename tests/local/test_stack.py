"""`make run`: the whole local cloud comes up on loopback, refuses a second copy, stops clean
and within its bound whatever its servers are doing."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests

from infra.local.config import isolated_env
from infra.local.stack import STOP_SECONDS, read_env_file
from tests.fixtures.tokens import NO_TOKEN, operator_session
from tests.fixtures.waiting import wait_for
from tests.local.httpcapture import capture_server

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            if fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def test_make_run_serves_everything_and_leaves_nothing_behind(tmp_path):
    state = tmp_path / "state"
    env = isolated_env(
        state,
        GOOGLE_CLOUD_PROJECT="stack-test",
        GC_BUCKET_NAME="stack-bucket",
        KUBERNETES_NAMESPACE="jobs",
        JOB_SYNCHRONIZATION_INTERVAL="2",
        LOG_LEVEL="INFO",  # the functions log each job they act on
    )
    stack = subprocess.Popen(
        [sys.executable, "-m", "infra.local.stack"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    spawned: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while not (state / "env").exists():
            assert stack.poll() is None, stack.stdout.read() if stack.stdout else ""
            assert time.monotonic() < deadline, "the local cloud did not come up"
            time.sleep(0.2)
        cloud = read_env_file(state / "env")
        spawned = descendants(stack.pid)
        # Up means the Firestore trigger's stand-in listens: no write can precede it.
        assert (state / "eventarc-firestore.ready").exists()

        assert cloud["GOOGLE_CLOUD_PROJECT"] == "stack-test"
        assert cloud["KUBECONFIG"] == str(state / "kubeconfig")
        for name in ("FIRESTORE_EMULATOR_HOST", "PUBSUB_EMULATOR_HOST"):
            assert cloud[name].startswith("127.0.0.1:")
        assert requests.get(f"http://{cloud['FIRESTORE_EMULATOR_HOST']}/", timeout=5).ok
        buckets = requests.get(f"{cloud['STORAGE_EMULATOR_HOST']}/storage/v1/b", timeout=5)
        assert [b["name"] for b in buckets.json()["items"]] == ["stack-bucket"]

        kubectl = subprocess.run(
            [
                "kubectl",
                "--kubeconfig",
                cloud["KUBECONFIG"],
                "get",
                "namespace",
                "jobs",
                "-o",
                "name",
            ],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert kubectl.stdout.strip() == "namespace/jobs", kubectl.stderr

        http = operator_session(cloud)
        api = http.get(f"http://127.0.0.1:{env['API_PORT']}/batch/", timeout=30)
        assert api.json() == {
            "data": [],
            "error": "",
            "msg": "",
            "result": True,
            "next_page_token": "",
        }
        assert http.get(f"{cloud['API_URL']}/batch/", headers=NO_TOKEN).status_code == 401
        assert_answers_beside_slow_clients(http, f"http://127.0.0.1:{env['API_PORT']}")
        assert_callbacks_delivered(http, cloud, env)
        assert_failures_reach_their_function(http, state, env)
        sync_port = int(env["LOCAL_FUNCTIONS_PORT"])  # synchronize_batch_jobs comes first
        sync = requests.post(f"http://127.0.0.1:{sync_port}/", timeout=30)
        assert sync.json()["result"] is True

        second = subprocess.run(
            [sys.executable, "-m", "infra.local.stack"],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode == 1
        assert "already running" in second.stderr
        assert stack.poll() is None, "the second copy must not disturb the first"
    finally:
        stop_stack(stack, spawned)
    assert stack.returncode == 0
    assert not (state / "env").exists()
    assert spawned, "the stack runs its servers as child processes"
    wait_all_gone(spawned)


def assert_answers_beside_slow_clients(http: requests.Session, api: str, slow: int = 16) -> None:
    """Twice as many POSTs as batch_api once had threads, each sending its body slowly (it
    never ends): a GET is still answered."""
    port = int(api.rsplit(":", 1)[1])
    clients = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(slow)]
    try:
        for client in clients:
            client.sendall(
                b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 1000\r\n\r\n{"
            )
        answer = http.get(f"{api}/batch/", timeout=30)
        assert answer.status_code == 200, answer.text
    finally:
        for client in clients:
            client.close()


def assert_failures_reach_their_function(
    http: requests.Session, state: Path, env: dict[str, str]
) -> None:
    """A job whose container exits 3: the Job controller's event goes through the log sink's
    stand-in and its topic's relay to on_cluster_event, which names the job in its log
    (reconciling it, or finding the sync was first)."""
    body = {
        "job_parameters": {
            "docker_image": "alpine:3",
            "environment_variables": {"KUBESIM_RUN_SECONDS": "0", "KUBESIM_EXIT_CODE": "3"},
        },
    }
    api = f"http://127.0.0.1:{env['API_PORT']}/batch/"
    job = http.post(api, json=body, timeout=30).json()["data"]
    log = state / "logs" / "function-on_cluster_event.log"

    def told() -> bool:
        return log.exists() and job["name"] in log.read_text()

    wait_for(told, what="on_cluster_event to hear of the failed job")

    def failed() -> dict[str, Any] | None:
        data = http.get(f"{api}{job['id']}", timeout=30).json()["data"]
        return data if data["status"] == "failed" else None

    assert wait_for(failed, what="the job to fail")["exit_code"] == 3


def assert_callbacks_delivered(
    http: requests.Session, cloud: dict[str, str], env: dict[str, str]
) -> None:
    """A job killed on the stack is POSTed to its callback_url by deliver_callbacks: its
    write reaches publish_job_events through the Firestore trigger's stand-in, the message
    deliver_callbacks through the events topic and its Eventarc relay; signed with the run's
    CALLBACK_SECRET."""
    assert cloud["JOB_EVENTS_TOPIC"] and cloud["ALLOW_PRIVATE_CALLBACKS"] == "1"
    assert len(cloud["CALLBACK_SECRET"]) >= 32
    with capture_server() as receiver:
        body = {
            "callback_url": receiver.url,
            "job_parameters": {
                "docker_image": "alpine:3",
                "environment_variables": {"KUBESIM_SH": "sleep 600"},
            },
        }
        api = f"http://127.0.0.1:{env['API_PORT']}/batch/"
        created = http.post(api, json=body, timeout=30).json()
        assert created["result"] is True, created
        job_id = created["data"]["id"]
        killed = http.delete(f"{api}{job_id}", timeout=30).json()
        assert killed["result"] is True, killed
        receiver.wait_for(lambda requests: len(requests) >= 1)
        (delivered,) = receiver.requests
    assert json.loads(delivered.body)["status"] == "killed"
    digest = hmac.new(cloud["CALLBACK_SECRET"].encode(), delivered.body, hashlib.sha256)
    assert delivered.headers["x-task-runner-signature"] == f"sha256={digest.hexdigest()}"
    assert delivered.headers["x-task-runner-event-id"] == f"{job_id}:killed"

    def recorded() -> Any:
        return http.get(f"{api}{job_id}", timeout=30).json()["data"].get("callback_status")

    wait_for(recorded, what="callback_status to be recorded")


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stop_stack(stack: subprocess.Popen[str], spawned: set[int]) -> None:
    """SIGTERM, as make sends it (SIGKILL to its group past a minute); then every process
    it spawned must be gone within 15 s."""
    stack.send_signal(signal.SIGTERM)
    try:
        stack.wait(timeout=60)
    finally:
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
    wait_all_gone(spawned)


def wait_all_gone(pids: set[int]) -> None:
    wait_for(lambda: not any(alive(pid) for pid in pids), what=f"all of {sorted(pids)} to exit")


def relay_of(stack: int) -> int | None:
    """The pid of the finalize events' relay (not of its supervisor), if it runs."""
    return _server_of(stack, "-m infra.local.relay")


def apiserver_of(stack: int) -> int | None:
    """The pid of the Kubernetes API server (not of its supervisor), if it runs."""
    return _server_of(stack, "kube-apiserver --etcd-servers")


def _server_of(stack: int, marker: str) -> int | None:
    for pid in descendants(stack):
        line = command_line(pid)
        if marker in line and "procs.py" not in line:
            return pid
    return None


def start_stack(state: Path, env: dict[str, str], *wrapper: str) -> subprocess.Popen[str]:
    stack = subprocess.Popen(
        [sys.executable, *wrapper, "-m", "infra.local.stack"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 120
    while not (state / "env").exists():
        assert stack.poll() is None, stack.stdout.read() if stack.stdout else ""
        assert time.monotonic() < deadline, "the local cloud did not come up"
        time.sleep(0.2)
    return stack


def test_a_stop_is_bounded_whatever_the_servers_are_doing(tmp_path):
    """SIGTERM to the process group, twice as make sends it, with a second SIGTERM raised
    inside the handler of the first (tests/local/nested_signals.py), while: two pods run
    host processes that ignore SIGTERM in sessions of their own, the sync is stuck in a
    request to the API server (stopped: SIGSTOP), batch_api holds a half-sent request, and
    the relay is stopped (SIGSTOP). The command returns within 10 s and leaves nothing
    behind."""
    from kubernetes import client, config

    state = tmp_path / "state"
    env = isolated_env(state, JOB_SYNCHRONIZATION_INTERVAL="1")
    stack = start_stack(state, env, "-m", "tests.local.nested_signals")
    marker = f"stubborn-{uuid.uuid4().hex[:8]}"
    half_sent = socket.create_connection(("127.0.0.1", int(env["API_PORT"])))
    try:
        cloud = read_env_file(state / "env")
        api = client.CoreV1Api(config.new_client_from_config(cloud["KUBECONFIG"]))
        for index in range(2):
            script = f"trap '' TERM; echo {marker}; while :; do sleep 1; done"
            api.create_namespaced_pod(
                "default",
                client.V1Pod(
                    metadata=client.V1ObjectMeta(name=f"stubborn-{index}"),
                    spec=client.V1PodSpec(
                        restart_policy="Never",
                        containers=[
                            client.V1Container(
                                name="main",
                                image="alpine:3",
                                env=[client.V1EnvVar(name="KUBESIM_SH", value=script)],
                            )
                        ],
                    ),
                ),
            )

        def pods() -> list[int]:
            return [pid for pid in descendants(stack.pid) if marker in command_line(pid)]

        wait_for(lambda: len(pods()) >= 2, what="the pods' processes to start")

        # The API server stops answering: what calls it waits, on a connection it accepted.
        apiserver = wait_for(lambda: apiserver_of(stack.pid), what="the API server's process")
        os.kill(apiserver, signal.SIGSTOP)
        sync_url = f"http://127.0.0.1:{env['LOCAL_FUNCTIONS_PORT']}/"

        def call_sync() -> None:
            with contextlib.suppress(requests.RequestException):  # cut short by the stop
                requests.post(sync_url, timeout=120)

        threading.Thread(target=call_sync, daemon=True).start()
        half_sent.sendall(
            b"POST /batch/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 1000\r\n\r\n{"
        )
        relay = wait_for(lambda: relay_of(stack.pid), what="the relay among the stack's processes")
        os.kill(relay, signal.SIGSTOP)
        time.sleep(1)  # the sync is in flight
        spawned = descendants(stack.pid)
        assert len([pid for pid in spawned if marker in command_line(pid)]) >= 2

        started = time.monotonic()
        os.killpg(stack.pid, signal.SIGTERM)
        os.killpg(stack.pid, signal.SIGTERM)
        try:
            stack.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("the local cloud did not stop within 30 s of SIGTERM")
        elapsed = time.monotonic() - started
    finally:
        half_sent.close()
        if stack.poll() is None:
            os.killpg(stack.pid, signal.SIGKILL)
            stack.wait()
    output = stack.stdout.read() if stack.stdout else ""
    assert stack.returncode == 0, output
    # The banner says where the status page is.
    assert f"status page: http://127.0.0.1:{env['API_PORT']}/ui/" in output, output
    # Bounded by the grace periods, not by the minute the sync is held: on a machine as busy
    # as it may be, a few seconds more than STOP_SECONDS.
    assert elapsed < STOP_SECONDS + 10, f"stopped in {elapsed:.1f} s\n{output}"
    left = [f"{pid} {command_line(pid)}" for pid in spawned if alive(pid)]
    assert not left, left
    assert "did not exit within" in output, "some servers needed SIGKILL"
