"""Status notifications: every status change of a job is one message on JOB_EVENTS_TOPIC,
published by the write's trigger. The real path: the functions write to the Firestore
emulator, the trigger's stand-in (infra/local/firestore_trigger.py) POSTs each write to
publish_job_events over HTTP, which publishes to the Pub/Sub emulator, read here from an
ordered subscription. Then the trigger function alone, with hand-built protobuf events."""

from __future__ import annotations

import datetime
import json
import logging
from typing import Any

import pytest
from cloudevents.http import CloudEvent

from infra.local.firestore_trigger import Version, written_event
from shared.cloud.backends import default_backends
from shared.cloud.events import Publisher, PublishError, Step
from shared.jobs.notify import steps
from shared.model.job import Job, Status
from tests.api.conftest import status_is
from tests.fixtures.cloud import EventReader
from tests.fixtures.waiting import wait_for
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
    # Kueue's admission, between `running` and `cleaning`, as its own event.
    (admitted,) = job_events.of(job["id"], event="admitted")
    assert admitted.attributes["status"] == admitted.attributes["previous_status"] == "running"
    moment = datetime.datetime.fromisoformat(admitted.attributes["event_time"])
    assert int(moment.timestamp() * 1000) == record.admitted
    order = [m.attributes["event"] for m in job_events.of(job["id"], event=None)]
    assert order.index("admitted") == 2


def test_an_admission_is_announced_once(fn_store, reader):
    waiting = _doc("j-adm", queue="team", queued={"queue": "team", "position": 1,
                                                  "reason": "quota", "since": 2000})  # fmt: skip
    admitted = _doc("j-adm", queue="team", queued=None, admitted=2500)
    assert fn_store.written(_event("j-adm", waiting, admitted)) == 200
    assert fn_store.written(_event("j-adm", admitted, {**admitted, "updated": 3000})) == 200
    reader.until(lambda r: len(r.of("j-adm", event=None)) >= 1)
    (message,) = reader.of("j-adm", event=None)
    assert message.attributes["event"] == "admitted" and message.attributes["status"] == "running"
    assert message.job["admitted"] == 2500 and "queued" not in message.job


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
def test_none_lost_when_one_sync_moves_many_jobs(fn, job_events, batch_v1, namespace):
    count = 25
    jobs = [create(fn, **env(KUBESIM_SH="echo hi > /output/o.txt")) for _ in range(count)]
    ids = {job["id"] for job in jobs}

    def complete(job: Any) -> bool:
        return any(c.type == "Complete" and c.status == "True" for c in job.status.conditions or [])

    def all_complete() -> bool:  # every Job done before the one sync that finishes them all
        found = batch_v1.list_namespaced_job(namespace).items
        return len(found) >= count and all(complete(job) for job in found)

    wait_for(all_complete, what="every Job complete")
    report = fn.sync()
    assert report["transitions"].get("succeeded") == count, report
    job_events.until(
        lambda r: all(any(m.attributes["status"] == "succeeded" for m in r.of(i)) for i in ids),
        timeout=60,
    )
    for job_id in ids:
        statuses = job_events.statuses(job_id)
        assert statuses == ["created", "running", "cleaning", "succeeded"], (job_id, statuses)


def test_a_failed_create_is_announced_as_failed(fn, job_events, cluster_faults, namespace):
    # A cluster that refuses the Job: the create answers 500 and the record says failed.
    cluster_faults.inject_fault(
        verb="create", path=f"/apis/batch/v1/namespaces/{namespace}/jobs", status=500, count=1
    )
    status, body = fn.api("POST", "/batch/", json={"job_parameters": {"docker_image": "x"}})
    assert status == 500, body
    job_events.until(lambda r: any(m.attributes["status"] == "failed" for m in r.received))
    failed = next(m for m in job_events.received if m.attributes["status"] == "failed")
    assert job_events.statuses(failed.attributes["job_id"]) == ["created", "failed"]


def test_the_request_path_never_publishes(fn, reader):
    """Creates, syncs and kills write to Firestore only: with no trigger to call
    publish_job_events, nothing is published, and the functions never build a publisher."""
    job = create(fn, **env(KUBESIM_SH="sleep 600"))
    fn.sync()
    status, killed = fn.api("DELETE", f"/batch/{job['id']}")
    assert status == 200 and killed["data"]["status"] == "killed", killed
    assert "events" not in vars(default_backends())
    reader.pull_once()
    assert reader.of(job["id"]) == []


def test_without_the_topic_nothing_is_published(fn_store, reader, monkeypatch):
    reconfigure(monkeypatch, JOB_EVENTS_TOPIC="")
    assert fn_store.written(_event("j-none", None, _doc("j-none"))) == 200
    reader.pull_once()
    assert reader.of("j-none") == []


# -- the trigger function alone, with hand-built protobuf CloudEvents -----------------------


def _doc(job_id: str = "job-1", **changes) -> dict:
    """A job's document as stored, created at 1000 ms, running since 2000 ms."""
    job = Job(
        id=job_id,
        name=f"name-{job_id}",
        status=Status.RUNNING,
        created=1000,
        job_parameters={"docker_image": "alpine:3", "command": ["sh", "-c", "true"]},
        account_id="acct-ev",
        transitions=[{"at": 2000, "from": "created", "to": "running", "reason": "Deployed"}],
        updated=2000,
    )
    document = job.to_document()
    document.update(changes)
    return document


