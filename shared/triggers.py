"""The event-triggered functions' handlers: an object finalized in the jobs bucket, a
Kubernetes event that may end a job, a status notification to deliver as a callback, a job
document written. Each calls one
function of the job services.

A handler raises what is worth another delivery: the function then answers 500 and
Eventarc delivers the event again. Anything else is logged and the event dropped."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shared import logs
from shared.cloud.backends import Backends
from shared.errors import BucketError, ClusterApiError, StoreError
from shared.jobs import callbacks, failures, finalize, notify

log = logging.getLogger(__name__)


def object_finalized(data: dict[str, Any], backends: Backends) -> str:
    """An object of the jobs bucket landed: a job's output, input or submission."""
    logs.configure_once(backends.settings.log_level)
    return _again_if_transient(
        "finalize", lambda: finalize.handle(data, backends=backends), "cleanup pending"
    )


def cluster_event(event: dict[str, Any], backends: Backends) -> str:
    """A Kubernetes event that may end a job (its log sink's message): reconcile that job.
    A transient failure is raised, for the event to come again; the sync is the net."""
    logs.configure_once(backends.settings.log_level)
    return _again_if_transient(
        "reconciling the job", lambda: failures.handle(event, backends), "left to the sync"
    )


def job_event(event: dict[str, Any], backends: Backends) -> str:
    """A status notification (Pub/Sub messagePublished): deliver the job's callback if it
    reached a final status. A failed delivery is raised, so Eventarc delivers the event
    again with backoff, until CALLBACK_RETRY_SECONDS after the status; then it is recorded."""
    logs.configure_once(backends.settings.log_level)
    try:
        return callbacks.handle(event, backends=backends)
    except StoreError:
        log.exception("callback bookkeeping failed; the event will be delivered again")
        raise


def job_written(data: bytes, backends: Backends) -> str:
    """A write of a job's document (Firestore's trigger): publish its status steps. A
    failed publish is raised, so the function answers 500 and Eventarc delivers the event
    again (consumers drop the messages they have seen)."""
    logs.configure_once(backends.settings.log_level)
    return notify.handle(data, backends=backends)


def _again_if_transient(what: str, handle: Callable[[], str], left: str) -> str:
    """`handle()`; a failure of Firestore or Cloud Storage, or a transient one of the
    cluster, is raised (the event comes again); the cluster's refusal is left to the sync."""
    try:
        return handle()
    except (StoreError, BucketError):
        log.exception("%s failed; the event will be delivered again", what)
        raise
    except ClusterApiError as error:
        if error.transient:
            log.exception("%s failed; the event will be delivered again", what)
            raise
        log.exception("%s could not finish; the sync will", what)
        return left
