"""Array jobs end to end: one Indexed Job on the local cloud, a pod per task, each task's
own output, log and environment, per-task retries, tolerated failures and kill."""

from __future__ import annotations

import io
import zipfile
from functools import partial
from typing import Any

import pytest
import requests

from infra.local.stack import LOCAL_MAX_PARALLELISM
from shared.jobs import arrays
from shared.model.job import Status
from tests.api.conftest import status_is
from tests.api.test_lifecycle import assert_cluster_empty, assert_path_allowed, transitions
from tests.fixtures.controlplane import HOST_IMAGE
from tests.fixtures.waiting import wait_for
from tests.robustness.helpers import reconfigure

FINAL = status_is(Status.SUCCEEDED, Status.FAILED, Status.KILLED)
REPORT = 'echo "$TASK_INDEX of $TASK_COUNT: $X" > /output/who.txt; echo "log of $TASK_INDEX"'


def create(fn, **params: Any) -> dict[str, Any]:
    body = {"job_parameters": {"docker_image": "alpine:3", **params}}
    status, response = fn.api("POST", "/batch/", json=body)
    assert status == 200, response
    return response["data"]


def unzip(url: str) -> dict[str, bytes]:
    answer = requests.get(url, timeout=10)
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answer.content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def saved(storage_client, bucket: str, name: str) -> str | None:
    blob = storage_client.bucket(bucket).get_blob(name)
    return None if blob is None else blob.download_as_bytes().decode()


def test_a_sweep_of_five_tasks(fn, backends, batch_v1, core_v1, namespace, storage_client, bucket):
    environments = [{"X": f"value {index} with 'quotes'"} for index in range(5)]
    job = create(
        fn,
        command=["/bin/sh", "-c", REPORT],
        task_environments=environments,
        parallelism=2,
    )
    assert job["job_parameters"]["task_count"] == 5
    assert job["job_parameters"]["parallelism"] == 2
    assert "task_environments" not in job["job_parameters"]
    assert job["tasks"] == {"count": 5, "succeeded": 0, "failed": 0, "running": 0, "pending": 5}
    (k8s_job,) = batch_v1.list_namespaced_job(namespace).items  # one Job for five tasks
    assert (k8s_job.spec.completion_mode, k8s_job.spec.completions) == ("Indexed", 5)

    done = fn.sync_until(job["id"], FINAL, timeout=120)
    logs = [saved(storage_client, bucket, f"{job['name']}-logs-{index}.txt") for index in range(5)]
    assert done["status"] == "succeeded", (done.get("failed_tasks"), logs)
    assert done["tasks"] == {"count": 5, "succeeded": 5, "failed": 0, "running": 0, "pending": 0}
    # From the first task's start to the last task's end, as Kubernetes recorded them.
    assert done["start_time"] <= done["end_time"] <= done["stop_time"]
    urls = done["task_output_urls"]
    assert len(urls) == 5 and done["output_file_url"] == urls[0]
    for index, url in enumerate(urls):
        expected = f"{index} of 5: value {index} with 'quotes'\n".encode()
        assert unzip(url) == {"who.txt": expected}
    for index in range(5):
        assert saved(storage_client, bucket, f"{job['name']}-logs-{index}.txt") == (
            f"log of {index}\n"
        )
    redirect = fn.clients["batch_api"].get(f"/batch/{job['id']}/outputs/2")
    assert redirect.status_code == 302
    assert unzip(redirect.headers["Location"]) == {"who.txt": b"2 of 5: value 2 with 'quotes'\n"}
    status, body = fn.api("GET", f"/batch/{job['id']}/outputs/5")
    assert status == 400 and "from 0 to 4" in body["data"]["index"]
    status, body = fn.api("GET", f"/batch/{job['id']}/logs?task=3")
    assert status == 200 and body["data"]["log"] == "log of 3\n"
    status, body = fn.api("GET", f"/batch/{job['id']}/logs")
    assert status == 200 and body["data"]["log"] == "log of 0\n"  # the first task's
    assert_path_allowed(done, backends)
    assert transitions(backends, job)[-1] == "succeeded"
    assert_cluster_empty(batch_v1, core_v1, namespace)


def flaky(tmp_path, *, fail_for_good: int | None = None, fail_once: int | None = None) -> str:
    """A host script (the node agent's HOST_IMAGE): task `fail_once` fails on its first try only
    (a marker in tmp_path), task `fail_for_good` always; the others write their index."""
    return (
        f'if [ "$TASK_INDEX" = "{fail_once}" ] && [ ! -e {tmp_path}/tried ]; then '
        f"touch {tmp_path}/tried; echo first try fails; exit 3; fi; "
        f'if [ "$TASK_INDEX" = "{fail_for_good}" ]; then echo never works; exit 4; fi; '
        'echo "$TASK_INDEX" > /output/index.txt'
    )


