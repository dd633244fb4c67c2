"""Webhooks: a job's callback_url gets the job, signed, once the job is final. The status
notification is pulled from the events topic and handed to deliver_callbacks as Eventarc
would; the receiver is a real HTTP server on loopback."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.fixtures.api import CALLBACK_SECRET
from tests.fixtures.network import HIDDEN_PRIVATE_HOSTS
from tests.robustness.helpers import reconfigure


@dataclass
class Receiver:
    url: str = ""
    answers: list[tuple[int, dict[str, str]]] = field(default_factory=list)  # then 204
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                state.requests.append(
                    (self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                )
                status, headers = state.answers.pop(0) if state.answers else (204, {})
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/job?source=test"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def create(fn, callback_url: str, **params: Any) -> tuple[int, dict[str, Any]]:
    body = {
        "callback_url": callback_url,
        "job_parameters": {"docker_image": "alpine:3", **params},
    }
    return fn.api("POST", "/batch/", json=body)


def killed_job(fn, job_events, url: str):
    """A job with a callback, killed (its final status); the `killed` notification."""
    status, body = create(fn, url, environment_variables={"KUBESIM_SH": "sleep 600"})
    assert status == 200, body
    job = body["data"]
    assert job["callback_url"] == url
    assert fn.api("DELETE", f"/batch/{job['id']}")[0] == 200
    job_events.statuses(job["id"], until="killed")
    return job, job_events.of(job["id"])[-1]


def test_delivered_once_signed_with_the_secret(fn, job_events, receiver):
    job, killed = killed_job(fn, job_events, receiver.url)
    # The notifications before the final one deliver nothing.
    for earlier in job_events.of(job["id"])[:-1]:
        assert fn.deliver(earlier.as_event_data()) == 200
    assert receiver.requests == []
    assert fn.deliver(killed.as_event_data(), event_id=killed.message_id) == 200
    ((path, headers, body),) = receiver.requests
    assert path == "/hooks/job?source=test"
    assert body == killed.data
    assert json.loads(body)["status"] == "killed" and json.loads(body)["id"] == job["id"]
    expected = hmac.new(CALLBACK_SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["x-task-runner-signature"] == f"sha256={expected}"
    assert headers["x-task-runner-event-id"] == f"{job['id']}:killed"
    assert headers["content-type"] == "application/json"
    record = fn.job(job["id"])
    assert record["callback_status"] == "delivered"
    assert record["callback_attempts"] == 1
    # A redelivery (at least once) after the delivery does nothing.
    assert fn.deliver(killed.as_event_data(), event_id="again") == 200
    assert len(receiver.requests) == 1


def test_a_500_is_retried_with_the_same_event_id(fn, job_events, receiver):
    job, killed = killed_job(fn, job_events, receiver.url)
    receiver.answers = [(500, {})]
    assert fn.deliver(killed.as_event_data()) == 500  # raised: Eventarc delivers it again
    record = fn.job(job["id"])
    assert "callback_status" not in record and record["callback_attempts"] == 1
    assert record["callback_answer"].startswith("500")
    assert fn.deliver(killed.as_event_data()) == 200
    first, second = receiver.requests
    assert first[2] == second[2]
    assert first[1]["x-task-runner-event-id"] == second[1]["x-task-runner-event-id"]
    record = fn.job(job["id"])
    assert record["callback_status"] == "delivered" and record["callback_attempts"] == 2


def test_given_up_after_callback_retry_seconds(fn, job_events, receiver, monkeypatch):
    reconfigure(monkeypatch, CALLBACK_RETRY_SECONDS="60")
    job, killed = killed_job(fn, job_events, receiver.url)
    receiver.answers = [(503, {})] * 10
    assert fn.deliver(killed.as_event_data()) == 500
    assert fn.deliver(killed.aged(61).as_event_data()) == 200  # given up: the event is done
    record = fn.job(job["id"])
    assert record["callback_status"] == "failed"
    assert record["callback_attempts"] == 2
    assert record["callback_answer"].startswith("503")
    assert fn.deliver(killed.as_event_data()) == 200
    assert len(receiver.requests) == 2


def test_a_redirect_is_not_followed(fn, job_events, receiver, monkeypatch):
    reconfigure(monkeypatch, CALLBACK_RETRY_SECONDS="60")
    job, killed = killed_job(fn, job_events, receiver.url)
    elsewhere = receiver.url.replace("/hooks/job", "/followed")
    receiver.answers = [(307, {"Location": elsewhere}), (302, {"Location": elsewhere})]
    assert fn.deliver(killed.as_event_data()) == 500
    assert fn.deliver(killed.aged(61).as_event_data()) == 200
    assert [path for path, _, _ in receiver.requests] == ["/hooks/job?source=test"] * 2
    record = fn.job(job["id"])
    assert record["callback_status"] == "failed"
    assert "redirects are not followed" in record["callback_answer"]


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://169.254.169.254/computeMetadata/v1/",
        "https://10.1.2.3/hook",
        "https://192.168.0.1/hook",
        "https://localhost:8443/hook",
        "https://[::1]/hook",
        "https://[::ffff:169.254.169.254]/hook",
        *(f"https://{host}/hook" for host in HIDDEN_PRIVATE_HOSTS),
        "http://93.184.216.34/hook",  # http: only with ALLOW_PRIVATE_CALLBACKS
    ],
)
def test_private_addresses_are_refused_at_create(fn_store, monkeypatch, url):
    reconfigure(monkeypatch, ALLOW_PRIVATE_CALLBACKS="0")
    status, body = create(fn_store, url)
    assert status == 400, body
    assert body["error"] == "InvalidParameters"
    assert body["data"]["callback_url"].startswith("Refused: ")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://example.com/x", "Must be an https:// URL"),
        ("https://", "Must be an https:// URL"),
        (42, "Must be an https:// URL"),
        ("https://user:pw@example.com/", "Must not hold credentials"),
        ("https://example.com/a b", "without spaces or controls"),
    ],
)
def test_malformed_callback_urls(fn_store, value, message):
    status, body = create(fn_store, value)
    assert status == 400, body
    assert message in body["data"]["callback_url"]


def test_refused_without_notifications(fn_store, monkeypatch, receiver):
    reconfigure(monkeypatch, JOB_EVENTS_TOPIC="")
    status, body = create(fn_store, receiver.url)
    assert status == 400, body
    assert body["data"]["callback_url"] == "This service does not deliver callbacks"


def test_without_the_secret_nothing_is_sent_and_the_event_is_retried(
    fn, job_events, receiver, monkeypatch, caplog
):
    """Only the delivering function holds CALLBACK_SECRET: the API accepts the job."""
    job, killed = killed_job(fn, job_events, receiver.url)
    reconfigure(monkeypatch, CALLBACK_SECRET="")
    with caplog.at_level(logging.CRITICAL):
        assert fn.deliver(killed.as_event_data()) == 500
    assert receiver.requests == []
    assert any("CALLBACK_SECRET" in r.getMessage() for r in caplog.records)
    assert "callback_status" not in fn.job(job["id"])


def test_the_address_is_checked_again_when_delivering(fn, job_events, receiver, monkeypatch):
    job, killed = killed_job(fn, job_events, receiver.url)
    reconfigure(monkeypatch, ALLOW_PRIVATE_CALLBACKS="0", CALLBACK_RETRY_SECONDS="60")
    assert fn.deliver(killed.aged(61).as_event_data()) == 200
    assert receiver.requests == []
    record = fn.job(job["id"])
    assert record["callback_status"] == "failed"
    assert record["callback_answer"].startswith("refused: ")


def test_a_job_without_callback_is_not_read(fn, job_events):
    status, body = fn.api("POST", "/batch/", json={"job_parameters": {"docker_image": "x"}})
    assert status == 200
    assert "callback_url" not in body["data"]
    assert fn.api("DELETE", f"/batch/{body['data']['id']}")[0] == 200
    job_events.statuses(body["data"]["id"], until="killed")
    assert fn.deliver(job_events.of(body["data"]["id"])[-1].as_event_data()) == 200
    assert "callback_status" not in fn.job(body["data"]["id"])
