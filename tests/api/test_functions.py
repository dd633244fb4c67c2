"""The four single-purpose functions answer exactly as the /batch/ router does."""

from __future__ import annotations

import json

from tests.api.test_lifecycle import create, env


def call(fn, name: str, method: str, path: str = "/", **kwargs):
    response = fn.clients[name].open(path, method=method, **kwargs)
    return response.status_code, json.loads(response.data)


def test_single_functions_match_the_router(fn):
    status, created = call(
        fn,
        "create_job",
        "POST",
        json={
            "account_id": "acct-9",
            "job_parameters": {"docker_image": "alpine", **env(KUBESIM_RUN_SECONDS=600)},
        },
    )
    assert status == 200, created
    job_id = created["data"]["id"]
    other = create(fn, **env(KUBESIM_RUN_SECONDS=600))

    assert call(fn, "get_job", "GET", f"/{job_id}") == fn.api("GET", f"/batch/{job_id}")
    assert call(fn, "get_job", "GET", f"/?id={job_id}") == fn.api("GET", f"/batch/{job_id}")
    listed = call(fn, "list_jobs", "GET", "/?status=running")
    assert listed == fn.api("GET", "/batch/?status=running")
    assert {job["id"] for job in listed[1]["data"]} == {job_id, other["id"]}
    by_account = call(fn, "list_jobs", "GET", "/?status=running&account_id=acct-9")
    assert [job["id"] for job in by_account[1]["data"]] == [job_id]

    killed = call(fn, "kill_job", "DELETE", f"/{job_id}")
    assert killed[0] == 200 and killed[1]["data"]["status"] == "killed"
    assert call(fn, "kill_job", "DELETE", f"/{job_id}") == fn.api("DELETE", f"/batch/{job_id}")
    assert call(fn, "get_job", "GET", "/") == (404, call(fn, "get_job", "GET", "/")[1])
    assert call(fn, "create_job", "GET", "/")[0] == 405


def test_create_can_wait_for_an_instant_job(fn, monkeypatch):
    monkeypatch.setenv("CREATE_WAIT_SECONDS", "10")
    from shared.cloud.backends import default_backends
    from shared.settings import get_settings

    get_settings.cache_clear()
    default_backends.cache_clear()
    status, body = fn.api(
        "POST",
        "/batch/",
        json={"job_parameters": {"docker_image": "alpine", **env(KUBESIM_RUN_SECONDS=0)}},
    )
    assert status == 200, body
    # The answer waited for the user's container to start. The node may report the
    # container running for a moment before it reports it done (a busy machine widens the
    # moment), and the pod may have uploaded the output before the create looked, or not.
    job = body["data"]
    assert job["start_time"] >= job["created"]
    assert job["status"] in ("running", "cleaning", "succeeded")
    if job["status"] != "running":
        assert body["msg"] == f"Job {job['id']} finished instantly"
