"""The whole life cycle through the deployed entry points, against the local cloud."""

from __future__ import annotations

import io
import threading
import time
import zipfile

import pytest
import requests

from shared.model import TRANSITIONS, Status
from tests.api.conftest import status_is, zip_b64

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
    deadline = time.monotonic() + 10
    while True:
        jobs = batch_v1.list_namespaced_job(namespace).items
        claims = core_v1.list_namespaced_persistent_volume_claim(namespace).items
        if not jobs and not claims:
            return
        assert time.monotonic() < deadline, ([j.metadata.name for j in jobs], claims)
        time.sleep(0.05)


def test_life_cycle_end_to_end(fn, backends, batch_v1, core_v1, namespace, storage_client, bucket):
    files = {"data/in.txt": b"hello from the input", "top.csv": b"a,b\n1,2\n"}
    job = create(
        fn,
        input_zip=zip_b64(files),
        **env(KUBESIM_SH="cp -r /input/. /output/ && echo done > /output/result.txt"),
    )
    assert job["status"] == "running"
    assert "input_zip" not in job["job_parameters"]
    assert storage_client.bucket(bucket).get_blob(f"{job['name']}-input.zip") is not None

    cleaning = fn.sync_until(job["id"], status_is(Status.CLEANING, *map(Status, ["failed"])))
    assert cleaning["status"] == "cleaning", cleaning
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
    assert_path_allowed(done, backends)
    assert [t["to"] for t in backends.store.get(job["id"]).transitions] == [
        "running",
        "cleaning",
        "succeeded",
    ]
    assert_cluster_empty(batch_v1, core_v1, namespace)


def wait_cleanup_complete(batch_v1, namespace: str, name: str) -> None:
    deadline = time.monotonic() + 20
    while True:
        try:
            cleanup = batch_v1.read_namespaced_job(f"{name}-cleanup", namespace)
            conditions = cleanup.status.conditions or []
            if any(c.type == "Complete" and c.status == "True" for c in conditions):
                return
        except Exception:  # noqa: BLE001 - not created yet
            pass
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_finalize_event_succeeds_the_job_and_duplicates_do_nothing(
    fn, backends, batch_v1, namespace, storage_client, bucket
):
    job = create(fn, **env(KUBESIM_SH="echo hi > /output/x.txt"))
    fn.sync_until(job["id"], status_is(Status.CLEANING))
    wait_cleanup_complete(batch_v1, namespace, job["name"])
    blob = storage_client.bucket(bucket).get_blob(f"{job['name']}-output.zip")
    data = {
        "bucket": bucket,
        "name": blob.name,
        "generation": str(blob.generation),
        "metadata": blob.metadata,
    }
    assert fn.finalize(data, "e1") == 200
    assert fn.job(job["id"])["status"] == "succeeded"
    assert fn.finalize(data, "e1") == 200  # duplicate
    assert fn.finalize({**data, "name": "unrelated.txt"}, "e2") == 200
    record = backends.store.get(job["id"])
    assert [t["to"] for t in record.transitions] == ["running", "cleaning", "succeeded"]


@pytest.mark.parametrize(
    ("params", "reason", "exit_code"),
    [
        (env(KUBESIM_EXIT_CODE=3), "Error", 3),
        (env(KUBESIM_OOMKILLED=1), "OOMKilled", 137),
        ({**env(KUBESIM_RUN_SECONDS=600), "timeout_seconds": 1}, "DeadlineExceeded", None),
        ({**env(KUBESIM_EXIT_CODE=2), "retries": 1}, "BackoffLimitExceeded", 2),
    ],
    ids=["exit-code", "oom", "deadline", "retries"],
)
def test_failures_carry_their_reason(
    fn, backends, batch_v1, core_v1, namespace, params, reason, exit_code
):
    job = create(fn, **params)
    failed = fn.sync_until(job["id"], FINAL)
    assert failed["status"] == "failed"
    assert failed["reason"] == reason, failed
    assert failed.get("exit_code") == exit_code
    assert failed["stop_time"] >= failed["created"]
    assert_path_allowed(failed, backends)
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_image_that_cannot_be_pulled(fn, monkeypatch, backends, batch_v1, core_v1, namespace):
    monkeypatch.setenv("IMAGE_PULL_GRACE_SECONDS", "0")
    from shared.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    job = create(fn, **env(KUBESIM_IMAGE_PULL_ERROR=1))
    failed = fn.sync_until(job["id"], FINAL)
    assert failed["status"] == "failed"
    assert failed["reason"] in ("ErrImagePull", "ImagePullBackOff")
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_kill_while_running(fn, backends, batch_v1, core_v1, namespace):
    job = create(fn, **env(KUBESIM_RUN_SECONDS=600))
    fn.sync()
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200, body
    assert body["data"]["status"] == "killed"
    assert body["data"]["stop_time"] >= job["created"]
    assert body["msg"] == f"Instance {job['id']} was successfully deleted from the cluster."
    assert_cluster_empty(batch_v1, core_v1, namespace)
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


def test_kill_while_cleaning_removes_the_cleanup_job(fn, backends, batch_v1, core_v1, namespace):
    job = create(fn, **env(KUBESIM_RUN_SECONDS=0))
    fn.sync_until(job["id"], status_is(Status.CLEANING))
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200, body
    assert body["data"]["status"] == "killed"
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_failure_part_way_through_create_leaves_nothing(
    fn, backends, kubesim, batch_v1, core_v1, namespace, storage_client, bucket
):
    kubesim.inject_fault(
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
    deadline = time.monotonic() + 30
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
    from shared.model import Job, now_ms

    monkeypatch.setenv("CREATE_GRACE_SECONDS", "0")
    from shared.backends import default_backends
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

    from shared.backends import Backends
    from shared.reconciler import synchronize

    settings = dataclasses.replace(
        backends.settings, sync_passes=passes, sync_interval=10.0, sync_budget=budget
    )
    sized = Backends(settings)
    clock = FakeClock()
    report = synchronize(sized, clock=clock, sleep=clock.sleep)
    assert report.passes == ran
    # the first pass starts at once, each next one `interval` after the previous start
    assert clock.sleeps == [0.0] + [10.0] * (ran - 1)
