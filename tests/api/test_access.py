"""Accounts and verified callers, on every route: real tokens signed by the local issuer,
verified by google-auth in the functions.

Account `team-a` has an admin, a submitter and a viewer; `team-b` has a submitter, who is a
stranger to `team-a`. `operator@local` is the operator.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from infra.local.issuer import new_issuer
from tests.api.test_lifecycle import env
from tests.fixtures.api import zip_b64, zip_bytes
from tests.fixtures.tokens import NO_TOKEN, OPERATOR, bearer

ADMIN, SUBMITTER, VIEWER, STRANGER = "ana@a.test", "sub@a.test", "view@a.test", "bo@b.test"
RUNNING = env(KUBESIM_RUN_SECONDS=600)


def call(fn, method: str, path: str, who: str | None, **kwargs: Any) -> tuple[int, dict]:
    headers = fn.as_(who) if who else {}
    return fn.api(method, path, headers=headers, **kwargs)


@pytest.fixture
def teams(fn) -> None:
    """The accounts, each with its Kueue queues in the test's namespace."""
    for account_id, members in (
        ("team-a", {ADMIN: "admin", SUBMITTER: "submitter", VIEWER: "viewer"}),
        ("team-b", {STRANGER: "submitter"}),
    ):
        body = {"account_id": account_id, "members": members}
        status, answer = fn.api("POST", "/accounts/", json=body)
        assert status == 200, answer


def submit(fn, who: str, **body: Any) -> tuple[int, dict]:
    payload = {"job_parameters": {"docker_image": "alpine:3", **RUNNING}, **body}
    return call(fn, "POST", "/batch/", who, json=payload)


@pytest.fixture
def job(fn, teams) -> dict:
    status, answer = submit(fn, SUBMITTER)
    assert status == 200, answer
    return answer["data"]


# -- who is calling ------------------------------------------------------------------------

ROUTES = [
    ("GET", "/batch/"),
    ("POST", "/batch/"),
    ("GET", "/batch/{id}"),
    ("DELETE", "/batch/{id}"),
    ("GET", "/batch/{id}/logs"),
    ("GET", "/batch/{id}/outputs/0"),
    ("GET", "/healthcheck"),
    ("GET", "/accounts/"),
    ("POST", "/accounts/"),
    ("GET", "/accounts/team-a"),
    ("PUT", f"/accounts/team-a/members/{VIEWER}"),
    ("DELETE", f"/accounts/team-a/members/{VIEWER}"),
]


def bad_tokens(tokens) -> dict[str, dict[str, str]]:
    stranger_key = new_issuer(tokens.issuer.url)
    now = int(time.time())
    return {
        "none": {},
        "not a bearer": {"Authorization": f"Basic {tokens.mint(VIEWER)}"},
        "garbage": bearer("not.a.token"),
        "expired": bearer(tokens.signed(tokens.claims(VIEWER, iat=now - 7200, exp=now - 3600))),
        "another audience": bearer(tokens.mint(VIEWER, audience="https://elsewhere.test")),
        "another key": bearer(tokens.signed(tokens.claims(VIEWER), key=stranger_key)),
        "another issuer": bearer(tokens.signed(tokens.claims(VIEWER, iss="https://evil.test"))),
        "unverified email": bearer(tokens.signed(tokens.claims(VIEWER, email_verified=False))),
        "typed header": {"X-Goog-Authenticated-User-Email": f"accounts.google.com:{OPERATOR}"},
    }


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_refuses_a_caller_without_a_valid_token(fn, job, tokens, method, path):
    for what, headers in bad_tokens(tokens).items():
        status, body = fn.api(
            method, path.format(id=job["id"]), headers={**NO_TOKEN, **headers}, json={}
        )
        assert (status, body["error"]) == (401, "Unauthenticated"), (what, body)
        assert body["result"] is False and body["msg"], what
    # The job was not touched.
    assert fn.job(job["id"])["status"] == "running"


