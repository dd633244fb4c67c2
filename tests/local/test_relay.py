"""The Eventarc relay: object finalized in fake-gcs-server -> Pub/Sub -> CloudEvent over HTTP."""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.local import relay
from infra.local.procs import ServerProcess, free_port, spawn, tcp_open, wait_until_ready
from infra.local.pubsub import ensure_topic_and_subscription
from tests.fixtures.waiting import wait_for
from tests.local.httpcapture import Capture, capture_server

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def subscription(gcs, gcp_project) -> str:
    """A fresh subscription on the notifications topic: it sees only this test's objects."""
    return ensure_topic_and_subscription(gcp_project, gcs.topic, f"relay-{uuid.uuid4().hex[:8]}")


@pytest.fixture
def capture() -> Iterator[Capture]:
    with capture_server() as server:
        yield server


def start_relay(subscription: str, target: str, log_dir: Path, *extra: str) -> ServerProcess:
    return spawn(
        "relay",
        [
            sys.executable,
            "-m",
            "infra.local.relay",
            f"--subscription={subscription}",
            f"--target={target}",
            "--initial-backoff=0.05",
            "--max-backoff=0.2",
            *extra,
        ],
        log_dir=log_dir,
        cwd=REPO_ROOT,
    )


@pytest.fixture
def relay_to_capture(subscription, capture, tmp_path) -> Iterator[ServerProcess]:
    proc = start_relay(subscription, capture.url, tmp_path, "--max-attempts=4")
    yield proc
    proc.stop()


def test_finalized_object_arrives_as_binary_cloudevent(
    relay_to_capture, capture, storage_client, bucket
):
    blob = storage_client.bucket(bucket).blob("dir/job-output.zip")
    blob.upload_from_string(b"PK\x05\x06" + b"\0" * 18, content_type="application/zip")

    capture.wait_for(lambda requests: len(requests) >= 1)
    request = capture.requests[0]
    headers = request.headers
    assert headers["ce-type"] == "google.cloud.storage.object.v1.finalized"
    assert headers["ce-source"] == f"//storage.googleapis.com/projects/_/buckets/{bucket}"
    assert headers["ce-subject"] == "objects/dir/job-output.zip"
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"]
    assert headers["ce-time"].startswith(time.strftime("%Y-"))
    assert headers["content-type"].startswith("application/json")
    body = json.loads(request.body)
    assert body["name"] == "dir/job-output.zip"
    assert body["bucket"] == bucket
    assert body["size"] == "22"
    assert body["contentType"] == "application/zip"
    assert body["generation"] == str(storage_client.bucket(bucket).get_blob(blob.name).generation)


def test_non_2xx_is_retried_until_delivered(relay_to_capture, capture, storage_client, bucket):
    capture.statuses[:] = [500, 503]
    storage_client.bucket(bucket).blob("retry.zip").upload_from_string(b"x")

    capture.wait_for(lambda requests: len(requests) >= 3)
    ids = {request.headers["ce-id"] for request in capture.requests}
    assert len(ids) == 1, "every retry carries the same event id"
    time.sleep(0.5)  # a delivered event is not sent again
    assert len(capture.requests) == 3


def test_gives_up_after_max_attempts_with_a_log_line(
    relay_to_capture, capture, storage_client, bucket
):
    capture.statuses[:] = [500] * 10
    storage_client.bucket(bucket).blob("doomed.zip").upload_from_string(b"x")

    capture.wait_for(lambda requests: len(requests) >= 4)
    wait_for(lambda: "giving up" in relay_to_capture.log_path.read_text(), what="giving up")
    line = next(
        json.loads(text)
        for text in relay_to_capture.log_path.read_text().splitlines()
        if "giving up" in text
    )
    assert line["severity"] == "ERROR"
    assert line["subject"] == "objects/doomed.zip"
    assert len(capture.requests) == 4


def test_cloudevent_function_receives_event(subscription, storage_client, bucket, tmp_path):
    """The real functions-framework accepts what the relay sends, as a CloudEvent."""
    sink = tmp_path / "events.jsonl"
    port = free_port()
    function = spawn(
        "event-sink",
        [
            sys.executable,
            "-m",
            "functions_framework",
            f"--source={REPO_ROOT / 'tests/local/event_sink/main.py'}",
            "--target=record",
            "--host=127.0.0.1",
            f"--port={port}",
        ],
        log_dir=tmp_path,
        env={**__import__("os").environ, "SINK_FILE": str(sink)},
    )
    proc = start_relay(subscription, f"http://127.0.0.1:{port}/", tmp_path)
    try:
        wait_until_ready(function, tcp_open(port), 30)
        storage_client.bucket(bucket).blob("a b/ü.zip").upload_from_string(b"data")
        wait_for(lambda: sink.exists() and sink.read_text().strip(), what="the delivered event")
        event = json.loads(sink.read_text().splitlines()[0])
        assert event["attributes"]["type"] == relay.FINALIZED
        assert event["attributes"]["subject"] == "objects/a b/ü.zip"
        assert event["attributes"]["bucket"] == bucket
        assert event["data"]["name"] == "a b/ü.zip"
    finally:
        proc.stop()
        function.stop()


