"""Status notifications: every status change of a job is one message on JOB_EVENTS_TOPIC,
published after its write, read here from an ordered subscription on the Pub/Sub emulator."""

from __future__ import annotations

import datetime
import json
import logging
import time

import pytest

from shared.cloud.events import JobEvents, Step
from shared.model.job import Job, Status
from tests.api.conftest import status_is
from tests.robustness.helpers import reconfigure

FINAL = status_is(Status.SUCCEEDED, Status.FAILED, Status.KILLED)


def create(fn, **params) -> dict:
    body = {"account_id": "acct-ev", "job_parameters": {"docker_image": "alpine:3", **params}}
    status, response = fn.api("POST", "/batch/", json=body)
    assert status == 200, response
    return response["data"]


def env(**values) -> dict:
    return {"environment_variables": {key: str(value) for key, value in values.items()}}


def test_a_whole_life_is_announced_in_order_with_its_attributes(fn, backends, job_events):
    # The output is big enough that a sync may see `cleaning`; if the output lands first,
    # the write running -> cleaning -> succeeded still announces both steps.
    job = create(fn, **env(KUBESIM_SH="head -c 20000000 /dev/urandom > /output/big.bin"))
    done = fn.sync_until(job["id"], FINAL, timeout=60)
    assert done["status"] == "succeeded", done
    statuses = job_events.statuses(job["id"], until="succeeded")
    assert statuses == ["created", "running", "cleaning", "succeeded"]
    messages = job_events.of(job["id"])
    previous = [m.attributes["previous_status"] for m in messages]
    assert previous == ["", "created", "running", "cleaning"]
    record = backends.store.get(job["id"])
    written = [t["at"] for t in record.transitions]
    for message, at in zip(messages, [record.created, *written], strict=True):
        assert message.ordering_key == job["id"]
        assert message.attributes["job_id"] == job["id"]
        assert message.attributes["name"] == job["name"]
        assert message.attributes["account_id"] == "acct-ev"
        moment = datetime.datetime.fromisoformat(message.attributes["event_time"])
        assert int(moment.timestamp() * 1000) == at
        assert message.job["id"] == job["id"]
        assert message.job["status"] == message.attributes["status"]
    # The last message's data is the job as the API returns it.
    assert messages[-1].job == fn.job(job["id"])


def test_a_kill_is_announced_and_a_refused_one_is_not(fn, job_events):
    job = create(fn, **env(KUBESIM_SH="sleep 600"))
    status, killed = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200, killed
    assert job_events.statuses(job["id"], until="killed") == ["created", "running", "killed"]
    assert job_events.of(job["id"])[-1].job["reason"] == "Killed"
    status, _ = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 400
    job_events.pull_once()
    assert job_events.statuses(job["id"]) == ["created", "running", "killed"]


def test_no_account_id_attribute_without_one(fn, job_events):
    status, response = fn.api("POST", "/batch/", json={"job_parameters": {"docker_image": "x"}})
    assert status == 200, response
    job_events.statuses(response["data"]["id"], until="running")
    assert "account_id" not in job_events.of(response["data"]["id"])[0].attributes


@pytest.mark.slow
def test_none_lost_when_one_sync_moves_many_jobs(fn, job_events, core_v1, namespace):
    count = 25
    jobs = [create(fn, **env(KUBESIM_SH="echo hi > /output/o.txt")) for _ in range(count)]
    ids = {job["id"] for job in jobs}
    deadline = time.monotonic() + 120
    while True:  # every pod done before the one sync that finishes them all
        pods = core_v1.list_namespaced_pod(namespace).items
        if len(pods) >= count and all(p.status.phase == "Succeeded" for p in pods):
            break
        assert time.monotonic() < deadline, [p.status.phase for p in pods]
        time.sleep(0.2)
    report = fn.sync()
    assert report["transitions"].get("succeeded") == count, report
    job_events.until(
        lambda r: all(any(m.attributes["status"] == "succeeded" for m in r.of(i)) for i in ids),
        timeout=60,
    )
    for job_id in ids:
        statuses = job_events.statuses(job_id)
        assert statuses == ["created", "running", "cleaning", "succeeded"], (job_id, statuses)


def test_a_failed_create_is_announced_as_failed(fn, job_events, kubesim, namespace):
    # A cluster that refuses the Job: the create answers 500 and the record says failed.
    kubesim.inject_fault(
        verb="create", path=f"/apis/batch/v1/namespaces/{namespace}/jobs", status=500, count=1
    )
    status, body = fn.api("POST", "/batch/", json={"job_parameters": {"docker_image": "x"}})
    assert status == 500, body
    job_events.until(lambda r: any(m.attributes["status"] == "failed" for m in r.received))
    failed = next(m for m in job_events.received if m.attributes["status"] == "failed")
    assert job_events.statuses(failed.attributes["job_id"]) == ["created", "failed"]


def test_without_the_topic_nothing_is_published(fn, job_events, monkeypatch):
    reconfigure(monkeypatch, JOB_EVENTS_TOPIC="")
    job = create(fn)
    assert job["status"] == "running"
    job_events.pull_once()
    assert job_events.of(job["id"]) == []


def test_a_publish_failure_is_logged_and_never_fails_the_change(
    fn, backends, job_events, monkeypatch, caplog
):
    # A topic that does not exist: every publish fails after the client's own checks.
    reconfigure(monkeypatch, JOB_EVENTS_TOPIC="no-such-topic")
    with caplog.at_level(logging.ERROR):
        job = create(fn)
    assert job["status"] == "running"
    assert fn.job(job["id"])["status"] == "running"
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(getattr(r, "job_id", None) == job["id"] for r in errors), errors


def test_later_messages_of_a_job_go_after_a_failed_one(gcp_project, events_topic, job_events):
    """The ordering key is resumed after a failure, or the client refuses the rest."""
    events = JobEvents("no-such-topic", gcp_project)
    job = Job(id="j-1", name="n", status=Status.RUNNING, created=1, job_parameters={})
    events.announce(job, [Step("created", "running", 2)])
    events.flush(timeout=20)
    events.topic = events_topic
    events._path = f"projects/{gcp_project}/topics/{events_topic}"
    events.announce(job, [Step("running", "killed", 3)])
    assert events.flush(timeout=20) == 0
    assert job_events.statuses("j-1", until="killed") == ["killed"]
    assert json.loads(job_events.of("j-1")[0].data)["status"] == "killed"