def test_a_bad_token_says_why_and_asks_for_a_bearer(fn, tokens):
    status, body = fn.api("GET", "/batch/", headers=NO_TOKEN)
    assert status == 401
    assert "Authorization: Bearer" in body["msg"]
    response = fn.clients["batch_api"].get("/batch/", headers=NO_TOKEN)
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    expired = tokens.claims(VIEWER, iat=int(time.time()) - 7200, exp=int(time.time()) - 3600)
    _, body = fn.api("GET", "/batch/", headers=bearer(tokens.signed(expired)))
    assert "expired" in body["msg"].lower() or "too late" in body["msg"].lower(), body


def test_the_single_purpose_functions_check_the_caller_too(fn, job):
    for name, method, path in (
        ("create_job", "POST", "/"),
        ("get_job", "GET", f"/{job['id']}"),
        ("list_jobs", "GET", "/"),
        ("kill_job", "DELETE", f"/{job['id']}"),
    ):
        response = fn.clients[name].open(path, method=method, headers=NO_TOKEN, json={})
        assert response.status_code == 401, (name, response.data)
        stranger = fn.clients[name].open(path, method=method, headers=fn.as_(STRANGER), json={})
        assert stranger.status_code in (400, 404, 200), (name, stranger.data)
        if name in ("get_job", "kill_job"):
            assert stranger.status_code == 404
            assert json.loads(stranger.data)["error"] == "DoesNotExist"
    assert fn.job(job["id"])["status"] == "running"


# -- what each may do with a job -----------------------------------------------------------


def test_a_job_records_who_created_it(fn, job):
    assert job["account_id"] == "team-a"  # the submitter's only account
    assert job["created_by"] == SUBMITTER


@pytest.mark.parametrize("who", [SUBMITTER, VIEWER, ADMIN, OPERATOR])
def test_members_and_operators_see_the_job(fn, job, who):
    status, body = call(fn, "GET", f"/batch/{job['id']}", who)
    assert status == 200, body
    assert body["data"]["id"] == job["id"]
    status, body = call(fn, "GET", f"/batch/{job['id']}/logs", who)
    assert status == 200, body
    # Past the check of who may see it: a plain job has no task outputs to redirect to.
    status, body = call(fn, "GET", f"/batch/{job['id']}/outputs/0", who)
    assert (status, body["error"]) == (400, "InvalidParameters"), body


def test_a_stranger_cannot_tell_the_job_exists(fn, job):
    missing = "0f2b8c1e-4a8e-4c5e-9a57-000000000000"
    for path in ("/batch/{}", "/batch/{}/logs", "/batch/{}/outputs/0"):
        seen = call(fn, "GET", path.format(job["id"]), STRANGER)
        absent = call(fn, "GET", path.format(missing), STRANGER)
        assert seen[0] == absent[0] == 404
        assert seen[1]["error"] == absent[1]["error"] == "DoesNotExist"
        assert seen[1]["msg"] == absent[1]["msg"].replace(missing, job["id"])
    killed = call(fn, "DELETE", f"/batch/{job['id']}", STRANGER)
    assert (killed[0], killed[1]["error"]) == (404, "DoesNotExist")
    assert fn.job(job["id"])["status"] == "running"


def test_a_viewer_may_not_kill(fn, job):
    status, body = call(fn, "DELETE", f"/batch/{job['id']}", VIEWER)
    assert (status, body["error"]) == (403, "Forbidden"), body
    assert "team-a" in body["msg"] and "submitter" in body["msg"]
    assert fn.job(job["id"])["status"] == "running"


def test_a_submitter_kills_and_the_record_says_who(fn, job):
    status, body = call(fn, "DELETE", f"/batch/{job['id']}", SUBMITTER)
    assert status == 200, body
    assert body["data"]["killed_by"] == SUBMITTER
    assert fn.job(job["id"])["killed_by"] == SUBMITTER
    assert SUBMITTER in fn.job(job["id"])["message"]


