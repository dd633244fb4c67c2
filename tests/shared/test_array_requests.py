"""Array jobs' fields on create, and the one Indexed Job an array job is."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from shared.errors import InvalidParameters
from shared.jobs import arrays
from shared.model import manifests
from shared.model.job import Job, Status, now_ms
from shared.model.validation import MAX_TASKS, validate_create
from tests.shared.test_manifests import containers, settings

IMAGE = "python:3.11"
PLAN = json.dumps({"kind": "session", "url": "http://127.0.0.1:1/upload", "object": "a-{index}"})


def params(**extra: Any) -> dict[str, Any]:
    return {"job_parameters": {"docker_image": IMAGE, "command": ["python3", "-V"], **extra}}


def errors_of(body: dict[str, Any]) -> Any:
    with pytest.raises(InvalidParameters) as caught:
        validate_create(body)
    return caught.value.data["job_parameters"]


def test_task_count_alone_fills_in_the_defaults():
    request = validate_create(params(task_count=250))
    assert request.job_parameters["task_count"] == 250
    assert request.job_parameters["parallelism"] == 100
    assert request.job_parameters["max_failed_tasks"] == 0
    assert request.task_environments is None
    small = validate_create(params(task_count=3.0, parallelism=2, max_failed_tasks=1))
    assert small.job_parameters["task_count"] == 3
    assert small.job_parameters["parallelism"] == 2


def test_parallelism_is_capped_by_the_installation():
    """MAX_PARALLELISM: the most pods one job may run at once. Above it, a 400 naming it;
    the default parallelism never exceeds it."""
    refused = errors_of(params(task_count=10_000, parallelism=10_000))
    assert refused["parallelism"] == (
        "Must be at most MAX_PARALLELISM (100): the most tasks one job may run at once here"
    )
    with pytest.raises(InvalidParameters) as caught:
        validate_create(params(task_count=50, parallelism=21), max_parallelism=20)
    assert "MAX_PARALLELISM (20)" in caught.value.data["job_parameters"]["parallelism"]
    capped = validate_create(params(task_count=10_000), max_parallelism=20)
    assert capped.job_parameters["parallelism"] == 20
    assert (
        validate_create(params(task_count=10_000, parallelism=100)).job_parameters["parallelism"]
        == 100
    )


def test_task_environments_give_the_count_and_stay_out_of_the_record():
    request = validate_create(params(task_environments=[{"X": "1"}, {"X": 2}, {}]))
    assert request.job_parameters["task_count"] == 3
    assert "task_environments" not in request.job_parameters
    assert request.task_environments == [{"X": "1"}, {"X": "2"}, {}]


def test_a_plain_job_is_what_it_was():
    request = validate_create(params())
    assert not {"task_count", "parallelism", "max_failed_tasks"} & set(request.job_parameters)


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        ({"task_count": 0}, "task_count", "from 1 to 10000"),
        ({"task_count": MAX_TASKS + 1}, "task_count", "from 1 to 10000"),
        ({"task_count": "3"}, "task_count", "whole number"),
        ({"task_count": True}, "task_count", "whole number"),
        ({"task_count": 3, "parallelism": 4}, "parallelism", "at most task_count (3)"),
        ({"task_count": 3, "parallelism": 0}, "parallelism", "from 1 to 10000"),
        ({"task_count": 3, "max_failed_tasks": 4}, "max_failed_tasks", "at most task_count (3)"),
        ({"task_count": 3, "max_failed_tasks": -1}, "max_failed_tasks", "from 0 to 10000"),
        ({"parallelism": 2}, "parallelism", "give task_count"),
        ({"max_failed_tasks": 1}, "max_failed_tasks", "give task_count"),
        ({"task_environments": []}, "task_environments", "non-empty list"),
        ({"task_environments": {"X": "1"}}, "task_environments", "non-empty list"),
        ({"task_environments": [{"X": "1"}], "task_count": 2}, "task_environments", "one object"),
    ],
)
def test_bad_array_fields_are_named(extra, field, says):
    errors = errors_of(params(**extra))
    assert says in json.dumps(errors[field])


def test_each_task_environment_is_checked_like_the_job_environment():
    errors = errors_of(params(task_environments=[{"OK": "1"}, {"bad name": "x"}, {"A": None}]))
    assert set(errors["task_environments"]) == {"1", "2"}
    shell = errors_of(params(task_environments=[{"a.b": "1"}]))
    assert "shell variable name" in json.dumps(shell)


def test_task_environments_need_a_command():
    body = {"job_parameters": {"docker_image": IMAGE, "task_environments": [{"X": "1"}]}}
    assert "Needs a command" in errors_of(body)["task_environments"]


def test_task_environments_are_bounded_in_total():
    big = [{"V": "x" * 30_000} for _ in range(150)]
    assert "at most" in errors_of(params(task_environments=big))["task_environments"]


def array_job(**extra: Any) -> Job:
    request = validate_create(params(**extra))
    return Job(
        id=str(uuid.uuid4()),
        name="sweep-1",
        status=Status.CREATED,
        created=now_ms(),
        job_parameters=request.job_parameters,
        task_environments=request.task_environments is not None,
    )


def test_an_array_job_is_one_indexed_job():
    job = array_job(task_count=5, parallelism=2, retries=1, max_failed_tasks=1)
    spec = manifests.batch_job(job, settings(), upload_url=PLAN)["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (5, 2)
    assert (spec["backoffLimitPerIndex"], spec["maxFailedIndexes"]) == (1, 1)
    assert "backoffLimit" not in spec
    # 3 waves of 2 tasks, each with 2 tries, at the default timeout, within the week.
    assert spec["activeDeadlineSeconds"] == min(86400 * 6, 7 * 24 * 3600 - 3600) + 60
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[-1]["action"] == "FailIndex"
    assert rules[-1]["onExitCodes"]["containerName"] == manifests.STAGE_OUT
    by_name = {c["name"]: c for c in containers({"spec": spec})}
    for name in (manifests.USER_CONTAINER, manifests.STAGE_OUT):
        env = {e["name"]: e for e in by_name[name]["env"]}
        assert env["TASK_INDEX"]["valueFrom"]["fieldRef"]["fieldPath"] == (
            "metadata.annotations['batch.kubernetes.io/job-completion-index']"
        )
        assert env["TASK_COUNT"]["value"] == "5"
    out_env = {e["name"]: e.get("value") for e in by_name[manifests.STAGE_OUT]["env"]}
    assert out_env["OUTPUT_UPLOAD_PLAN"] == PLAN
    assert "OUTPUT_UPLOAD_URL" not in out_env
    assert {"name": "spool", "mountPath": "/spool"} in by_name[manifests.STAGE_OUT]["volumeMounts"]
    assert out_env["TMPDIR"] == "/spool"
    assert manifests.TASK_ENV not in by_name
    user = by_name[manifests.USER_CONTAINER]
    assert user["command"] == ["python3", "-V"]


def test_task_environments_come_through_an_init_container_and_a_shell():
    job = array_job(task_environments=[{"X": "1"}, {"X": "2"}], args=["--flag"])
    manifest = manifests.batch_job(job, settings(), upload_url=PLAN, tasks_url="https://t/x")
    pod = manifest["spec"]["template"]["spec"]
    names = [c["name"] for c in pod["initContainers"]]
    assert names == [manifests.TASK_ENV, manifests.USER_CONTAINER]
    task_env = pod["initContainers"][0]
    assert {"name": "TASKS_URL", "value": "https://t/x"} in task_env["env"]
    user = pod["initContainers"][1]
    assert user["command"] == ["/bin/sh", "-c", manifests.TASK_ENV_SCRIPT, "task"]
    assert user["args"] == ["python3", "-V", "--flag"]
    assert {"name": "task", "mountPath": manifests.TASK_ENV_DIR, "readOnly": True} in user[
        "volumeMounts"
    ]
    with pytest.raises(ValueError, match="no URL"):
        manifests.batch_job(job, settings(), upload_url=PLAN)


@pytest.mark.parametrize(
    ("text", "indexes"),
    [("", set()), (None, set()), ("3", {3}), ("0,2-4,7", {0, 2, 3, 4, 7}), ("1-1", {1})],
)
def test_the_job_status_interval_lists_are_read(text, indexes):
    assert arrays.parse_indexes(text) == indexes


def test_task_counts_come_from_the_job_status():
    job = array_job(task_count=6)
    status = {"completedIndexes": "0-2", "failedIndexes": "5", "active": 1}
    assert arrays.counts(job, {"status": status}) == {
        "count": 6,
        "succeeded": 3,
        "failed": 1,
        "running": 1,
        "pending": 1,
    }
    job.tasks = arrays.counts(job, {"status": status})
    assert arrays.progress(job, {"status": status}, []) == {
        "failed_tasks": [
            {"index": 5, "reason": "Error", "message": "The task failed", "exit_code": None}
        ]
    }
    job.failed_tasks = [{"index": 5, "reason": "Error", "message": "", "exit_code": None}]
    assert arrays.progress(job, {"status": status}, []) == {}
