"""The stand-in of Eventarc's Firestore trigger: writes of a collection in the Firestore
emulator -> protobuf `document.v1.written` CloudEvents POSTed over HTTP."""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local.firestore_trigger import WRITTEN, FirestoreTrigger
from infra.local.procs import spawn
from infra.local.relay import RetryPolicy
from shared.cloud.documents import decode_event
from tests.local.httpcapture import Capture, capture_server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def capture() -> Iterator[Capture]:
    with capture_server() as server:
        yield server


@pytest.fixture
def collection(firestore_emulator) -> str:
    return f"trigger-{uuid.uuid4().hex[:8]}"


def test_each_write_after_the_baseline_is_one_protobuf_event(
    firestore_client, gcp_project, collection, capture
):
    jobs = firestore_client.collection(collection)
    jobs.document("before").set({"status": "running"})  # there at the start: the baseline
    trigger = FirestoreTrigger(gcp_project, collection, capture.url, RetryPolicy())
    trigger.start()
    try:
        jobs.document("j").set({"status": "created", "transitions": [], "n": 1})
        capture.wait_for(lambda requests: len(requests) == 1)
        record = {"from": "created", "to": "running", "at": 2}
        jobs.document("j").update({"status": "running", "transitions": [record]})
        capture.wait_for(lambda requests: len(requests) == 2)
        jobs.document("j").delete()
        capture.wait_for(lambda requests: len(requests) == 3)
    finally:
        trigger.stop()
    created, updated, deleted = capture.requests
    headers = created.headers
    assert headers["ce-type"] == WRITTEN
    assert headers["ce-source"] == (
        f"//firestore.googleapis.com/projects/{gcp_project}/databases/(default)"
    )
    assert headers["ce-subject"] == f"documents/{collection}/j"
    assert headers["content-type"] == "application/protobuf"
    assert headers["ce-document"] == f"{collection}/j"
    assert headers["ce-database"] == "(default)" and headers["ce-namespace"] == "(default)"
    assert headers["ce-project"] == gcp_project
    assert len({r.headers["ce-id"] for r in capture.requests}) == 3
    assert decode_event(created.body) == (
        None,
        {"status": "created", "transitions": [], "n": 1},
    )
    old, new = decode_event(updated.body)
    assert old == {"status": "created", "transitions": [], "n": 1}
    assert new == {"status": "running", "transitions": [record], "n": 1}
    assert decode_event(deleted.body) == (new, None)
    assert not [r for r in capture.requests if "before" in r.headers["ce-subject"]]


def test_a_non_2xx_answer_is_retried_with_the_same_event(
    firestore_client, gcp_project, collection, capture
):
    capture.statuses[:] = [500, 503]
    policy = RetryPolicy(initial_backoff=0.05, max_backoff=0.1)
    trigger = FirestoreTrigger(gcp_project, collection, capture.url, policy)
    trigger.start()
    try:
        firestore_client.collection(collection).document("r").set({"status": "created"})
        capture.wait_for(lambda requests: len(requests) >= 3)
    finally:
        trigger.stop()
    assert len({r.headers["ce-id"] for r in capture.requests}) == 1
    assert len({r.body for r in capture.requests}) == 1


def test_the_process_says_when_it_listens_and_stops_on_sigterm(
    firestore_emulator, gcp_project, collection, capture, tmp_path
):
    ready = tmp_path / "ready"
    proc = spawn(
        "firestore-trigger",
        [
            sys.executable,
            "-m",
            "infra.local.firestore_trigger",
            f"--project={gcp_project}",
            f"--collection={collection}",
            f"--target={capture.url}",
            f"--ready-file={ready}",
        ],
        log_dir=tmp_path,
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.alive() and time.monotonic() < deadline, proc.log_tail()
            time.sleep(0.05)
        assert proc.stop(timeout=5), f"needed SIGKILL; log:\n{proc.log_tail()}"
    finally:
        proc.stop()
    assert "trigger stopped" in proc.log_tail()
