"""Races: many creates at once, kills landing while two syncs overlap, finalize events
duplicated and out of order. Every job ends in exactly one final status, along a path the
transition table allows, and nothing is leaked or lost."""

from __future__ import annotations

import datetime
import json
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import unquote

import functions_framework
import pytest

from shared.jobs.start import draft
from shared.model.job import Status, now_ms
from tests.fixtures.api import MAIN, Functions, finalize_event
from tests.fixtures.tokens import OPERATOR
from tests.robustness.helpers import create, env, sync_until_final
from tests.robustness.invariants import assert_settled

pytestmark = pytest.mark.usefixtures("app_env")


def at_once(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together by a barrier; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


# The operator's identity token, which every client sends (set for each test).
OPERATOR_TOKEN: dict[str, str] = {}


@pytest.fixture(autouse=True)
def _operator(functions_app: Functions) -> Iterator[None]:
    OPERATOR_TOKEN["value"] = functions_app.as_(OPERATOR)["Authorization"]
    yield
    OPERATOR_TOKEN.clear()


def client(target: str) -> Any:
    """A client of its own per thread, calling as the operator. Build it before the threads
    start: functions-framework compiles the source as it builds an app, and CPython 3.11's
    compiler is not safe to run in fifty threads at once (python/cpython#106905)."""
    made = functions_framework.create_app(target, MAIN).test_client()
    made.environ_base["HTTP_AUTHORIZATION"] = OPERATOR_TOKEN["value"]
    return made


def poster(target: str, path: str, body: dict[str, Any]) -> Callable[[], tuple[int, Any]]:
    """A call that POSTs `body` to a function's `path`: its status and its JSON answer."""
    api = client(target)

    def call() -> tuple[int, Any]:
        response = api.post(path, json=body)
        return response.status_code, json.loads(response.data)

    return call


def post_job(name: str | None, **params: Any) -> Callable[[], tuple[int, Any]]:
    body: dict[str, Any] = {"job_parameters": {"docker_image": "alpine:3", **params}}
    if name:
        body["name"] = name
    return poster("batch_api", "/batch/", body)


@pytest.fixture
def settled(backends, batch_v1, core_v1, namespace, storage_client, bucket):
    return lambda: assert_settled(backends, batch_v1, core_v1, namespace, storage_client, bucket)


def test_fifty_concurrent_creates(fn, settled):
    results = at_once([post_job(f"many-{i}", **env(KUBESIM_RUN_SECONDS=0)) for i in range(50)])
    assert [code for code, _ in results] == [200] * 50, [b for c, b in results if c != 200]
    ids = [body["data"]["id"] for _, body in results]
    assert len(set(ids)) == 50
    sync_until_final(fn, ids, timeout=120)
    jobs = settled()
    assert len(jobs) == 50
    assert {job.status for job in jobs} == {Status.SUCCEEDED}


DERIVED = re.compile(r"alpine-3-(\d{13})")  # <slug of the image>-<ms>, as the earlier API


@pytest.mark.parametrize("target,path", [("batch_api", "/batch/"), ("create_job", "/")])
def test_fifty_concurrent_creates_without_a_name(fn, settled, monkeypatch, target, path):
    """Every create of one millisecond derives the same first name (the clock is held still
    here, so that they surely do): each takes the next free one, in the same format. Each
    job's output lands under its own name, so each succeeds."""
    moment = now_ms()
    monkeypatch.setattr(draft, "now_ms", lambda: moment)
    body = {"job_parameters": {"docker_image": "alpine:3", **env(KUBESIM_RUN_SECONDS=0)}}
    results = at_once([poster(target, path, body) for _ in range(50)])
    assert [code for code, _ in results] == [200] * 50, [b for c, b in results if c != 200]
    names = [answer["data"]["name"] for _, answer in results]
    assert len(set(names)) == 50
    stamps = sorted(int(match[1]) for name in names if (match := DERIVED.fullmatch(name)))
    assert len(stamps) == 50 and stamps[0] == moment, names
    assert all(answer["data"]["created"] == moment for _, answer in results)
    sync_until_final(fn, [answer["data"]["id"] for _, answer in results], timeout=300)
    jobs = settled()
    assert {job.name for job in jobs} == set(names)
    assert {job.status for job in jobs} == {Status.SUCCEEDED}


def test_concurrent_creates_without_a_name_awaiting_their_input(fn, monkeypatch):
    """A job that waits for its upload is given a URL for its own name's input object."""
    moment = now_ms()
    monkeypatch.setattr(draft, "now_ms", lambda: moment)
    body = {"job_parameters": {"docker_image": "alpine:3", "input_upload": True}}
    results = at_once([poster("batch_api", "/batch/", body) for _ in range(20)])
    assert [code for code, _ in results] == [200] * 20
    jobs = [answer["data"] for _, answer in results]
    assert len({job["name"] for job in jobs}) == 20
    for job in jobs:
        assert f"{job['name']}-input.zip" in unquote(job["input_upload_url"]), job
        assert fn.api("DELETE", f"/batch/{job['id']}")[0] == 200


def test_a_chosen_name_is_never_replaced(fn, monkeypatch):
    """A derived name taken by a job that chose it moves the create on; the same name chosen
    again is refused."""
    moment = now_ms()
    monkeypatch.setattr(draft, "now_ms", lambda: moment)
    first = create(fn, f"alpine-3-{moment}", **env(KUBESIM_RUN_SECONDS=600))
    derived = create(fn, **env(KUBESIM_RUN_SECONDS=600))
    assert DERIVED.fullmatch(derived["name"]) and derived["name"] != first["name"]
    status, answer = fn.api(
        "POST", "/batch/", json={"name": first["name"], "job_parameters": {"docker_image": "a"}}
    )
    assert (status, answer["data"]) == (400, {"name": "A job with this name already exists"})
    for job in (first, derived):
        assert fn.api("DELETE", f"/batch/{job['id']}")[0] == 200


def test_concurrent_submissions_keep_their_names(fn, monkeypatch, storage_client, bucket):
    """Submissions never derive a name: each job is named as its zip, whatever the clock,
    and a submission whose name is taken is refused, not renamed."""
    from tests.api.test_submissions import ACCOUNT, outcome, submission, upload

    assert fn.api("POST", "/accounts/", json={"account_id": ACCOUNT})[0] == 200  # its folder
    moment = now_ms()
    monkeypatch.setattr(draft, "now_ms", lambda: moment)
    taken = create(fn, "sub-race-taken", **env(KUBESIM_RUN_SECONDS=600))
    names = [f"sub-race-{i}" for i in range(10)] + ["sub-race-taken"]
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(days=1)
    job = {"job_parameters": {"docker_image": "alpine:3", "start_after": later.isoformat()}}
    events = [upload(storage_client, bucket, name, submission(job)) for name in names]
    finalize = [
        partial(finalize_event, client("on_output_finalized"), e, e["name"]) for e in events
    ]
    assert set(at_once(finalize)) == {200}
    for name in names[:-1]:
        made = outcome(storage_client, bucket, name, "job")
        assert made is not None and made["data"]["name"] == name, made
        assert fn.api("DELETE", f"/batch/{made['data']['id']}")[0] == 200
    refused = outcome(storage_client, bucket, "sub-race-taken", "error")
    assert refused is not None and refused["data"] == {
        "name": "A job with this name already exists"
    }
    assert fn.api("DELETE", f"/batch/{taken['id']}")[0] == 200


def test_fifty_concurrent_creates_of_one_name(fn, settled, batch_v1, namespace):
    results = at_once([post_job("contested", **env(KUBESIM_RUN_SECONDS=600)) for _ in range(50)])
    codes = sorted(code for code, _ in results)
    assert codes == [200] + [400] * 49
    refused = [body for code, body in results if code == 400]
    assert all(body["data"] == {"name": "A job with this name already exists"} for body in refused)
    (winner,) = [body["data"] for code, body in results if code == 200]
    assert [j.metadata.name for j in batch_v1.list_namespaced_job(namespace).items] == ["contested"]
    assert fn.api("DELETE", f"/batch/{winner['id']}")[0] == 200
    fn.sync()
    (killed,) = settled()
    assert killed.id == winner["id"] and killed.status is Status.KILLED


def test_twenty_kills_while_two_syncs_overlap(fn, settled):
    """Half the jobs end by themselves meanwhile: each kill is accepted or refused, never
    both recorded, and every job ends once."""
    jobs = [create(fn, f"k-{i}", **env(KUBESIM_RUN_SECONDS=0 if i % 2 else 600)) for i in range(20)]

    def kill(job_id: str) -> Callable[[], int]:
        killer = client("kill_job")
        return lambda: killer.delete(f"/{job_id}").status_code

    def sync() -> Callable[[], int]:
        syncer = client("synchronize_batch_jobs")
        return lambda: syncer.post("/").status_code

    codes = at_once([sync(), sync(), *(kill(job["id"]) for job in jobs)])
    assert codes[:2] == [200, 200]
    assert set(codes[2:]) <= {200, 400}
    sync_until_final(fn, [job["id"] for job in jobs], timeout=120)
    finished = {job.id: job for job in settled()}
    for job, code in zip(jobs, codes[2:], strict=True):
        record = finished[job["id"]]
        if code == 200:
            assert record.status is Status.KILLED, record
        else:
            assert record.status is not Status.KILLED, record
    assert {finished[job["id"]].status for job in jobs[::2]} == {Status.KILLED}


def test_finalize_events_duplicated_and_out_of_order(
    fn, backends, storage_client, bucket, batch_v1, namespace, settled
):
    from tests.api.test_lifecycle import wait_for_output

    jobs = [create(fn, f"fin-{i}", **env(KUBESIM_SH=f"echo {i} > /output/x")) for i in range(4)]
    # an event for an object the job's stage-out did not write (no job-id) proves nothing
    early = {"bucket": bucket, "name": f"{jobs[0]['name']}-output.zip", "metadata": {}}
    assert fn.finalize(early, "early") == 200
    assert fn.job(jobs[0]["id"])["status"] == "running"
    fn.sync()  # some jobs may move to cleaning: events then find jobs in either status
    events = []
    for job in jobs:
        blob = wait_for_output(storage_client, bucket, job["name"])
        data = {"bucket": bucket, "name": blob.name, "metadata": blob.metadata}
        events += [(data, f"{job['id']}-{n}") for n in range(3)]  # each delivered three times
    events.reverse()  # and the jobs' events in the opposite order

    calls = [partial(finalize_event, client("on_output_finalized"), *event) for event in events]
    assert set(at_once(calls)) == {200}
    fn.sync()
    for job in settled():
        assert job.status is Status.SUCCEEDED
        assert [t["to"] for t in job.transitions].count("succeeded") == 1
