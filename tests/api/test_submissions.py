"""Submission by upload: `submissions/<account_id>/<name>.zip` in the jobs bucket creates job
`<name>` of that account
from its root job.json, the rest of the zip being the job's input. Its finalize event is
delivered to the function as Eventarc delivers it; the outcome is written beside it, as
`<name>.job.json` or `<name>.error.json`.

Jobs of the `python` and `alpine` images run their real command in the node agent's sandbox, so
data really flows from /input to /output.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from shared.model.job import Status
from tests.api.conftest import status_is
from tests.api.test_arrays import unzip
from tests.api.test_run_options import COPY, output_files, zip_bytes
from tests.fixtures.storage_proxy import failing_uploads
from tests.fixtures.zips import directory_bomb
from tests.robustness.helpers import reconfigure

FINAL = status_is(Status.SUCCEEDED, Status.FAILED, Status.KILLED)
LIST = "import os; open('/output/listing.txt', 'w').write(' '.join(sorted(os.listdir('/input'))))"


ACCOUNT = "acct-submit"  # the folder the tests' submissions go in


@pytest.fixture(autouse=True)
def account(fn) -> None:
    """The account whose folder the submissions are uploaded to (IAM, deployed, lets only
    its submitters write there), with its queues in the test's namespace."""
    status, answer = fn.api("POST", "/accounts/", json={"account_id": ACCOUNT})
    assert status == 200, answer


def body(**params: Any) -> dict[str, Any]:
    return {
        "account_id": ACCOUNT,
        "job_parameters": {"docker_image": "python:3.11", **params},
    }


def upload(storage_client, bucket: str, name: str, data: bytes) -> dict[str, Any]:
    """Put the object, and the finalize event's data as Eventarc gives it."""
    blob = storage_client.bucket(bucket).blob(f"submissions/{ACCOUNT}/{name}.zip")
    blob.upload_from_string(data, content_type="application/zip")
    return {
        "bucket": bucket,
        "name": blob.name,
        "generation": str(blob.generation),
        "size": str(blob.size),
    }


def submission(job: dict[str, Any] | bytes, **files: bytes) -> bytes:
    raw = job if isinstance(job, bytes) else json.dumps(job).encode()
    return zip_bytes({"job.json": raw, **files})


def outcome(storage_client, bucket: str, name: str, kind: str) -> Any:
    """The outcome object `kind` (job or error) as JSON, or None."""
    blob = storage_client.bucket(bucket).get_blob(f"submissions/{ACCOUNT}/{name}.{kind}.json")
    return None if blob is None else json.loads(blob.download_as_bytes())


def jobs_of(fn, account_id: str = "acct-submit") -> list[dict[str, Any]]:
    found = []
    for status in Status:
        code, answer = fn.api("GET", f"/batch/?status={status.value}&account_id={account_id}")
        assert code == 200, answer
        found += answer["data"]
    return found


# -- accepted ---------------------------------------------------------------------------------


def test_a_submission_runs_and_its_output_lands(fn, storage_client, bucket):
    data = submission(
        body(args=["python3", "-c", COPY], timeout_seconds=600),
        **{"a.txt": b"alpha", "d/b.txt": b"beta"},
    )
    event = upload(storage_client, bucket, "sub-copy", data)
    assert fn.finalize(event) == 200
    accepted = outcome(storage_client, bucket, "sub-copy", "job")
    assert accepted is not None and outcome(storage_client, bucket, "sub-copy", "error") is None
    assert accepted["result"] is True and accepted["status"] == 200 and accepted["error"] == ""
    assert accepted["submission"] == f"submissions/{ACCOUNT}/sub-copy.zip"
    assert accepted["generation"] == event["generation"]
    job = accepted["data"]
    assert accepted["job_id"] == job["id"] and job["name"] == "sub-copy"
    assert job["status"] == "running" and job["account_id"] == "acct-submit"
    assert job["job_parameters"]["timeout_seconds"] == 600
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    # job.json is the create's body, not the job's input.
    assert output_files(done) == {"a.txt": b"alpha", "d/b.txt": b"beta"}
    assert storage_client.bucket(bucket).get_blob("sub-copy-output.zip") is not None


