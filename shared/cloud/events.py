"""Status notifications on Pub/Sub: one message per status step of a job, published after
the Firestore write that made it (JobStore calls `JobEvents.announce`).

A message's data is the job as the API returns it (JSON); its attributes are job_id, name,
status, previous_status ("" for `created`), account_id (when set) and event_time (RFC 3339,
the step's time). The ordering key is the job id, so one process's messages about a job
arrive in order (a job's steps are written by several functions: a reader that needs a
total order compares event_time, or the job's `transitions`).

Publishing never holds up a request, and never fails a status change: messages are handed
to a background thread (which also builds the client, so a cold start does not import
Pub/Sub on the request's path), and `flush` (called once per request, before the function
returns) waits for them, bounded. A publish that fails after the client's retries is logged
at ERROR with the job id, and its ordering key resumed so that later messages still go.
"""

from __future__ import annotations

import datetime
import functools
import json
import logging
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any

from shared.model.job import Job

log = logging.getLogger(__name__)

PUBLISH_RETRY_SECONDS = 10.0  # the client retries a publish this long before it gives up
FLUSH_SECONDS = 12.0  # the longest a function waits for its publishes before it returns


@dataclass(frozen=True)
class Step:
    """One status change as written: (previous status or None, status, epoch ms)."""

    previous: str | None
    status: str
    at: int


def rfc3339(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def message(job: Job, step: Step) -> tuple[bytes, dict[str, str]]:
    """The data and attributes announcing `step`. A step recorded on the way to the job's
    status (cleaning, in a write that went on to succeeded) carries that step's status."""
    body = job.to_api()
    body["status"] = step.status
    attributes = {
        "job_id": job.id,
        "name": job.name,
        "status": step.status,
        "previous_status": step.previous or "",
        "event_time": rfc3339(step.at),
    }
    if job.account_id is not None:
        attributes["account_id"] = job.account_id
    return json.dumps(body, ensure_ascii=False).encode(), attributes


def steps_of(records: Sequence[dict[str, Any]]) -> list[Step]:
    """The steps of a write, from the transition records it added."""
    return [Step(record["from"], record["to"], int(record["at"])) for record in records]


class JobEvents:
    """The publisher of one topic; its Pub/Sub client is made on the first message."""

    def __init__(self, topic: str, project: str | None) -> None:
        self.topic = topic
        self.project = project
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish")
        self._lock = threading.Lock()
        self._handed: list[Future[Any]] = []  # to the worker; each yields a Pub/Sub future
        self._client: Any = None
        self._path = ""

    def announce(self, job: Job, steps: Sequence[Step]) -> None:
        """Publish one message per step, in order, in the background."""
        for step in steps:
            data, attributes = message(job, step)
            handed = self._worker.submit(self._publish, data, attributes)
            with self._lock:
                self._handed.append(handed)

    def flush(self, timeout: float = FLUSH_SECONDS) -> int:
        """Wait (at most `timeout` seconds) for every message announced so far to be
        published or given up on; returns how many were still pending at the deadline."""
        with self._lock:
            handed, self._handed = self._handed, []
        if not handed:
            return 0
        deadline = time.monotonic() + timeout
        done, pending = wait_futures(handed, timeout=timeout)
        published = [f.result() for f in done if f.exception() is None and f.result() is not None]
        _, unpublished = wait_futures(published, timeout=max(0.0, deadline - time.monotonic()))
        left = len(pending) + len(unpublished)
        if left:
            log.error("%d job events were not published within %.0f s", left, timeout)
        return left

    def _publish(self, data: bytes, attributes: dict[str, str]) -> Any:
        try:
            client = self._connect()
            from google.api_core.retry import Retry, if_transient_error

            retry = Retry(predicate=if_transient_error, timeout=PUBLISH_RETRY_SECONDS)
            future = client.publish(
                self._path,
                data,
                ordering_key=attributes["job_id"],
                retry=retry,
                timeout=PUBLISH_RETRY_SECONDS,
                **attributes,
            )
        except Exception:
            self._failed(attributes, None)
            return None
        future.add_done_callback(functools.partial(self._done, attributes))
        return future

    def _done(self, attributes: dict[str, str], future: Any) -> None:
        if future.exception() is not None:
            self._failed(attributes, future.exception())

    def _failed(self, attributes: dict[str, str], error: BaseException | None) -> None:
        """Logged with the job id; the ordering key is resumed, or the client would refuse
        every later message about this job."""
        log.error(
            "could not publish the job's %s event",
            attributes["status"],
            exc_info=error or True,
            extra={"job_id": attributes["job_id"], "topic": self.topic},
        )
        if self._client is not None:
            try:
                self._client.resume_publish(self._path, attributes["job_id"])
            except Exception:  # noqa: BLE001 - nothing to resume
                log.debug("resume_publish failed", exc_info=True)

    def _connect(self) -> Any:
        if self._client is None:
            from google.cloud import pubsub_v1

            from shared.settings import topic_path

            project = self.project
            if project is None and not self.topic.startswith("projects/"):
                import google.auth

                project = google.auth.default()[1]
            self._path = topic_path(self.topic, project)
            self._client = pubsub_v1.PublisherClient(
                batch_settings=pubsub_v1.types.BatchSettings(max_latency=0.002),
                publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True),
            )
        return self._client
