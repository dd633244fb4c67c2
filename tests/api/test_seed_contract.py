"""The earlier system's own client, request for request: the bodies its test suite sent
(tests/base.py, tests/test_views.py of the earlier Flask service) and the answers its views,
model and serializer gave (views.py, models.py), against the deployed entry points."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.api.test_functions import call
from tests.api.test_lifecycle import env

MS_DIGITS = 13  # the creation time in ms, as every derived name ends


@pytest.fixture(autouse=True, params=["on, as an operator", "off, without a token"])
def access(request, store_env, functions_app, monkeypatch) -> Iterator[None]:
    """Every test twice: with access control on, called as an operator; and with it off,
    called without a token as the earlier clients call, where the API must answer exactly
    as the earlier one did."""
    if request.param.startswith("on"):
        yield
        return
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    if "fn" in request.fixturenames:
        request.getfixturevalue("app_env")  # set first: it would set access control again
    monkeypatch.setenv("ACCESS_CONTROL", "off")
    get_settings.cache_clear()
    default_backends.cache_clear()
    assert not get_settings().access.enabled
    saved = {
        name: c.environ_base.pop("HTTP_AUTHORIZATION") for name, c in functions_app.clients.items()
    }
    try:
        yield
    finally:
        for name, token in saved.items():
            functions_app.clients[name].environ_base["HTTP_AUTHORIZATION"] = token


def earlier_create_body(**job_parameters) -> dict:
    """tests/base.py's `create_batch_job(save=False)`: a null status, an image named by a
    UUID."""
    return {"status": None, "job_parameters": {"docker_image": str(uuid.uuid4()), **job_parameters}}


def test_the_earlier_test_clients_create_body_is_accepted(fn):
    body = earlier_create_body(**env(KUBESIM_RUN_SECONDS=600))
    status, answer = fn.api("POST", "/batch/", json=body)
    assert status == 200, answer
    job = answer["data"]
    assert job["status"] == "running"
    image = body["job_parameters"]["docker_image"]
    assert job["name"] == f"{image}-{job['created']}"
    assert fn.api("GET", f"/batch/{job['id']}")[1]["data"]["name"] == job["name"]


@pytest.mark.parametrize(
    ("image", "slug"),
    [
        ("gcr.io/my-proj/my-image:v1", "gcr-io-my-proj-my-image-v1"),
        ("python:3.11", "python-3-11"),
        ("python", "python"),
    ],
)
def test_a_name_is_derived_from_the_whole_image_and_the_time(fn, image, slug):
    status, answer = fn.api(
        "POST", "/batch/", json={"status": None, "job_parameters": {"docker_image": image}}
    )
    assert status == 200, answer
    assert answer["data"]["name"] == f"{slug}-{answer['data']['created']}"
    assert len(str(answer["data"]["created"])) == MS_DIGITS


def test_a_derived_name_too_long_cuts_the_image_not_the_time(fn):
    image = "registry.example.com/" + "/".join(["deeply-nested-project"] * 4) + ":v1"
    status, answer = fn.api("POST", "/batch/", json={"job_parameters": {"docker_image": image}})
    assert status == 200, answer
    name = answer["data"]["name"]
    assert len(name) == 55
    assert name.startswith("registry-example-com-deeply-nested-proj")
    assert name.endswith(f"-{answer['data']['created']}")


@pytest.mark.parametrize("status", ["running", "succeeded", "", False])
def test_every_other_status_is_still_read_only(fn_store, status):
    body = {"status": status, "job_parameters": {"docker_image": "alpine"}}
    code, answer = fn_store.api("POST", "/batch/", json=body)
    assert (code, answer["error"], answer["data"]) == (
        400,
        "InvalidParameters",
        {"status": "Read-only field"},
    )


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("job_id", [uuid.uuid4().hex, str(uuid.uuid4()), "not-a-uuid"])
def test_an_unknown_job_does_not_exist(fn_store, method, job_id):
    """test_get_single_batch_job_404 asks for `uuid4().hex`, and asserts `DoesNotExist`."""
    assert fn_store.api(method, f"/batch/{job_id}") == (
        404,
        {
            "data": "",
            "error": "DoesNotExist",
            "msg": f"Batch job {job_id} not found.",
            "result": False,
        },
    )


def test_the_single_purpose_functions_answer_an_unknown_job_alike(fn_store):
    job_id = str(uuid.uuid4())
    expected = fn_store.api("GET", f"/batch/{job_id}")
    assert call(fn_store, "get_job", "GET", f"/{job_id}") == expected
    assert call(fn_store, "get_job", "GET", f"/?id={job_id}") == expected
    assert call(fn_store, "kill_job", "DELETE", f"/{job_id}") == expected
    assert call(fn_store, "kill_job", "POST", f"/?id={job_id}") == expected


def test_unknown_routes_stay_not_found(fn_store):
    for path in ("/batches/", f"/batch/{uuid.uuid4()}/kill"):
        code, answer = fn_store.api("GET", path)
        assert (code, answer["error"]) == (404, "NotFound")


def test_any_spelling_of_a_jobs_uuid_finds_it(fn):
    """The earlier model's id was a mongoengine UUIDField, read with `uuid.UUID`."""
    status, answer = fn.api(
        "POST", "/batch/", json=earlier_create_body(**env(KUBESIM_RUN_SECONDS=600))
    )
    assert status == 200, answer
    job_id = answer["data"]["id"]
    plain = uuid.UUID(job_id)
    for spelling in (plain.hex, job_id.upper(), f"{{{job_id}}}", plain.urn):
        code, found = fn.api("GET", f"/batch/{spelling}")
        assert (code, found["data"]["id"]) == (200, job_id), spelling
    code, killed = fn.api("DELETE", f"/batch/{plain.hex}")
    assert (code, killed["data"]["id"], killed["data"]["status"]) == (200, job_id, "killed")


def test_the_list_holds_running_jobs_only_by_default(fn):
    """test_get_batch_jobs_happy_path: two running jobs listed, oldest first."""
    first = fn.api("POST", "/batch/", json=earlier_create_body(**env(KUBESIM_RUN_SECONDS=600)))
    second = fn.api("POST", "/batch/", json=earlier_create_body(**env(KUBESIM_RUN_SECONDS=600)))
    code, listed = fn.api("GET", "/batch/")
    assert code == 200
    assert [job["id"] for job in listed["data"]] == [
        first[1]["data"]["id"],
        second[1]["data"]["id"],
    ]


def test_parameters_that_are_no_object_and_a_duplicate_name(fn):
    """test_create_batch_job_invalid_parameters and test_duplicate_name_batch_job."""
    body = {**earlier_create_body(), "job_parameters": "not parameters"}
    code, answer = fn.api("POST", "/batch/", json=body)
    assert (code, answer["error"]) == (400, "InvalidParameters")
    body = {**earlier_create_body(**env(KUBESIM_RUN_SECONDS=600)), "name": "duplicate-name"}
    assert fn.api("POST", "/batch/", json=body)[0] == 200
    code, answer = fn.api("POST", "/batch/", json=body)
    assert (code, answer["error"]) == (400, "InvalidParameters")


def test_a_misconfigured_cluster_stores_nothing(fn_store):
    """The store-only fixture points KUBECONFIG nowhere: the create must fail before it
    writes a record that no deploy would ever move on."""
    code, answer = fn_store.api("POST", "/batch/", json=earlier_create_body())
    assert (code, answer["error"], answer["msg"]) == (500, "InternalError", "Service misconfigured")
    for status in ("created", "failed"):
        assert fn_store.api("GET", f"/batch/?status={status}")[1]["data"] == []
