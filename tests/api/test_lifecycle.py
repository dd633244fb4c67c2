"""The whole life cycle through the deployed entry points, against the local cloud."""

from __future__ import annotations

import io
import threading
import time
import uuid
import zipfile

import pytest
import requests

from shared.model.job import TRANSITIONS, Status
from shared.model.manifests import JOB_ID
from tests.api.conftest import status_is, zip_b64
from tests.fixtures.waiting import DEADLINE, wait_for

FINAL = status_is(Status.SUCCEEDED, Status.FAILED, Status.KILLED)


def create(fn, **params) -> dict:
    body = {"account_id": "acct-1", "job_parameters": {"docker_image": "alpine:3", **params}}
    status, response = fn.api("POST", "/batch/", json=body)
    assert status == 200, response
    assert response["result"] is True
    return response["data"]


def env(**values) -> dict:
    return {"environment_variables": {key: str(value) for key, value in values.items()}}


def assert_path_allowed(job: dict, backends) -> None:
    record = backends.store.get(job["id"])
    steps = [(Status(t["from"]), Status(t["to"])) for t in record.transitions]
    assert steps[0][0] is Status.CREATED
    for before, after in steps:
        assert after in TRANSITIONS[before], steps
    for (_, after), (before, _) in zip(steps, steps[1:], strict=False):
        assert after is before


def assert_cluster_empty(batch_v1, core_v1, namespace: str) -> None:
    """No Job, no pod, and never a volume claim of the product's own."""
    deadline = time.monotonic() + DEADLINE  # deletions finish in the background
    while True:
        jobs = batch_v1.list_namespaced_job(namespace).items
        pods = core_v1.list_namespaced_pod(namespace).items
        claims = core_v1.list_namespaced_persistent_volume_claim(namespace).items
        assert not claims, [c.metadata.name for c in claims]
        if not jobs and not pods:
            return
        assert time.monotonic() < deadline, [o.metadata.name for o in [*jobs, *pods]]
        time.sleep(0.05)


def saved_log(storage_client, bucket: str, job: dict) -> str:
    blob = storage_client.bucket(bucket).get_blob(f"{job['name']}-logs.txt")
    assert blob is not None, "no log saved"
    assert blob.metadata["job-id"] == job["id"]
    return blob.download_as_bytes().decode()


def transitions(backends, job: dict) -> list[str]:
    return [t["to"] for t in backends.store.get(job["id"]).transitions]


def test_life_cycle_end_to_end(fn, backends, batch_v1, core_v1, namespace, storage_client, bucket):
    files = {"data/in.txt": b"hello from the input", "top.csv": b"a,b\n1,2\n"}
    job = create(
        fn,
        input_zip=zip_b64(files),
        **env(KUBESIM_SH="cp -r /input/. /output/ && echo done > /output/result.txt && echo hi"),
    )
    assert job["status"] == "running"
    assert "input_zip" not in job["job_parameters"]
    assert storage_client.bucket(bucket).get_blob(f"{job['name']}-input.zip") is not None
    (k8s_job,) = batch_v1.list_namespaced_job(namespace).items  # one Job, no claim
    assert not core_v1.list_namespaced_persistent_volume_claim(namespace).items

    done = fn.sync_until(job["id"], FINAL)
    assert done["status"] == "succeeded", done
    assert done["start_time"] >= done["created"]
    assert done["stop_time"] >= done["start_time"]

    output = requests.get(done["output_file_url"], timeout=10)
    assert output.status_code == 200
    with zipfile.ZipFile(io.BytesIO(output.content)) as archive:
        contents = {
            name: archive.read(name) for name in archive.namelist() if not name.endswith("/")
        }
    assert contents == {**files, "result.txt": b"done\n"}
    blob = storage_client.bucket(bucket).get_blob(f"{job['name']}-output.zip")
    assert (blob.content_type, blob.metadata) == ("application/zip", {"job-id": job["id"]})
    assert_path_allowed(done, backends)
    assert transitions(backends, job) == ["running", "cleaning", "succeeded"]
    assert saved_log(storage_client, bucket, job) == "hi\n"
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_cleaning_while_stage_out_uploads(fn, backends, batch_v1, namespace):
    """The sync sees the user's container done (exit 0) while stage-out still runs."""
    job = create(fn, **env(KUBESIM_SH="head -c 30000000 /dev/urandom > /output/big.bin"))
    cleaning = fn.sync_until(job["id"], status_is(Status.CLEANING, Status.SUCCEEDED))
    done = fn.sync_until(job["id"], FINAL)
    assert done["status"] == "succeeded", done
    if cleaning["status"] == "cleaning":
        assert transitions(backends, job) == ["running", "cleaning", "succeeded"]