def test_create_needs_the_submitter_role_on_the_account(fn, teams):
    status, body = submit(fn, VIEWER)
    assert (status, body["error"]) == (403, "Forbidden"), body
    assert "team-a" in body["msg"]
    status, body = submit(fn, STRANGER, account_id="team-a")
    assert (status, body["error"]) == (403, "Forbidden"), body
    status, body = submit(fn, "nobody@c.test")
    assert (status, body["error"]) == (400, "InvalidParameters"), body
    assert "account_id" in body["data"]
    status, body = submit(fn, STRANGER)
    assert status == 200 and body["data"]["account_id"] == "team-b", body
    listed = fn.api("GET", "/batch/?status=any")[1]["data"]
    assert [job["created_by"] for job in listed] == [STRANGER]


def test_a_list_shows_only_the_accounts_the_caller_sees(fn, job):
    status, body = submit(fn, STRANGER)
    assert status == 200, body
    theirs = body["data"]["id"]
    seen = {
        who: {j["id"] for j in call(fn, "GET", "/batch/?status=any", who)[1]["data"]}
        for who in (VIEWER, STRANGER, OPERATOR, "nobody@c.test")
    }
    assert seen == {
        VIEWER: {job["id"]},
        STRANGER: {theirs},
        OPERATOR: {job["id"], theirs},
        "nobody@c.test": set(),
    }
    status, body = call(fn, "GET", "/batch/?account_id=team-a", STRANGER)
    assert (status, body["error"]) == (403, "Forbidden"), body
    status, body = call(fn, "GET", f"/batch/?name={job['name']}", STRANGER)
    assert (status, body["data"]) == (200, [])
    status, body = call(fn, "GET", f"/batch/?name={job['name']}", VIEWER)
    assert [j["id"] for j in body["data"]] == [job["id"]]


def test_a_request_id_of_another_account_is_a_conflict(fn, teams):
    key = str(uuid.uuid4())
    status, first = submit(fn, SUBMITTER, request_id=key)
    assert status == 200, first
    # The very same body, which for the stranger means its own account.
    status, body = submit(fn, STRANGER, request_id=key)
    assert (status, body["error"]) == (409, "Conflict"), body
    assert first["data"]["id"] in body["msg"] and "another account" in body["msg"]
    assert "data" not in body or "job_parameters" not in str(body["data"])
    status, again = submit(fn, SUBMITTER, request_id=key)
    assert status == 200 and again["data"]["id"] == first["data"]["id"]


# -- the accounts API ----------------------------------------------------------------------


def test_only_operators_create_accounts(fn_store, teams):
    body = {"account_id": "team-c", "members": {STRANGER: "admin"}}
    status, answer = call(fn_store, "POST", "/accounts/", ADMIN, json=body)
    assert (status, answer["error"]) == (403, "Forbidden")
    status, answer = fn_store.api("POST", "/accounts/", json=body)
    assert status == 200 and answer["data"]["created_by"] == OPERATOR
    status, answer = fn_store.api("POST", "/accounts/", json=body)
    assert (status, answer["error"]) == (409, "Conflict")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"account_id": "Team A"}, "account_id"),
        ({"account_id": "-a"}, "account_id"),
        ({"account_id": "a" * 64}, "account_id"),
        ({"account_id": "ok", "members": {"not-an-email": "viewer"}}, "email"),
        ({"account_id": "ok", "members": {"x@y.test": "owner"}}, "role"),
        ({"account_id": "ok", "members": ["x@y.test"]}, "members"),
        ({"account_id": "ok", "quota": 1}, "quota"),
    ],
)
def test_a_bad_account_is_refused_with_its_field(fn_store, body, field):
    status, answer = fn_store.api("POST", "/accounts/", json=body)
    assert (status, answer["error"]) == (400, "InvalidParameters"), answer
    assert field in answer["data"], answer


