"""Job records in the Firestore emulator: unique names, atomic checked transitions."""

from __future__ import annotations

import threading
import uuid

import pytest

from shared.cloud.store import JobStore, NameTakenError
from shared.errors import TransitionRefusedError
from shared.model.job import Job, Status, now_ms


@pytest.fixture
def store(firestore_client, collection_prefix) -> JobStore:
    return JobStore(firestore_client, f"{collection_prefix}jobs")


def new_job(name: str | None = None, **fields) -> Job:
    return Job(
        id=str(uuid.uuid4()),
        name=name or f"job-{uuid.uuid4().hex[:8]}",
        status=Status.CREATED,
        created=now_ms(),
        job_parameters={"docker_image": "alpine"},
        **fields,
    )


def test_create_and_get_round_trip(store):
    job = new_job(account_id="acct")
    store.create(job)
    stored = store.get(job.id)
    assert stored == job
    assert store.get(str(uuid.uuid4())) is None


def test_names_are_unique_and_a_refused_create_writes_nothing(store):
    first = new_job("same-name")
    store.create(first)
    second = new_job("same-name")
    with pytest.raises(NameTakenError):
        store.create(second)
    assert store.get(second.id) is None


def test_concurrent_creates_of_one_name_let_exactly_one_win(store):
    jobs = [new_job("contested") for _ in range(8)]
    outcomes: list[str] = []

    def attempt(job: Job) -> None:
        try:
            store.create(job)
            outcomes.append("created")
        except NameTakenError:
            outcomes.append("taken")

    threads = [threading.Thread(target=attempt, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["created"] + ["taken"] * 7
    assert sum(store.get(job.id) is not None for job in jobs) == 1


def test_transition_records_each_step_and_stops_at_final(store):
    job = new_job()
    store.create(job)
    store.transition(job.id, Status.RUNNING, reason="deployed", updates={"start_time": 5})
    done = store.transition(job.id, Status.CLEANING, reason="job complete")
    assert done.status is Status.CLEANING
    final = store.transition(job.id, Status.SUCCEEDED, reason="output uploaded")
    assert final.stop_time is not None
    stored = store.get(job.id)
    assert stored is not None
    assert stored.status is Status.SUCCEEDED
    assert stored.start_time == 5
    assert [(t["from"], t["to"], t["reason"]) for t in stored.transitions] == [
        ("created", "running", "deployed"),
        ("running", "cleaning", "job complete"),
        ("cleaning", "succeeded", "output uploaded"),
    ]
    with pytest.raises(TransitionRefusedError):
        store.transition(job.id, Status.FAILED, reason="late")


def test_transition_not_in_the_table_is_refused(store):
    job = new_job()
    store.create(job)
    with pytest.raises(TransitionRefusedError):
        store.transition(job.id, Status.SUCCEEDED, reason="skip ahead")
    with pytest.raises(TransitionRefusedError):
        store.transition(job.id, Status.KILLED, reason="kill", expect={Status.RUNNING})


def test_a_kill_racing_a_sync_is_never_overwritten(store):
    job = new_job()
    store.create(job)
    store.transition(job.id, Status.RUNNING, reason="deployed")
    results: dict[str, str] = {}

    def change(target: Status, who: str) -> None:
        try:
            store.transition(job.id, target, reason=who)
            results[who] = "won"
        except TransitionRefusedError:
            results[who] = "refused"

    racers = [
        threading.Thread(target=change, args=(Status.KILLED, "kill")),
        threading.Thread(target=change, args=(Status.CLEANING, "sync")),
    ]
    for racer in racers:
        racer.start()
    for racer in racers:
        racer.join()
    stored = store.get(job.id)
    assert stored is not None
    assert len(stored.transitions) >= 2
    if results["kill"] == "won" and results["sync"] == "won":
        # The sync moved it to cleaning first; the kill (allowed from cleaning) came second.
        assert [t["to"] for t in stored.transitions] == ["running", "cleaning", "killed"]
    else:
        assert sorted(results.values()) == ["refused", "won"]
        winner = "kill" if results["kill"] == "won" else "sync"
        assert stored.transitions[-1]["reason"] == winner


def test_list_by_status_and_account(store):
    a = new_job(account_id="a")
    b = new_job(account_id="b")
    c = new_job(account_id="a")
    for job in (a, b, c):
        store.create(job)
    store.transition(c.id, Status.RUNNING, reason="deployed")
    assert {j.id for j in store.find(Status.CREATED)} == {a.id, b.id}
    assert [j.id for j in store.find(Status.CREATED, account_id="a")] == [a.id]
    assert {j.id for j in store.unfinished()} == {a.id, b.id, c.id}


def test_update_only_applies_in_the_expected_status(store):
    job = new_job()
    store.create(job)
    assert store.update(job.id, {"output_file_url": "u"}, status=Status.CREATED)
    assert not store.update(job.id, {"output_file_url": "v"}, status=Status.RUNNING)
    stored = store.get(job.id)
    assert stored is not None and stored.output_file_url == "u"