def test_finalize_event_succeeds_a_running_job_and_duplicates_do_nothing(
    fn, backends, batch_v1, core_v1, namespace, storage_client, bucket
):
    """The output lands before any sync saw the job: the event records both steps."""
    job = create(fn, **env(KUBESIM_SH="echo hi > /output/x.txt && echo said hi"))
    blob = wait_for_output(storage_client, bucket, job["name"])
    assert fn.job(job["id"])["status"] == "running"
    data = {
        "bucket": bucket,
        "name": blob.name,
        "generation": str(blob.generation),
        "metadata": blob.metadata,
    }
    assert fn.finalize(data, "e1") == 200
    done = fn.job(job["id"])
    assert done["status"] == "succeeded"
    assert done["start_time"] >= done["created"]
    assert fn.finalize(data, "e1") == 200  # duplicate
    assert fn.finalize({**data, "name": "unrelated.txt"}, "e2") == 200
    assert transitions(backends, job) == ["running", "cleaning", "succeeded"]
    assert saved_log(storage_client, bucket, job) == "said hi\n"
    assert_cluster_empty(batch_v1, core_v1, namespace)


def wait_for_output(storage_client, bucket: str, name: str):
    blobs = storage_client.bucket(bucket)
    return wait_for(lambda: blobs.get_blob(f"{name}-output.zip"), what=f"{name}'s output")


@pytest.mark.parametrize(
    ("params", "reason", "exit_code", "log"),
    [
        (env(KUBESIM_SH="echo about to fail; exit 3"), "Error", 3, "about to fail\n"),
        (
            env(KUBESIM_OOMKILLED=1, KUBESIM_LOG="eating memory"),
            "OOMKilled",
            137,
            "eating memory\n",
        ),
        (
            {**env(KUBESIM_SH="echo slow; sleep 600"), "timeout_seconds": 1},
            "DeadlineExceeded",
            None,
            "slow\n",
        ),
        (
            {**env(KUBESIM_SH="echo try; exit 2"), "retries": 1},
            "BackoffLimitExceeded",
            2,
            "try\n",
        ),
    ],
    ids=["exit-code", "oom", "deadline", "retries"],
)
def test_failures_carry_their_reason_and_their_log(
    fn,
    backends,
    batch_v1,
    core_v1,
    namespace,
    storage_client,
    bucket,
    params,
    reason,
    exit_code,
    log,
):
    job = create(fn, **params)
    failed = fn.sync_until(job["id"], FINAL)
    assert failed["status"] == "failed"
    assert failed["reason"] == reason, failed
    assert failed.get("exit_code") == exit_code
    assert failed["stop_time"] >= failed["created"]
    assert_path_allowed(failed, backends)
    assert saved_log(storage_client, bucket, job) == log
    status, body = fn.api("GET", f"/batch/{job['id']}/logs")
    assert (status, body["data"]) == (200, {"log": log, "complete": True, "truncated": False})
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_jobs_run_time_is_its_containers_however_late_its_end_is_seen(fn, core_v1, namespace):
    """end_time is the user container's finishedAt: the seconds before a sync saw the
    failure are not the job's run."""
    job = create(fn, **env(KUBESIM_SH="sleep 1; exit 3"))

    def user_exited() -> bool:
        pods = core_v1.list_namespaced_pod(namespace, label_selector=f"{JOB_ID}={job['id']}")
        return any(
            status.name == "job" and status.state.terminated is not None
            for item in pods.items
            for status in item.status.init_container_statuses or []
        )

    wait_for(user_exited, what="the user's container to exit")
    time.sleep(3)
    failed = fn.sync_until(job["id"], FINAL)
    assert failed["status"] == "failed"
    ran = failed["end_time"] - failed["start_time"]
    assert 0 <= ran <= 2000  # `sleep 1`, in Kubernetes' whole seconds
    assert failed["stop_time"] - failed["start_time"] >= 3000


