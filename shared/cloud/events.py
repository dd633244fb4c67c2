"""Status notifications on Pub/Sub: one message per status step of a job, published by the
function that Firestore's write trigger calls (`publish_job_events`), never on a request's
path: a status write is announced once it is stored, even when the function that wrote it
dies right after.

A message's data is the job as the API returns it (JSON); its attributes are job_id, name,
status, previous_status ("" for `created`), account_id (when set) and event_time (RFC 3339,
the step's time). The ordering key is the job id: the steps of one write go in order.
Eventarc may deliver two writes' events out of order, and again (at least once), so a
reader that needs a total order compares event_time, or the job's `transitions`.

`Publisher.publish` waits for its messages and raises PublishError when one could not be
published (after the client's retries), so that the trigger answers non-2xx and Eventarc
delivers the event again.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shared.model.job import Job

PUBLISH_RETRY_SECONDS = 10.0  # the client retries a publish this long before it gives up


class PublishError(Exception):
    """A status notification could not be published: the event must come again."""


@dataclass(frozen=True)
class Step:
    """One status change as written: (previous status or None, status, epoch ms); or,
    `event` "admitted", Kueue's admission of a running job (its status unchanged)."""

    previous: str | None
    status: str
    at: int
    event: str = "status"


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
        "event": step.event,
    }
    for key in ("account_id", "created_by"):
        if (value := getattr(job, key)) is not None:
            attributes[key] = value
    return json.dumps(body, ensure_ascii=False).encode(), attributes


class Publisher:
    """The publisher of one topic; its Pub/Sub client is made on the first message and kept
    for the process's life."""

    def __init__(self, topic: str, project: str | None) -> None:
        self.topic = topic
        self.project = project
        self._client: Any = None
        self._path = ""

    def publish(self, job: Job, steps: Sequence[Step]) -> None:
        """Publish one message per step, in order (ordering key: the job id), and wait for
        all of them; PublishError if any failed."""
        if not steps:
            return
        from google.api_core.retry import Retry, if_transient_error

        client = self._connect()
        retry = Retry(predicate=if_transient_error, timeout=PUBLISH_RETRY_SECONDS)
        futures = []
        for step in steps:
            data, attributes = message(job, step)
            futures.append(
                client.publish(
                    self._path,
                    data,
                    ordering_key=job.id,
                    retry=retry,
                    timeout=PUBLISH_RETRY_SECONDS,
                    **attributes,
                )
            )
        try:
            for future in futures:
                future.result(timeout=2 * PUBLISH_RETRY_SECONDS)
        except Exception as error:
            # A failed message pauses its ordering key: resumed, or every later message
            # about this job (the redelivery's included) would be refused by the client.
            client.resume_publish(self._path, job.id)
            raise PublishError(f"could not publish to {self._path}: {error}") from error

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
