"""`request_id` on create: a repeat within 24 h answers the first job and makes nothing, a
different body is a 409, and concurrent creates with one request id make one job."""

from __future__ import annotations

import datetime
import json
import threading
import uuid
from typing import Any

import pytest

from shared.cloud.store import EXPIRES_AT
from shared.model.job import Status
from tests.api.test_lifecycle import env


def body(request_id: str, name: str | None = None, **params: Any) -> dict[str, Any]:
    created: dict[str, Any] = {
        "request_id": request_id,
        "account_id": "acct-1",
        "job_parameters": {"docker_image": "alpine:3", **env(KUBESIM_RUN_SECONDS=600), **params},
    }
    if name:
        created["name"] = name
    return created


def cluster_jobs(batch_v1, namespace: str) -> list[str]:
    return [job.metadata.name for job in batch_v1.list_namespaced_job(namespace).items]


def all_jobs(backends) -> list[Any]:
    return [job for status in Status for job in backends.store.find(status)]


def test_a_repeat_answers_the_first_job_and_makes_nothing(fn, backends, batch_v1, namespace):
    request_id = str(uuid.uuid4())
    status, first = fn.api("POST", "/batch/", json=body(request_id))
    assert status == 200, first
    job = first["data"]
    assert (job["status"], first["msg"]) == ("running", "")

    # The same request, its keys in another order and its id in capitals: the same job.
    again = dict(reversed(list(body(request_id.upper()).items())))
    status, repeat = fn.api("POST", "/batch/", json=again)
    assert status == 200, repeat
    assert repeat["data"] == fn.job(job["id"])
    assert repeat["msg"] == f"Repeat of request {request_id}: job {job['id']}"
    assert cluster_jobs(batch_v1, namespace) == [job["name"]]
    assert [j.id for j in all_jobs(backends)] == [job["id"]]

    # Whatever its status now.
    assert fn.api("DELETE", f"/batch/{job['id']}")[0] == 200
    status, later = fn.api("POST", "/batch/", json=body(request_id))
    assert (status, later["data"]["id"], later["data"]["status"]) == (200, job["id"], "killed")
    assert [j.id for j in all_jobs(backends)] == [job["id"]]


def test_the_same_request_id_with_another_body_is_a_conflict(fn, backends):
    request_id = str(uuid.uuid4())
    status, first = fn.api("POST", "/batch/", json=body(request_id))
    assert status == 200, first
    status, other = fn.api("POST", "/batch/", json=body(request_id, retries=2))
    assert (status, other["error"], other["result"]) == (409, "Conflict", False), other
    assert set(other["data"]) == {"request_id"}
    assert request_id in other["msg"]
    assert [j.id for j in all_jobs(backends)] == [first["data"]["id"]]


def test_a_name_in_use_is_still_a_400_with_a_new_request_id(fn, backends):
    status, first = fn.api("POST", "/batch/", json=body(str(uuid.uuid4()), "named"))
    assert status == 200, first
    status, taken = fn.api("POST", "/batch/", json=body(str(uuid.uuid4()), "named"))
    assert (status, taken["data"]) == (400, {"name": "A job with this name already exists"})
    # The refused create left no request key: its id makes a job once the name is free.
    assert len(all_jobs(backends)) == 1


@pytest.mark.parametrize(
    "request_id", ["not-a-uuid", 42, "", "{0f2b8c1e-4a8e-4c5e-9a57-1c2d3e4f5a6b}", "0" * 32]
)
def test_a_request_id_must_be_a_uuid(fn_store, request_id):
    status, refused = fn_store.api("POST", "/batch/", json=body(request_id))
    assert (status, refused["error"]) == (400, "InvalidParameters")
    assert set(refused["data"]) == {"request_id"}


@pytest.mark.parametrize("named", [False, True])
def test_concurrent_creates_with_one_request_id_make_one_job(
    fn, backends, batch_v1, namespace, named
):
    """Many threads at once, each with its own client: every answer names the one job."""
    request_id = str(uuid.uuid4())
    app = fn.clients["batch_api"].application
    racers = 12
    start = threading.Barrier(racers)
    answers: list[tuple[int, dict[str, Any]]] = []

    def create() -> None:
        client = app.test_client()
        client.environ_base.update(fn.clients["batch_api"].environ_base)  # the operator
        start.wait()
        response = client.post("/batch/", json=body(request_id, "racer" if named else None))
        answers.append((response.status_code, json.loads(response.data)))

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in answers] == [200] * racers, answers
    ids = {answer["data"]["id"] for _, answer in answers}
    assert len(ids) == 1, answers
    (job_id,) = ids
    assert [j.id for j in all_jobs(backends)] == [job_id]
    assert len(cluster_jobs(batch_v1, namespace)) == 1
    assert sum(1 for _, answer in answers if answer["msg"].startswith("Repeat")) == racers - 1


def _expire(firestore_client, backends, request_id: str) -> None:
    """The key as Firestore keeps it until its TTL deletion comes (up to a day late)."""
    past = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    backends.store.requests.document(request_id).update({EXPIRES_AT: past})


def test_an_expired_request_id_is_taken_over_by_one_create(fn, backends, firestore_client):
    request_id = str(uuid.uuid4())
    status, first = fn.api("POST", "/batch/", json=body(request_id))
    assert status == 200, first
    _expire(firestore_client, backends, request_id)

    app = fn.clients["batch_api"].application
    racers = 8
    start = threading.Barrier(racers)
    answers: list[tuple[int, dict[str, Any]]] = []

    def create() -> None:
        client = app.test_client()
        client.environ_base.update(fn.clients["batch_api"].environ_base)  # the operator
        start.wait()
        response = client.post("/batch/", json=body(request_id, retries=1))
        answers.append((response.status_code, json.loads(response.data)))

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # A different body, yet no conflict: the old key counts as gone. One new job.
    assert [status for status, _ in answers] == [200] * racers, answers
    ids = {answer["data"]["id"] for _, answer in answers}
    assert len(ids) == 1 and first["data"]["id"] not in ids
    key = backends.store.requests.document(request_id).get().to_dict()
    assert key["job_id"] in ids
    assert key[EXPIRES_AT] > datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=23)
    assert len(all_jobs(backends)) == 2


def test_the_key_holds_the_job_and_expires_in_24_hours(fn, backends):
    request_id = str(uuid.uuid4())
    status, first = fn.api("POST", "/batch/", json=body(request_id))
    assert status == 200, first
    key = backends.store.requests.document(request_id).get().to_dict()
    assert key["job_id"] == first["data"]["id"]
    assert len(key["fingerprint"]) == 64
    created = datetime.datetime.fromtimestamp(first["data"]["created"] / 1000, datetime.UTC)
    assert key[EXPIRES_AT] == created + datetime.timedelta(hours=24)


def test_a_repeat_of_an_upload_create_answers_its_job(fn, backends):
    request_id = str(uuid.uuid4())
    request = body(request_id, input_upload=True)
    status, first = fn.api("POST", "/batch/", json=request)
    assert status == 200, first
    status, repeat = fn.api("POST", "/batch/", json=request)
    assert (status, repeat["data"]["id"]) == (200, first["data"]["id"])
    assert repeat["msg"].startswith("Repeat of request")
    assert len(all_jobs(backends)) == 1