def test_each_caller_lists_its_own_accounts(fn_store, teams):
    def listed(who: str | None) -> list[str]:
        status, body = call(fn_store, "GET", "/accounts/", who)
        assert status == 200, body
        return [account["account_id"] for account in body["data"]]

    assert listed(VIEWER) == ["team-a"]
    assert listed(STRANGER) == ["team-b"]
    assert listed("nobody@c.test") == []
    assert {"team-a", "team-b"} <= set(listed(None))  # the operator: every account


def test_an_account_is_shown_to_its_members_only(fn_store, teams):
    status, body = call(fn_store, "GET", "/accounts/team-a", VIEWER)
    assert status == 200
    assert body["data"]["members"] == {ADMIN: "admin", SUBMITTER: "submitter", VIEWER: "viewer"}
    stranger = call(fn_store, "GET", "/accounts/team-a", STRANGER)
    absent = call(fn_store, "GET", "/accounts/team-z", STRANGER)
    assert stranger[0] == absent[0] == 404
    assert stranger[1]["error"] == absent[1]["error"] == "DoesNotExist"


def test_admins_manage_members(fn_store, teams):
    path = f"/accounts/team-a/members/{STRANGER}"
    status, body = call(fn_store, "PUT", path, SUBMITTER, json={"role": "viewer"})
    assert (status, body["error"]) == (403, "Forbidden"), body
    status, body = call(fn_store, "PUT", path, STRANGER, json={"role": "viewer"})
    assert (status, body["error"]) == (404, "DoesNotExist"), body
    status, body = call(fn_store, "PUT", path, ADMIN, json={"role": "viewer"})
    assert status == 200 and body["data"]["members"][STRANGER] == "viewer", body
    # The new member sees the account's jobs at once.
    status, body = call(fn_store, "GET", "/batch/?account_id=team-a&status=any", STRANGER)
    assert status == 200, body
    status, body = call(fn_store, "PUT", path, ADMIN, json={"role": "owner"})
    assert (status, body["error"]) == (400, "InvalidParameters")
    status, body = call(fn_store, "DELETE", path, ADMIN)
    assert status == 200 and STRANGER not in body["data"]["members"]
    status, body = call(fn_store, "GET", "/batch/?account_id=team-a&status=any", STRANGER)
    assert (status, body["error"]) == (403, "Forbidden")


def test_a_member_may_leave_but_the_last_admin_stays(fn_store, teams):
    status, body = call(fn_store, "DELETE", f"/accounts/team-a/members/{VIEWER}", VIEWER)
    assert status == 200 and VIEWER not in body["data"]["members"]
    status, body = call(fn_store, "DELETE", f"/accounts/team-a/members/{ADMIN}", ADMIN)
    assert (status, body["error"]) == (409, "Conflict"), body
    demote = {"role": "viewer"}
    status, body = call(fn_store, "PUT", f"/accounts/team-a/members/{ADMIN}", ADMIN, json=demote)
    assert (status, body["error"]) == (409, "Conflict"), body
    status, body = fn_store.api("DELETE", f"/accounts/team-a/members/{ADMIN}")
    assert status == 200, body  # an operator may


def test_access_control_off_serves_everyone_as_before(fn, monkeypatch):
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    monkeypatch.setenv("ACCESS_CONTROL", "off")
    get_settings.cache_clear()
    default_backends.cache_clear()
    payload = {"account_id": "anything", "job_parameters": {"docker_image": "alpine:3"}}
    status, body = fn.api("POST", "/batch/", json=payload, headers=NO_TOKEN)
    assert status == 200, body
    assert "created_by" not in body["data"]
    status, body = fn.api("DELETE", f"/batch/{body['data']['id']}", headers=NO_TOKEN)
    assert status == 200 and "killed_by" not in body["data"], body
    assert body["data"]["message"] == "Killed by its user"


# -- what an answer shows of a job ---------------------------------------------------------