def test_a_misspelled_image_fails_at_once(
    fn, backends, batch_v1, core_v1, namespace, storage_client, bucket
):
    """An image that is not there: no pull can succeed, so the first sync that sees it fails
    the job, IMAGE_PULL_GRACE_SECONDS (120) notwithstanding."""
    job = create(fn, docker_image="pyhton:3.11", command=["python", "-c", "print(1)"])
    failed = fn.sync_until(job["id"], FINAL, timeout=30)
    assert failed["status"] == "failed"
    assert failed["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert "pyhton:3.11: not found" in failed["message"]
    assert "never ran" in saved_log(storage_client, bucket, job)
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_registry_that_does_not_answer_gets_the_grace(
    fn, monkeypatch, backends, batch_v1, core_v1, namespace
):
    """A pull that timed out may succeed later: the job waits out IMAGE_PULL_GRACE_SECONDS."""
    job = create(fn, **env(KUBESIM_IMAGE_PULL_ERROR="timeout"))

    def pull_failing() -> bool:
        selector = f"{JOB_ID}={job['id']}"
        pods = core_v1.list_namespaced_pod(namespace, label_selector=selector)
        return any(
            (status.state.waiting and status.state.waiting.reason == "ImagePullBackOff")
            for item in pods.items
            for status in (item.status.init_container_statuses or [])
            + (item.status.container_statuses or [])
        )

    wait_for(pull_failing, what="the pull to fail")
    fn.sync()
    assert fn.job(job["id"])["status"] == "running"
    monkeypatch.setenv("IMAGE_PULL_GRACE_SECONDS", "0")
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    failed = fn.sync_until(job["id"], FINAL)
    assert (failed["status"], failed["reason"]) == ("failed", "ImagePullBackOff")
    assert "i/o timeout" in failed["message"]
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_failed_upload_never_reruns_the_users_container(
    fn, monkeypatch, backends, batch_v1, core_v1, namespace, storage_client, bucket, tmp_path
):
    """Stage-out fails for good (its upload session has expired: 410): the Job fails at
    once, `retries` notwithstanding, and the user's code ran exactly once."""
    import os

    from tests.fixtures.storage_proxy import expired_sessions
    from tests.robustness.helpers import reconfigure

    runs = tmp_path / "runs"  # a host path: the node agent runs KUBESIM_SH on this machine
    with expired_sessions(os.environ["STORAGE_EMULATOR_HOST"]) as storage:
        reconfigure(monkeypatch, STORAGE_EMULATOR_HOST=storage)
        job = create(
            fn,
            retries=2,
            docker_image="example.com/sim/worker",
            **env(KUBESIM_SH=f"echo ran >> {runs}; echo ran; echo out > /output/o"),
        )
        failed = fn.sync_until(job["id"], FINAL)
    assert failed["status"] == "failed", failed
    assert failed["reason"] == "CleanupFailed", failed
    assert failed["message"].startswith("Uploading the output failed: stager: "), failed
    assert "410" in failed["message"], failed
    assert runs.read_text() == "ran\n"
    assert saved_log(storage_client, bucket, job) == "ran\n"
    assert storage_client.bucket(bucket).get_blob(f"{job['name']}-output.zip") is None
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_disruption_costs_no_retry(fn, backends, batch_v1, core_v1, namespace, tmp_path):
    """A pod evicted (kubectl drain, a Spot preemption) while the user's container runs is
    replaced without using a retry, and the job counts the disruption.

    The user's code waits for a host file the test creates, ignoring SIGTERM, and the
    eviction grants a long grace period: the evicted pod stays until the sync has seen it.
    """
    from kubernetes import client

    runs, go = tmp_path / "runs", tmp_path / "go"
    script = (
        f"trap '' TERM; echo run >> {runs}; "
        f"while [ ! -e {go} ]; do sleep 0.05; done; echo out > /output/o"
    )
    job = create(fn, retries=0, docker_image="example.com/sim/worker", **env(KUBESIM_SH=script))
    pod = wait_user_running(core_v1, namespace, job["id"])
    eviction = client.V1Eviction(
        metadata=client.V1ObjectMeta(name=pod, namespace=namespace),
        delete_options=client.V1DeleteOptions(grace_period_seconds=600),
    )
    core_v1.create_namespaced_pod_eviction(pod, namespace, eviction)
    counted = fn.sync_until(job["id"], lambda j: j.get("disruptions") == 1)
    assert counted["status"] == "running"
    go.touch()
    done = fn.sync_until(job["id"], FINAL)
    assert done["status"] == "succeeded", done
    assert done["disruptions"] == 1
    assert runs.read_text() == "run\nrun\n"
    assert_cluster_empty(batch_v1, core_v1, namespace)


def wait_user_running(core_v1, namespace: str, job_id: str) -> str:
    def running() -> str | None:
        for pod in core_v1.list_namespaced_pod(namespace).items:
            for status in pod.status.init_container_statuses or []:
                if status.name == "job" and status.state.running is not None:
                    return str(pod.metadata.name)
        return None

    return wait_for(running, what="the user's container to run")


def test_the_log_route_while_running_and_after_the_end(
    fn, batch_v1, core_v1, namespace, storage_client, bucket
):
    job = create(fn, **env(KUBESIM_SH="for i in 1 2 3; do echo line $i; done; sleep 600"))
    status, body = fn.api("GET", f"/batch/{job['id']}/logs")
    assert status == 200 and body["data"]["complete"] is False, body
    wait_user_running(core_v1, namespace, job["id"])
    wait_for(lambda: "line 3" in fn.api("GET", f"/batch/{job['id']}/logs")[1]["data"]["log"])
    status, body = fn.api("GET", f"/batch/{job['id']}/logs?tail=1")
    assert (status, body["data"]) == (
        200,
        {"log": "line 3\n", "complete": False, "truncated": False},
    )
    assert fn.api("DELETE", f"/batch/{job['id']}")[0] == 200
    expected = {"log": "line 1\nline 2\nline 3\n", "complete": True, "truncated": False}
    assert fn.api("GET", f"/batch/{job['id']}/logs")[1]["data"] == expected
    assert fn.api("GET", f"/batch/{job['id']}/logs?tail=2")[1]["data"]["log"] == "line 2\nline 3\n"
    single = fn.clients["get_job"].get(f"/{job['id']}/logs")
    assert single.get_json()["data"] == expected
    assert_cluster_empty(batch_v1, core_v1, namespace)


@pytest.mark.parametrize("tail", ["0", "-1", "x", "1.5", "100001", "\u0661"])
def test_a_bad_tail_is_refused(fn_store, tail):
    code, body = fn_store.api("GET", f"/batch/{uuid.uuid4()}/logs", query_string={"tail": tail})
    assert (code, body["error"], list(body["data"])) == (400, "InvalidParameters", ["tail"])


def test_a_long_log_keeps_its_end(
    fn, monkeypatch, batch_v1, core_v1, namespace, storage_client, bucket
):
    monkeypatch.setenv("MAX_LOG_BYTES", "2048")
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    job = create(fn, **env(KUBESIM_SH="seq 1 5000; exit 1"))
    fn.sync_until(job["id"], FINAL)
    status, body = fn.api("GET", f"/batch/{job['id']}/logs")
    data = body["data"]
    assert (data["complete"], data["truncated"]) == (True, True)
    first, *rest = data["log"].splitlines()
    assert first.startswith("[log cut: only its last ")
    assert rest[-1] == "5000" and rest[0].isdigit()
    assert [int(n) for n in rest] == list(range(int(rest[0]), 5001))
    assert len(data["log"].encode()) <= 2048 + len(first) + 1


def test_kill_while_running(fn, backends, batch_v1, core_v1, namespace, storage_client, bucket):
    job = create(fn, **env(KUBESIM_SH="echo working; sleep 600"))
    wait_user_running(core_v1, namespace, job["id"])
    # Running is reported as the command starts: the kill waits until it has said its line.
    wait_for(lambda: "working" in fn.api("GET", f"/batch/{job['id']}/logs")[1]["data"]["log"])
    fn.sync()
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200, body
    assert body["data"]["status"] == "killed"
    assert body["data"]["stop_time"] >= job["created"]
    assert body["msg"] == f"Instance {job['id']} was successfully deleted from the cluster."
    assert_cluster_empty(batch_v1, core_v1, namespace)
    assert saved_log(storage_client, bucket, job) == "working\n"
    fn.sync()
    assert fn.job(job["id"])["status"] == "killed"
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 400
    assert body == {
        "data": "",
        "error": "InvalidParameters",
        "msg": f"Can't stop batch job {job['id']}. Status is: killed.",
        "result": False,
    }


def test_kill_while_cleaning(fn, backends, batch_v1, core_v1, namespace):
    job = create(fn, **env(KUBESIM_SH="head -c 50000000 /dev/urandom > /output/big.bin"))
    fn.sync_until(job["id"], status_is(Status.CLEANING, Status.SUCCEEDED))
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status in (200, 400), body
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_failure_part_way_through_create_leaves_nothing(
    fn, backends, cluster_faults, batch_v1, core_v1, namespace, storage_client, bucket
):
    cluster_faults.inject_fault(
        verb="create", path=f"/apis/batch/v1/namespaces/{namespace}/jobs", status=500, count=1
    )
    status, body = fn.api(
        "POST",
        "/batch/",
        json={
            "name": "doomed",
            "job_parameters": {"docker_image": "alpine", "input_zip": zip_b64({"a": b"1"})},
        },
    )
    assert status == 500
    assert body["error"] == "ClusterError"
    assert "cluster_response" in body["data"]
    (failed,) = backends.store.find(Status.FAILED)
    assert failed.name == "doomed"
    assert failed.reason == "ClusterError"
    assert_cluster_empty(batch_v1, core_v1, namespace)
    assert list(storage_client.list_blobs(bucket)) == []


def test_overlapping_syncs_agree(fn, backends):
    jobs = [create(fn, **env(KUBESIM_RUN_SECONDS=0)) for _ in range(4)]
    deadline = time.monotonic() + DEADLINE
    while not all(FINAL(fn.job(job["id"])) for job in jobs):
        threads = [threading.Thread(target=fn.sync) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert time.monotonic() < deadline
    for job in jobs:
        assert fn.job(job["id"])["status"] == "succeeded"
        assert_path_allowed(job, backends)


def test_a_job_left_in_created_is_finished_by_the_sync(fn, backends, monkeypatch):
    from shared.model.job import Job, now_ms

    monkeypatch.setenv("CREATE_GRACE_SECONDS", "0")
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    store = default_backends().store
    orphan = Job(
        id="8d5b0f8e-3a0c-4b8e-9d4f-6f1f0b3c2a11",
        name="crashed",
        status=Status.CREATED,
        created=now_ms(),
        job_parameters={"docker_image": "alpine"},
    )
    store.create(orphan)
    fn.sync()
    job = fn.job(orphan.id)
    assert job["status"] == "failed"
    assert job["reason"] == "CreateInterrupted"


class FakeClock:
    """Time that moves only when the sync sleeps, or when a pass takes `pass_seconds`."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.mark.parametrize(
    ("passes", "budget", "ran"),
    [(1, 50, 1), (3, 50, 3), (6, 50, 6), (6, 45, 5), (6, 15, 2)],
)
def test_a_call_runs_its_passes_interval_apart_within_its_budget(fn, backends, passes, budget, ran):
    import dataclasses

    from shared.cloud.backends import Backends
    from shared.jobs.reconciler import synchronize

    settings = dataclasses.replace(
        backends.settings, sync_passes=passes, sync_interval=10.0, sync_budget=budget
    )
    sized = Backends(settings)
    clock = FakeClock()
    report = synchronize(sized, clock=clock, sleep=clock.sleep)
    assert report.passes == ran
    # the first pass starts at once, each next one `interval` after the previous start
    assert clock.sleeps == [0.0] + [10.0] * (ran - 1)