def _event(job_id: str, old: dict | None, new: dict | None) -> CloudEvent:
    at = datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)

    def version(fields):
        return None if fields is None else Version(fields, at, at)

    return written_event(
        project="local-test",
        database="(default)",
        collection="jobs",
        document_id=job_id,
        old=version(old),
        new=version(new),
        at=at,
    )


@pytest.fixture
def reader(store_env, events_topic, gcp_project):
    """The topic's messages, with no trigger stand-in: only what the test posts."""
    events = EventReader(gcp_project, events_topic)
    try:
        yield events
    finally:
        events.close()


@pytest.mark.parametrize("structured", [False, True], ids=["binary", "structured"])
def test_a_create_event_publishes_each_step_with_its_attributes(fn_store, reader, structured):
    job_id = f"j-{structured}"
    assert fn_store.written(_event(job_id, None, _doc(job_id)), structured=structured) == 200
    assert reader.statuses(job_id, until="running") == ["created", "running"]
    created, running = reader.of(job_id)
    assert created.attributes == {
        "job_id": job_id,
        "name": f"name-{job_id}",
        "status": "created",
        "previous_status": "",
        "event_time": "1970-01-01T00:00:01.000Z",
        "event": "status",
        "account_id": "acct-ev",
    }
    assert running.attributes["previous_status"] == "created"
    assert running.attributes["event_time"] == "1970-01-01T00:00:02.000Z"
    assert {created.ordering_key, running.ordering_key} == {job_id}
    assert created.job["status"] == "created" and running.job["status"] == "running"
    assert running.job["job_parameters"]["command"] == ["sh", "-c", "true"]
    # The data is the job as the API returns it (Job.to_api), whatever the wire format.
    expected = Job.from_document(_doc(job_id)).to_api()
    assert running.job == expected


def test_an_update_publishes_only_its_new_steps_and_a_redelivery_publishes_again(fn_store, reader):
    old = _doc("j-upd")
    records = [
        *old["transitions"],
        {"at": 3000, "from": "running", "to": "cleaning", "reason": "Exited"},
        {"at": 3000, "from": "cleaning", "to": "succeeded", "reason": "Output"},
    ]
    new = _doc("j-upd", status="succeeded", transitions=records, stop_time=3000)
    event = _event("j-upd", old, new)
    assert fn_store.written(event) == 200
    assert reader.statuses("j-upd", until="succeeded") == ["cleaning", "succeeded"]
    assert fn_store.written(event) == 200  # Eventarc delivers it again: at least once
    reader.until(lambda r: len(r.of("j-upd")) == 4)
    assert reader.statuses("j-upd") == ["cleaning", "succeeded", "cleaning", "succeeded"]
    assert reader.of("j-upd")[-1].job["stop_time"] == 3000


def test_deletes_and_writes_without_a_status_change_publish_nothing(fn_store, reader):
    doc = _doc("j-quiet")
    assert fn_store.written(_event("j-quiet", doc, None)) == 200
    bookkeeping = _doc("j-quiet", callback_attempts=1)
    assert fn_store.written(_event("j-quiet", doc, bookkeeping)) == 200
    # A later write of the same job is published: nothing came before it.
    killed = _doc(
        "j-quiet",
        status="killed",
        transitions=[*doc["transitions"], {"at": 4000, "from": "running", "to": "killed"}],
    )
    assert fn_store.written(_event("j-quiet", doc, killed)) == 200
    assert reader.statuses("j-quiet", until="killed") == ["killed"]


def test_a_failed_publish_answers_500_so_that_eventarc_delivers_again(
    fn_store, reader, events_topic, monkeypatch, caplog
):
    event = _event("j-fail", None, _doc("j-fail"))
    reconfigure(monkeypatch, JOB_EVENTS_TOPIC="no-such-topic")
    with caplog.at_level(logging.ERROR):
        assert fn_store.written(event) == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(getattr(r, "job_id", None) == "j-fail" for r in errors), errors
    reconfigure(monkeypatch, JOB_EVENTS_TOPIC=events_topic)
    assert fn_store.written(event) == 200  # the redelivery, once the topic is there
    assert reader.statuses("j-fail", until="running") == ["created", "running"]


def test_later_messages_of_a_job_go_after_a_failed_one(gcp_project, events_topic, reader):
    """The ordering key is resumed after a failure, or the client refuses the rest (the
    redelivery, in a warm function, included)."""
    publisher = Publisher("no-such-topic", gcp_project)
    job = Job(id="j-1", name="n", status=Status.RUNNING, created=1, job_parameters={})
    with pytest.raises(PublishError):
        publisher.publish(job, [Step("created", "running", 2)])
    publisher._path = f"projects/{gcp_project}/topics/{events_topic}"
    publisher.publish(job, [Step("running", "killed", 3)])
    assert reader.statuses("j-1", until="killed") == ["killed"]
    assert json.loads(reader.of("j-1")[0].data)["status"] == "killed"


def test_the_steps_of_merged_writes_are_all_found():
    """A listener may see two writes as one change: each new record is a step."""
    created = _doc("j-m", status="created", transitions=[])
    killed = _doc(
        "j-m",
        status="killed",
        transitions=[*_doc()["transitions"], {"at": 5000, "from": "running", "to": "killed"}],
    )
    both = [Step("created", "running", 2000), Step("running", "killed", 5000)]
    assert steps(created, killed) == both
    assert steps(None, created) == [Step(None, "created", 1000)]
    assert steps(None, killed)[0] == Step(None, "created", 1000)
    assert steps(killed, killed) == []