def test_a_stop_does_not_wait_for_a_delivery_in_flight(
    subscription, capture, storage_client, bucket, tmp_path
):
    capture.delay = 30  # the function holds the delivery for half a minute
    proc = start_relay(subscription, capture.url, tmp_path)
    try:
        storage_client.bucket(bucket).blob("slow.zip").upload_from_string(b"x")
        capture.wait_for(lambda requests: len(requests) >= 1)
        started = time.monotonic()
        clean = proc.stop(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        proc.stop()
    assert elapsed < 15, elapsed  # not the half minute a call may hang
    assert clean, f"the relay needed SIGKILL; log:\n{proc.log_tail()}"
    assert "relay stopped" in proc.log_tail()


def test_a_stop_is_prompt_while_pubsub_is_out_of_reach(tmp_path):
    env = {**os.environ, "PUBSUB_EMULATOR_HOST": f"127.0.0.1:{free_port()}"}
    proc = spawn(
        "relay",
        [
            sys.executable,
            "-m",
            "infra.local.relay",
            "--subscription=projects/nowhere/subscriptions/none",
            "--target=http://127.0.0.1:9/",
        ],
        log_dir=tmp_path,
        cwd=REPO_ROOT,
        env=env,
    )
    try:
        wait_for(lambda: "relaying Cloud Storage events" in proc.log_tail(), what="the relay")
        time.sleep(1.5)  # pulling, and failing, for a while
        started = time.monotonic()
        clean = proc.stop(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        proc.stop()
    assert elapsed < 15, elapsed  # not the half minute a call may hang
    assert clean, f"the relay needed SIGKILL; log:\n{proc.log_tail()}"


def test_other_notification_types_are_not_relayed():
    data = json.dumps({"name": "x", "bucket": "b"}).encode()
    assert relay.to_cloudevent({"eventType": "OBJECT_DELETE"}, data, "1") is None
    event = relay.to_cloudevent(
        {"eventType": "OBJECT_FINALIZE", "bucketId": "b", "objectId": "x"}, data, "7"
    )
    assert event is not None
    assert event["id"] == "7"
    assert event["subject"] == "objects/x"


def test_backoff_doubles_up_to_the_cap():
    policy = relay.RetryPolicy(initial_backoff=0.5, max_backoff=3)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1, 2, 3, 3]


def test_pubsub_messages_arrive_as_message_published_events(
    gcp_project, pubsub_emulator, capture, tmp_path
):
    """--events=pubsub: any message of a topic, as an Eventarc Pub/Sub trigger posts it; a
    non-2xx answer is retried with the same event."""
    from google.cloud import pubsub_v1

    topic = f"relay-events-{uuid.uuid4().hex[:8]}"
    subscription = ensure_topic_and_subscription(gcp_project, topic, f"{topic}-sub")
    topic_path = f"projects/{gcp_project}/topics/{topic}"
    capture.statuses = [500]
    proc = start_relay(
        subscription, capture.url, tmp_path, "--events=pubsub", f"--topic={topic_path}"
    )
    try:
        publisher = pubsub_v1.PublisherClient()
        publisher.publish(topic_path, b'{"id": "j"}', job_id="j", status="killed").result()
        capture.wait_for(lambda requests: len(requests) >= 2)
    finally:
        proc.stop()
    first, second = capture.requests[:2]
    assert first.body == second.body
    assert first.headers["ce-type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    assert first.headers["ce-source"] == f"//pubsub.googleapis.com/{topic_path}"
    assert first.headers["ce-id"] == second.headers["ce-id"]
    data = json.loads(first.body)
    assert data["subscription"] == subscription
    message = data["message"]
    assert base64.b64decode(message["data"]) == b'{"id": "j"}'
    assert message["attributes"] == {"job_id": "j", "status": "killed"}
    assert message["messageId"] == first.headers["ce-id"]
    assert message["publishTime"].endswith("Z")