def test_the_outcome_objects_events_are_ignored(fn, storage_client, bucket):
    event = upload(storage_client, bucket, "sub-quiet", submission(body(args=["true"])))
    assert fn.finalize(event) == 200
    before = outcome(storage_client, bucket, "sub-quiet", "job")
    for kind in ("job", "error"):
        name = f"submissions/{ACCOUNT}/sub-quiet.{kind}.json"
        assert fn.finalize({"bucket": bucket, "name": name}, event_id=kind) == 200
    assert outcome(storage_client, bucket, "sub-quiet", "job") == before
    assert outcome(storage_client, bucket, "sub-quiet", "error") is None
    assert len(jobs_of(fn)) == 1


def test_a_submission_of_job_json_alone_is_a_job_without_input(fn, storage_client, bucket):
    script = "import os; open('/output/o.txt','w').write(str(os.path.exists('/input')))"
    event = upload(
        storage_client, bucket, "sub-bare", submission(body(args=["python3", "-c", script]))
    )
    assert fn.finalize(event) == 200
    job = outcome(storage_client, bucket, "sub-bare", "job")["data"]
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert output_files(done) == {"o.txt": b"False"}


def test_a_scheduled_submission(fn, storage_client, bucket):
    at = "2099-01-01T00:00:00Z"
    event = upload(storage_client, bucket, "sub-later", submission(body(start_after=at)))
    status = fn.finalize(event)
    assert status == 200
    refused = outcome(storage_client, bucket, "sub-later", "error")
    assert refused["data"] == {"job_parameters": {"start_after": "Must be at most 30 days ahead"}}
    soon = int(time.time() * 1000) + 3_600_000
    event = upload(storage_client, bucket, "sub-later", submission(body(start_after=soon)))
    assert fn.finalize(event, event_id="2") == 200
    accepted = outcome(storage_client, bucket, "sub-later", "job")
    assert accepted["data"]["status"] == "created" and "scheduled to start" in accepted["msg"]
    # The accepted upload clears the earlier refusal of the name.
    assert outcome(storage_client, bucket, "sub-later", "error") is None


# -- refused ----------------------------------------------------------------------------------

REFUSALS: dict[str, tuple[str, bytes, int, str, Any]] = {
    # case: (name, zip, status, error, data or a part of msg)
    "no job.json": (
        "sub-none",
        zip_bytes({"a.txt": b"a", "dir/job.json": b"{}"}),
        400,
        "InvalidParameters",
        "has no job.json at its root",
    ),
    "malformed JSON": (
        "sub-bad",
        submission(b"{not json"),
        400,
        "InvalidParameters",
        "Malformed JSON in job.json",
    ),
    "a lone surrogate": (
        "sub-surrogate",
        submission(b'{"job_parameters": {"docker_image": "alpine", "args": ["\\ud800"]}}'),
        400,
        "InvalidParameters",
        "lone UTF-16 surrogate",
    ),
    "not an object": (
        "sub-list",
        submission(b"[1, 2]"),
        400,
        "InvalidParameters",
        "must be a JSON object",
    ),
    "an invalid body": (
        "sub-invalid",
        submission({"job_parameters": {"retries": 99}, "colour": "red"}),
        400,
        "InvalidParameters",
        {
            "colour": "Unknown field",
            "job_parameters": {
                "docker_image": "Field is required",
                "retries": "Must be a whole number from 0 to 10",
            },
        },
    ),
    "an input source": (
        "sub-source",
        submission(body(input_url="gs://b/x.zip")),
        400,
        "InvalidParameters",
        {
            "job_parameters": {
                "input_url": "Not in a submission: the rest of its zip is the job's input"
            }
        },
    ),
    "another name": (
        "sub-named",
        submission({**body(), "name": "other"}),
        400,
        "InvalidParameters",
        {"name": "Must be 'sub-named', the submission's own name, or left out"},
    ),
    "an invalid name": (
        "Sub_Bad",
        submission(body()),
        400,
        "InvalidParameters",
        {
            "name": "Must consist of lower case alphanumeric characters or '-', and start and "
            "end with an alphanumeric character (the name in "
            "submissions/<account_id>/<name>.zip)"
        },
    ),
    "not a zip": ("sub-text", b"just some text", 400, "InvalidParameters", "not a valid zip"),
    "an unsafe zip": (
        "sub-unsafe",
        submission(body(), **{"../evil": b"x"}),
        400,
        "InvalidParameters",
        "'..' component",
    ),
    "job.json twice": (
        "sub-twice",
        submission(body(), **{"./job.json": json.dumps(body(spot=True)).encode()}),
        400,
        "InvalidParameters",
        "entry './job.json' appears twice",
    ),
    "a path too long": (
        "sub-long",
        submission(body(), **{"/".join(["d" * 250] * 16): b"x"}),
        400,
        "InvalidParameters",
        "has a path longer than 3840 bytes",
    ),
    "a directory of too many entries": (
        "sub-bomb",
        directory_bomb(300_000, declared=5),
        400,
        "InvalidParameters",
        "central directory is",
    ),
}