def test_only_the_create_answers_with_the_upload_url(fn, teams):
    params = {"docker_image": "alpine:3", "input_upload": True}
    status, body = call(fn, "POST", "/batch/", SUBMITTER, json={"job_parameters": params})
    assert status == 200, body
    created = body["data"]
    assert created["input_upload_url"].startswith("http")
    for who in (SUBMITTER, VIEWER, OPERATOR):
        shown = call(fn, "GET", f"/batch/{created['id']}", who)[1]["data"]
        assert "input_upload_url" not in shown and shown["input_upload_expires"], who
        listed = call(fn, "GET", "/batch/?status=created", who)[1]["data"]
        assert all("input_upload_url" not in job for job in listed), who
    # The same create again (its request id) is the submitter's, and answers it again.


def test_urls_are_shown_without_their_secrets(fn, teams):
    from shared.model.job import without_secrets

    assert without_secrets("https://u:p@host.test:8443/a/b.zip?X-Goog-Signature=s#f") == (
        "https://host.test:8443/a/b.zip"
    )
    assert without_secrets("gs://bucket/a.zip") == "gs://bucket/a.zip"
    body = {
        "callback_url": "http://127.0.0.1:9/hook?token=secret-token",
        "job_parameters": {"docker_image": "alpine:3", **RUNNING},
    }
    status, answer = call(fn, "POST", "/batch/", SUBMITTER, json=body)
    assert status == 200, answer
    assert answer["data"]["callback_url"].endswith("token=secret-token")  # the creator's
    for who in (SUBMITTER, VIEWER):
        shown = call(fn, "GET", f"/batch/{answer['data']['id']}", who)[1]["data"]
        assert shown["callback_url"] == "http://127.0.0.1:9/hook", who
        assert "secret-token" not in json.dumps(shown)


# -- inputs by reference -------------------------------------------------------------------


def by_reference(fn, who: str, url: str) -> tuple[int, dict]:
    params = {"docker_image": "alpine:3", "input_url": url, **RUNNING}
    return call(fn, "POST", "/batch/", who, json={"job_parameters": params})


def test_a_jobs_bucket_object_is_an_input_of_its_own_accounts_only(fn, teams, bucket):
    params = {"docker_image": "alpine:3", "input_zip": zip_b64({"a.txt": b"a"}), **RUNNING}
    status, answer = call(fn, "POST", "/batch/", SUBMITTER, json={"job_parameters": params})
    assert status == 200, answer
    theirs = f"gs://{bucket}/{answer['data']['name']}-input.zip"
    status, body = by_reference(fn, STRANGER, theirs)
    assert (status, body["error"]) == (400, "InvalidParameters"), body
    assert "not of an account of yours" in body["data"]["job_parameters"]["input_url"]
    status, body = by_reference(fn, SUBMITTER, theirs)
    assert status == 200, body
    status, body = by_reference(fn, STRANGER, f"gs://{bucket}/refs/unowned.zip")
    assert (status, body["error"]) == (400, "InvalidParameters"), body


def test_another_bucket_is_read_only_when_the_account_lists_it(fn, teams, storage_client, bucket):
    other = storage_client.create_bucket(f"{bucket}-data")
    try:
        other.blob("in.zip").upload_from_string(zip_bytes({"a.txt": b"a"}))
        url = f"gs://{other.name}/in.zip"
        status, body = by_reference(fn, SUBMITTER, url)
        assert (status, body["error"]) == (400, "InvalidParameters"), body
        assert "signed https:// URL" in body["data"]["job_parameters"]["input_url"]
        listed = {"buckets": [other.name]}
        status, body = call(fn, "PATCH", "/accounts/team-a", ADMIN, json=listed)
        assert (status, body["error"]) == (403, "Forbidden"), body
        status, body = fn.api("PATCH", "/accounts/team-a", json=listed)
        assert status == 200 and body["data"]["buckets"] == [other.name], body
        status, body = by_reference(fn, SUBMITTER, url)
        assert status == 200, body
        status, body = by_reference(fn, STRANGER, url)  # team-b does not list it
        assert (status, body["error"]) == (400, "InvalidParameters"), body
    finally:
        for blob in storage_client.list_blobs(other.name):
            blob.delete()
        other.delete()