def run_flaky(fn, tmp_path, *, fail_once=None, fail_for_good=None, **params: Any) -> tuple:
    """Create a 3-task job of the `flaky` script and sync it to its end: (job, done)."""
    script = flaky(tmp_path, fail_once=fail_once, fail_for_good=fail_for_good)
    job = create(
        fn,
        docker_image=HOST_IMAGE,
        task_count=3,
        environment_variables={"KUBESIM_SH": script},
        **params,
    )
    return job, fn.sync_until(job["id"], FINAL, timeout=120)


def test_a_task_that_fails_once_succeeds_on_its_retry(fn, backends, tmp_path):
    _, done = run_flaky(fn, tmp_path, fail_once=1, retries=1)
    assert done["status"] == "succeeded", done
    assert (tmp_path / "tried").exists()
    assert [unzip(url) for url in done["task_output_urls"]] == [
        {"index.txt": f"{index}\n".encode()} for index in range(3)
    ]
    assert "failed_tasks" not in done


def test_a_task_that_fails_for_good_fails_the_job(
    fn, backends, batch_v1, core_v1, namespace, tmp_path
):
    _, done = run_flaky(fn, tmp_path, fail_for_good=1)
    assert done["status"] == "failed", done
    assert done["reason"] == "TasksFailed"
    assert "1 of 3 tasks failed (tasks 1)" in done["message"]
    assert done["failed_tasks"][0]["index"] == 1
    assert done["failed_tasks"][0]["exit_code"] == 4
    assert done["tasks"]["failed"] == 1
    assert_cluster_empty(batch_v1, core_v1, namespace)


def test_a_tolerated_failure_still_succeeds(fn, backends, storage_client, bucket, tmp_path):
    job, done = run_flaky(fn, tmp_path, fail_for_good=1, max_failed_tasks=1)
    assert done["status"] == "succeeded", done
    assert done["tasks"]["succeeded"] == 2 and done["tasks"]["failed"] == 1
    urls = done["task_output_urls"]
    assert urls[1] is None and unzip(urls[2]) == {"index.txt": b"2\n"}
    assert [entry["index"] for entry in done["failed_tasks"]] == [1]
    assert saved(storage_client, bucket, f"{job['name']}-logs-1.txt") == "never works\n"


def test_kill_in_the_middle(fn, backends, batch_v1, core_v1, namespace, storage_client, bucket):
    job = create(
        fn,
        docker_image=HOST_IMAGE,
        task_count=4,
        parallelism=2,
        environment_variables={"KUBESIM_SH": 'echo "started $TASK_INDEX"; sleep 60'},
    )
    # `running` counts a task's pod from its creation (the Job's `active`): the kill waits
    # until both tasks' commands have really started, as their logs show.
    fn.sync_until(job["id"], lambda j: j["tasks"]["running"] == 2, timeout=120)
    for task in (0, 1):
        wait_for(partial(started, fn, job["id"], task), what=f"task {task} to start")
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200, body
    killed = fn.job(job["id"])
    assert killed["status"] == "killed"
    assert_cluster_empty(batch_v1, core_v1, namespace)
    logs = [saved(storage_client, bucket, f"{job['name']}-logs-{i}.txt") for i in range(4)]
    assert sorted(log for log in logs if log and log.startswith("started")) == [
        "started 0\n",
        "started 1\n",
    ]


def started(fn, job_id: str, task: int) -> bool:
    """The task's command has logged its first line."""
    status, answer = fn.api("GET", f"/batch/{job_id}/logs?task={task}")
    assert status == 200, answer
    return str(answer["data"]["log"]).startswith("started")