@pytest.mark.parametrize("case", sorted(REFUSALS))
def test_a_refused_submission_writes_the_error_object(fn, storage_client, bucket, case):
    name, data, status, error, expected = REFUSALS[case]
    event = upload(storage_client, bucket, name, data)
    assert fn.finalize(event) == 200  # permanent: never delivered again
    refused = outcome(storage_client, bucket, name, "error")
    assert refused is not None, case
    assert (refused["status"], refused["error"], refused["result"]) == (status, error, False)
    assert refused["submission"] == f"submissions/{ACCOUNT}/{name}.zip"
    if isinstance(expected, str):
        assert expected in refused["msg"], refused
    else:
        assert refused["data"] == expected
    assert outcome(storage_client, bucket, name, "job") is None
    assert jobs_of(fn) == []


def test_a_submission_larger_than_the_limit(fn, monkeypatch, storage_client, bucket):
    reconfigure(monkeypatch, MAX_INPUT_URL_BYTES="1024")
    data = submission(body(), **{"big.bin": bytes(range(256)) * 8})
    assert len(data) > 1024
    assert fn.finalize(upload(storage_client, bucket, "sub-big", data)) == 200
    refused = outcome(storage_client, bucket, "sub-big", "error")
    assert (refused["status"], refused["error"]) == (413, "PayloadTooLarge")
    assert "more than MAX_INPUT_URL_BYTES (1024)" in refused["msg"]


def test_a_job_json_too_large(fn, storage_client, bucket):
    job = body(environment_variables={"PAD": "x" * (1024 * 1024)})
    assert fn.finalize(upload(storage_client, bucket, "sub-fat", submission(job))) == 200
    refused = outcome(storage_client, bucket, "sub-fat", "error")
    assert (refused["status"], refused["msg"]) == (413, "job.json is larger than 1048576 bytes")


def test_a_name_taken_by_another_job(fn, storage_client, bucket):
    code, created = fn.api("POST", "/batch/", json={**body(args=["true"]), "name": "sub-taken"})
    assert code == 200, created
    event = upload(storage_client, bucket, "sub-taken", submission(body()))
    assert fn.finalize(event) == 200
    refused = outcome(storage_client, bucket, "sub-taken", "error")
    assert refused["data"] == {"name": "A job with this name already exists"}
    assert refused["status"] == 400 and outcome(storage_client, bucket, "sub-taken", "job") is None
    assert [job["id"] for job in jobs_of(fn)] == [created["data"]["id"]]


# -- redelivered ------------------------------------------------------------------------------


def test_a_redelivered_event_creates_nothing_twice(fn, storage_client, bucket, batch_v1, namespace):
    event = upload(
        storage_client, bucket, "sub-again", submission(body(args=["python3", "-c", LIST]), x=b"x")
    )
    assert fn.finalize(event, event_id="1") == 200
    first = outcome(storage_client, bucket, "sub-again", "job")
    assert fn.finalize(event, event_id="1") == 200  # the same event, delivered again
    assert fn.finalize(event, event_id="2") == 200  # or another event of the same object
    again = outcome(storage_client, bucket, "sub-again", "job")
    assert again["job_id"] == first["job_id"] and again["generation"] == first["generation"]
    assert [job["id"] for job in jobs_of(fn)] == [first["job_id"]]
    assert len(batch_v1.list_namespaced_job(namespace).items) == 1
    done = fn.sync_until(first["job_id"], FINAL, timeout=60)
    assert output_files(done) == {"listing.txt": b"x"}


def test_another_upload_under_a_taken_name_is_refused(fn, storage_client, bucket):
    first = upload(storage_client, bucket, "sub-twice", submission(body(args=["true"])))
    assert fn.finalize(first) == 200
    accepted = outcome(storage_client, bucket, "sub-twice", "job")
    second = upload(storage_client, bucket, "sub-twice", submission(body(args=["false"])))
    assert second["generation"] != first["generation"]
    assert fn.finalize(second, event_id="2") == 200
    refused = outcome(storage_client, bucket, "sub-twice", "error")
    assert refused["data"] == {"name": "A job with this name already exists"}
    assert refused["generation"] == second["generation"]
    # A late redelivery of the first upload's event: that generation is gone, nothing changes.
    assert fn.finalize(first, event_id="1") == 200
    assert outcome(storage_client, bucket, "sub-twice", "job") == accepted
    assert [job["id"] for job in jobs_of(fn)] == [accepted["job_id"]]


