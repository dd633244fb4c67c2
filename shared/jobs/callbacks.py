"""Webhooks: a job created with `callback_url` is POSTed to it once it reaches a final
status, by the function that receives the status notifications (never inside a request).

The body is the notification's data (the job as the API returns it), signed:
`X-Task-Runner-Signature: sha256=<hex HMAC-SHA256 of the body with CALLBACK_SECRET>`, and
`X-Task-Runner-Event-Id: <job id>:<status>`, the same on every retry and for a duplicate
notification, so a receiver can drop what it has seen. A failed delivery (no 2xx: a 3xx
is one, since redirects are not followed) is raised, so Eventarc delivers the notification
again with backoff; once CALLBACK_RETRY_SECONDS have passed since the status changed, the
job records `callback_status: failed` and the event is dropped. Idempotent: a job whose
callback was delivered, or given up on, is not POSTed again.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
from typing import Any

from shared.cloud import webhooks
from shared.cloud.backends import Backends
from shared.contract.addresses import AddressRefusedError, check_url
from shared.errors import InvalidParameters
from shared.logs import log_context
from shared.model.job import FINAL, Status, now_ms
from shared.settings import Settings

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Task-Runner-Signature"
EVENT_ID_HEADER = "X-Task-Runner-Event-Id"
DELIVERED = "delivered"
FAILED = "failed"


class CallbackFailedError(Exception):
    """This attempt failed and there is time left: the event must be delivered again."""


def check(url: str, settings: Settings) -> None:
    """At create: InvalidParameters naming `callback_url` unless callbacks are delivered
    by this deployment (they are driven by the status notifications: no JOB_EVENTS_TOPIC,
    no callbacks) and the URL's host resolves only to addresses it may POST to.

    CALLBACK_SECRET is not needed here: only the function that signs holds it."""
    if settings.events_topic is None:
        raise InvalidParameters(data={"callback_url": "This service does not deliver callbacks"})
    try:
        check_url(url, allow_private=settings.allow_private_callbacks)
    except AddressRefusedError as refused:
        raise InvalidParameters(data={"callback_url": f"Refused: {refused}"}) from None


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _event_time_ms(text: str) -> int | None:
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return int(moment.timestamp() * 1000)


def handle(event: dict[str, Any], *, backends: Backends) -> str:
    """Act on one messagePublished event's data; returns what was done (for the tests)."""
    message = event.get("message") or {}
    attributes: dict[str, str] = message.get("attributes") or {}
    status, job_id = attributes.get("status", ""), attributes.get("job_id", "")
    if status not in {s.value for s in FINAL} or not job_id:
        return "ignored"
    body = base64.b64decode(message.get("data") or "")
    try:
        announced = json.loads(body)
    except ValueError:
        log.warning("ignored: the message's data is not JSON", extra={"job_id": job_id})
        return "ignored"
    if not isinstance(announced, dict) or not announced.get("callback_url"):
        return "ignored"
    with log_context(job_id=job_id, job_name=attributes.get("name")):
        return _deliver(job_id, Status(status), body, attributes, backends)


def _deliver(
    job_id: str, status: Status, body: bytes, attributes: dict[str, str], backends: Backends
) -> str:
    settings, store = backends.settings, backends.store
    job = store.get(job_id)
    if job is None or job.callback_url is None:
        log.info("ignored: no such job, or no callback")
        return "ignored"
    if job.callback_status in (DELIVERED, FAILED):
        log.info("ignored: the callback was %s already", job.callback_status)
        return job.callback_status
    if settings.callback_secret is None:
        # Deployed without its secret: nothing it sent could be verified. A configuration
        # error, retried, so that fixing the deployment in CALLBACK_RETRY_SECONDS delivers.
        log.critical("cannot sign the callback: CALLBACK_SECRET is not set")
        raise CallbackFailedError("CALLBACK_SECRET is not set")
    headers = {
        SIGNATURE_HEADER: sign(body, settings.callback_secret),
        EVENT_ID_HEADER: f"{job_id}:{status.value}",
        "User-Agent": "kubernetes-task-runner-callbacks",
    }
    answer = webhooks.post(
        job.callback_url, body, headers, allow_private=settings.allow_private_callbacks
    )
    attempts = job.callback_attempts + 1
    record: dict[str, Any] = {"callback_attempts": attempts, "callback_answer": answer.detail}
    if answer.delivered:
        record |= {"callback_status": DELIVERED, "callback_time": now_ms()}
        store.update(job_id, record, status=job.status)
        log.info("callback delivered", extra={"attempts": attempts, "answer": answer.detail})
        return DELIVERED
    changed_at = _event_time_ms(attributes.get("event_time", "")) or job.stop_time or now_ms()
    if now_ms() >= changed_at + settings.callback_retry * 1000:
        record |= {"callback_status": FAILED, "callback_time": now_ms()}
        store.update(job_id, record, status=job.status)
        log.error("callback given up after %d attempts", attempts, extra={"answer": answer.detail})
        return FAILED
    store.update(job_id, record, status=job.status)
    log.warning("callback failed; it will be retried", extra={"answer": answer.detail})
    raise CallbackFailedError(f"callback answered {answer.detail}")