def test_duplicate_finalize_events_count_once(
    fn, backends, batch_v1, core_v1, namespace, storage_client, bucket, monkeypatch
):
    """Each output counts once however often its event comes: the job succeeds on the
    event that finds the last one, and only then. The tasks sleep; the test lands their
    outputs itself, as their stage-outs would (with the job-id metadata). The record lists
    no task_output_urls here (as past 1,000 tasks): the outputs route serves each."""
    monkeypatch.setattr(arrays, "MAX_LISTED_OUTPUTS", 2)
    job = create(
        fn,
        docker_image=HOST_IMAGE,
        task_count=3,
        environment_variables={"KUBESIM_SH": "sleep 60"},
    )
    blobs = storage_client.bucket(bucket)

    def land(index: int, owner: str = job["id"]) -> dict[str, Any]:
        blob = blobs.blob(f"{job['name']}-output-{index}.zip")
        blob.metadata = {"job-id": owner}
        blob.upload_from_string(b"PK\x05\x06" + bytes(18), content_type="application/zip")
        return {"bucket": bucket, "name": blob.name, "metadata": blob.metadata}

    assert fn.api("GET", f"/batch/{job['id']}/outputs/0")[0] == 404  # not landed yet
    first = land(0)
    for _ in range(3):  # redelivered
        assert fn.finalize(first, "event-0") == 200
    assert fn.job(job["id"])["status"] == "running"
    assert fn.finalize(land(1, owner="someone-else"), "stranger") == 200
    assert fn.job(job["id"])["status"] == "running"
    assert fn.finalize(land(2), "event-2") == 200
    assert fn.job(job["id"])["status"] == "running"  # task 1's output is not the job's
    last = land(1)
    assert fn.finalize(last, "event-1") == 200
    assert fn.finalize(last, "event-1") == 200
    done = fn.job(job["id"])
    assert done["status"] == "succeeded"
    assert "task_output_urls" not in done and done["output_file_url"]
    for index in range(3):
        redirect = fn.clients["batch_api"].get(f"/batch/{job['id']}/outputs/{index}")
        assert redirect.status_code == 302, redirect.data
        assert requests.get(redirect.headers["Location"], timeout=10).status_code == 200
    assert transitions(backends, job) == ["running", "cleaning", "succeeded"]
    assert_cluster_empty(batch_v1, core_v1, namespace)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"task_count": 0}, "task_count"),
        ({"task_count": 2, "parallelism": 3}, "parallelism"),
        ({"task_count": 2, "max_failed_tasks": 3}, "max_failed_tasks"),
        ({"task_environments": [{"X": "1"}]}, "task_environments"),  # no command
        ({"parallelism": 1}, "parallelism"),
    ],
)
def test_bad_array_fields_are_400s_naming_the_field(fn_store, params, field):
    body = {"job_parameters": {"docker_image": "alpine:3", **params}}
    status, response = fn_store.api("POST", "/batch/", json=body)
    assert status == 400
    assert field in response["data"]["job_parameters"]


def test_logs_of_a_task_that_is_not_there(fn, backends):
    job = create(fn, task_count=2, command=["true"])
    status, body = fn.api("GET", f"/batch/{job['id']}/logs?task=2")
    assert status == 400 and "from 0 to 1" in body["data"]["task"]
    plain = create(fn, command=["true"])
    status, body = fn.api("GET", f"/batch/{plain['id']}/logs?task=0")
    assert status == 400 and "Only for array jobs" in body["data"]["task"]
    status, body = fn.api("GET", f"/batch/{plain['id']}/outputs/0")
    assert status == 400 and "Only for array jobs" in body["data"]["index"]


def test_the_largest_job_allowed_leaves_the_local_cloud_answering(
    fn, monkeypatch, batch_v1, core_v1, namespace
):
    """10,000 tasks at the local cloud's MAX_PARALLELISM, each a sandboxed sleep: the
    health check answers 200 while they run, and the kill takes them all down. A job
    asking for more at once is refused, naming the limit."""
    reconfigure(monkeypatch, MAX_PARALLELISM=str(LOCAL_MAX_PARALLELISM))
    params = {"command": ["sleep", "600"], "task_count": 10_000}
    status, refused = fn.api(
        "POST",
        "/batch/",
        json={"job_parameters": {"docker_image": "alpine:3", **params, "parallelism": 21}},
    )
    assert status == 400
    assert refused["data"]["job_parameters"]["parallelism"].startswith(
        f"Must be at most MAX_PARALLELISM ({LOCAL_MAX_PARALLELISM})"
    )
    job = create(fn, **params)
    assert job["job_parameters"]["parallelism"] == LOCAL_MAX_PARALLELISM
    fn.sync_until(job["id"], lambda j: j["tasks"]["running"] == LOCAL_MAX_PARALLELISM)
    running = core_v1.list_namespaced_pod(namespace).items
    assert len(running) == LOCAL_MAX_PARALLELISM
    status, health = fn.api("GET", "/healthcheck")
    assert (status, health["result"]) == (200, True), health
    status, body = fn.api("DELETE", f"/batch/{job['id']}")
    assert (status, body["data"]["status"]) == (200, "killed"), body
    assert_cluster_empty(batch_v1, core_v1, namespace)