def test_a_transient_failure_is_delivered_again(
    fn, storage_client, bucket, cluster_faults, namespace
):
    """The cluster fails for a moment: the function fails (Eventarc delivers again), the
    job waits `created`, and the next delivery starts it."""
    data = submission(body(args=["python3", "-c", COPY]), r=b"r")
    event = upload(storage_client, bucket, "sub-retry", data)
    cluster_faults.inject_fault(verb="create", path=jobs_path(namespace), status=503, count=1)
    assert fn.finalize(event) == 500
    assert outcome(storage_client, bucket, "sub-retry", "job") is None
    assert outcome(storage_client, bucket, "sub-retry", "error") is None
    (waiting,) = jobs_of(fn)
    assert waiting["status"] == "created"
    assert fn.finalize(event, event_id="2") == 200
    accepted = outcome(storage_client, bucket, "sub-retry", "job")
    assert accepted["job_id"] == waiting["id"] and accepted["data"]["status"] == "running"
    done = fn.sync_until(waiting["id"], FINAL, timeout=60)
    assert output_files(done) == {"r": b"r"}


def test_the_sync_starts_a_submission_whose_start_was_cut_short(
    fn, monkeypatch, storage_client, bucket, cluster_faults, namespace
):
    data = submission(body(args=["python3", "-c", COPY]), s=b"s")
    event = upload(storage_client, bucket, "sub-synced", data)
    cluster_faults.inject_fault(verb="create", path=jobs_path(namespace), status=503, count=1)
    assert fn.finalize(event) == 500
    (waiting,) = jobs_of(fn)
    reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    done = fn.sync_until(waiting["id"], FINAL, timeout=60)
    assert output_files(done) == {"s": b"s"}
    # The event, delivered at last, finds the job and writes its object.
    assert fn.finalize(event, event_id="2") == 200
    accepted = outcome(storage_client, bucket, "sub-synced", "job")
    assert accepted["job_id"] == waiting["id"] and accepted["data"]["status"] == "succeeded"


def cut_short_sweep(fn, monkeypatch, storage_client, bucket, name: str) -> tuple[dict, dict]:
    """A 2-task submission whose first delivery fails to write <name>-tasks.json (Cloud
    Storage answers 503): (its event, the job it left waiting `created`)."""
    sweep = 'echo "$TASK_INDEX: $X" > /output/who.txt'
    job = {
        "account_id": "acct-submit",
        "job_parameters": {
            "docker_image": "alpine:3",
            "command": ["/bin/sh", "-c", sweep],
            "task_environments": [{"X": "a"}, {"X": "b"}],
        },
    }
    event = upload(storage_client, bucket, name, submission(job))
    emulator = os.environ["STORAGE_EMULATOR_HOST"]
    with failing_uploads(emulator, f"{name}-tasks.json".encode()) as storage:
        reconfigure(monkeypatch, STORAGE_EMULATOR_HOST=storage)
        assert fn.finalize(event) == 500
    reconfigure(monkeypatch, STORAGE_EMULATOR_HOST=emulator)
    (waiting,) = jobs_of(fn)
    assert waiting["status"] == "created"
    assert storage_client.bucket(bucket).get_blob(f"{name}-tasks.json") is None
    assert outcome(storage_client, bucket, name, "job") is None
    return event, waiting


@pytest.mark.parametrize("finisher", ["redelivery", "sync"])
def test_task_environments_are_written_by_the_next_start(
    fn, monkeypatch, storage_client, bucket, finisher
):
    """The next start, by the event delivered again or by the sync, reads them again from
    the submission and writes them before it deploys."""
    event, waiting = cut_short_sweep(fn, monkeypatch, storage_client, bucket, f"envs-{finisher}")
    if finisher == "redelivery":
        assert fn.finalize(event, event_id="2") == 200
    else:
        reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    done = fn.sync_until(waiting["id"], FINAL, timeout=120)
    assert done["status"] == "succeeded", done
    outputs = [unzip(url) for url in done["task_output_urls"]]
    assert outputs == [{"who.txt": b"0: a\n"}, {"who.txt": b"1: b\n"}]


def test_a_submission_gone_before_its_task_environments_were_written(
    fn, monkeypatch, storage_client, bucket
):
    """Nothing is left to read them from: the next start fails the job."""
    event, waiting = cut_short_sweep(fn, monkeypatch, storage_client, bucket, "envs-gone")
    storage_client.bucket(bucket).blob(f"submissions/{ACCOUNT}/envs-gone.zip").delete()
    reconfigure(monkeypatch, CREATE_GRACE_SECONDS="0")
    failed = fn.sync_until(waiting["id"], FINAL, timeout=60)
    assert failed["status"] == "failed" and failed["reason"] == "SubmissionGone", failed
    assert failed["message"] == (
        f"submissions/{ACCOUNT}/envs-gone.zip was deleted or replaced before the job could start"
    )


def test_a_job_the_cluster_refuses_is_failed(fn, storage_client, bucket, cluster_faults, namespace):
    """A refusal no retry can change: the job exists, failed with the cluster's reason."""
    event = upload(storage_client, bucket, "sub-403", submission(body()))
    cluster_faults.inject_fault(verb="create", path=jobs_path(namespace), status=403, count=1)
    assert fn.finalize(event) == 200
    accepted = outcome(storage_client, bucket, "sub-403", "job")
    assert accepted["data"]["status"] == "failed" and accepted["data"]["reason"] == "ClusterError"
    assert accepted["msg"] == "The cluster refused job sub-403"
    assert fn.finalize(event, event_id="2") == 200
    assert outcome(storage_client, bucket, "sub-403", "job")["job_id"] == accepted["job_id"]
    assert len(jobs_of(fn)) == 1


def jobs_path(namespace: str) -> str:
    return f"/apis/batch/v1/namespaces/{namespace}/jobs"


# -- whose submission ----------------------------------------------------------------------


def _refusal(storage_client, bucket: str, stem: str) -> Any:
    blob = storage_client.bucket(bucket).get_blob(f"{stem}.error.json")
    return None if blob is None else json.loads(blob.download_as_bytes())


def _put(storage_client, bucket: str, object_name: str, data: bytes) -> dict[str, Any]:
    blob = storage_client.bucket(bucket).blob(object_name)
    blob.upload_from_string(data, content_type="application/zip")
    return {"bucket": bucket, "name": blob.name, "generation": str(blob.generation)}


def test_a_submission_is_of_the_account_its_folder_names(fn, storage_client, bucket):
    plain = {"job_parameters": {"docker_image": "alpine:3", "args": ["true"]}}
    event = _put(storage_client, bucket, f"submissions/{ACCOUNT}/sub-mine.zip", submission(plain))
    assert fn.finalize(event) == 200
    accepted = outcome(storage_client, bucket, "sub-mine", "job")
    assert accepted is not None and accepted["data"]["account_id"] == ACCOUNT, accepted


@pytest.mark.parametrize(
    ("object_name", "field"),
    [
        ("submissions/sub-nofolder.zip", None),  # outside any account's folder
        ("submissions/no-such-team/sub-stray.zip", "account_id"),
        ("submissions/Not An Account/sub-odd.zip", "account_id"),
    ],
)
def test_a_submission_outside_an_accounts_folder_is_refused(
    fn, storage_client, bucket, object_name, field
):
    event = _put(storage_client, bucket, object_name, submission(body(args=["true"])))
    assert fn.finalize(event) == 200
    refused = _refusal(storage_client, bucket, object_name.removesuffix(".zip"))
    assert refused is not None and refused["status"] == 400, refused
    if field:
        assert field in refused["data"], refused
    else:
        assert "submissions/<account_id>/<name>.zip" in refused["msg"], refused
    assert jobs_of(fn) == []


def test_job_json_cannot_name_another_account(fn, storage_client, bucket):
    status, answer = fn.api("POST", "/accounts/", json={"account_id": "other-team"})
    assert status == 200, answer
    event = upload(
        storage_client, bucket, "sub-elsewhere", submission({**body(), "account_id": "other-team"})
    )
    assert fn.finalize(event) == 200
    refused = outcome(storage_client, bucket, "sub-elsewhere", "error")
    assert refused is not None and "account_id" in refused["data"], refused
    assert jobs_of(fn, "other-team") == [] and jobs_of(fn) == []
