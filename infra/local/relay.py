"""The Eventarc relay: messages on Pub/Sub -> CloudEvents over HTTP, as Eventarc makes them.

Two kinds of trigger (`--events`):
- `storage`: fake-gcs-server publishes an OBJECT_FINALIZE notification for every finalized
  object; each becomes a `google.cloud.storage.object.v1.finalized` CloudEvent (the
  finalize function's trigger).
- `pubsub`: every message of a topic becomes a `google.cloud.pubsub.topic.v1.messagePublished`
  CloudEvent whose data is {"message": {data (base64), attributes, messageId, publishTime},
  "subscription"} (the callbacks function's trigger on JOB_EVENTS_TOPIC).

Each is POSTed to the target function as Eventarc does in production (binary content
mode). A non-2xx answer is retried with exponential
backoff, as Eventarc does with retry on; after `max_attempts` the event is dropped with an
ERROR log line. Delivery is at least once: a message is acked only once it was delivered
or given up on.

SIGTERM or SIGINT stops it at once: deliveries in flight are abandoned unacknowledged, and
Pub/Sub delivers those messages again later.

    python -m infra.local.relay --subscription projects/P/subscriptions/S --target URL
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cloudevents.conversion import to_binary
from cloudevents.http import CloudEvent

from infra.local.procs import StopSignal
from shared import logs

log = logging.getLogger("eventarc-relay")

FINALIZED = "google.cloud.storage.object.v1.finalized"
PUBLISHED = "google.cloud.pubsub.topic.v1.messagePublished"
DELIVERY_THREADS = 8
KEEPALIVE_SECONDS = 600  # a message being retried stays leased this long after each attempt
PULL_RETRY_SECONDS = 0.2  # pause after a failed pull (the emulator restarting, or gone)
_EVENT_TYPES = {"OBJECT_FINALIZE": FINALIZED}


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    initial_backoff: float = 0.5  # seconds before the second attempt
    max_backoff: float = 10.0  # seconds; the backoff doubles up to this
    request_timeout: float = 60.0  # seconds for one delivery attempt

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number `attempt` (1-based)."""
        return float(min(self.max_backoff, self.initial_backoff * 2 ** (attempt - 1)))


def to_cloudevent(attributes: dict[str, str], data: bytes, message_id: str) -> CloudEvent | None:
    """The CloudEvent Eventarc would send for one notification; None for other event types."""
    event_type = _EVENT_TYPES.get(attributes.get("eventType", ""))
    if event_type is None:
        return None
    resource: dict[str, Any] = json.loads(data)
    bucket = attributes.get("bucketId") or resource["bucket"]
    name = attributes.get("objectId") or resource["name"]
    # Eventarc's event time is when the object was finalized: prefer the object's own
    # timestamp (sub-second) over the notification's eventTime (whole seconds).
    time_ = str(
        resource.get("updated") or resource.get("timeCreated") or attributes.get("eventTime", "")
    )
    return CloudEvent(
        {
            "id": message_id,
            "source": f"//storage.googleapis.com/projects/_/buckets/{bucket}",
            "type": event_type,
            "subject": f"objects/{name}",
            "time": time_,
            "specversion": "1.0",
            "datacontenttype": "application/json",
            "bucket": bucket,
        },
        resource,
    )


def published_cloudevent(message: Any, subscription: str, topic: str) -> CloudEvent:
    """The CloudEvent of an Eventarc Pub/Sub trigger for one message received from
    `subscription` (projects/P/subscriptions/S) on `topic` (projects/P/topics/T)."""
    publish_time = message.publish_time
    published = publish_time.isoformat().replace("+00:00", "Z") if publish_time else ""
    return CloudEvent(
        {
            "id": message.message_id,
            "source": f"//pubsub.googleapis.com/{topic}",
            "type": PUBLISHED,
            "time": published,
            "specversion": "1.0",
            "datacontenttype": "application/json",
        },
        {
            "message": {
                "data": base64.b64encode(message.data).decode(),
                "attributes": dict(message.attributes),
                "messageId": message.message_id,
                "publishTime": published,
                **({"orderingKey": message.ordering_key} if message.ordering_key else {}),
            },
            "subscription": subscription,
        },
    )


def deliver(
    event: CloudEvent,
    target: str,
    policy: RetryPolicy,
    *,
    session: requests.Session,
    stop: StopSignal,
    keepalive: Callable[[], None] | None = None,
) -> bool:
    """POST `event` until a 2xx answer or `policy.max_attempts`; True when delivered."""
    headers, body = to_binary(event)
    fields = {"event_id": event["id"], "subject": event.get("subject") or event["type"]}
    for attempt in range(1, policy.max_attempts + 1):
        try:
            response = session.post(
                target, headers=headers, data=body, timeout=policy.request_timeout
            )
            status: int | str = response.status_code
            if 200 <= response.status_code < 300:
                log.info("delivered event", extra={**fields, "attempt": attempt})
                return True
        except requests.RequestException as error:
            status = type(error).__name__
        if attempt == policy.max_attempts:
            break
        wait = policy.backoff(attempt)
        log.warning(
            "delivery failed; retrying",
            extra={**fields, "attempt": attempt, "status": status, "retry_in_seconds": wait},
        )
        if keepalive is not None:
            keepalive()  # the message stays ours while it waits (long retry schedules)
        if stop.wait(wait):
            return False
    log.error(
        "giving up on event after %d attempts",
        policy.max_attempts,
        extra={**fields, "status": status},
    )
    return False


class Relay:
    """Pulls notifications from one subscription and delivers them concurrently.

    Deliveries run on daemon threads: a stop never waits for one, however long its target
    takes to answer (a message whose delivery is cut short is not acknowledged).
    """

    def __init__(
        self,
        subscription: str,
        target: str,
        policy: RetryPolicy,
        ready_file: Path | None = None,
        *,
        events: str = "storage",
        topic: str = "",
    ) -> None:
        self.topic = topic  # projects/P/topics/T, the source of messagePublished events
        self.subscription = subscription
        self.events = events  # "storage" (finalize notifications) or "pubsub" (any message)
        self.ready_file = ready_file  # written once the first pull has been answered
        self.target = target
        self.policy = policy
        self.stop_event = StopSignal()
        self._session = requests.Session()
        self._received: queue.Queue[Any] = queue.Queue()

    def run(self) -> None:
        from google.api_core import exceptions
        from google.cloud import pubsub_v1

        subscriber = pubsub_v1.SubscriberClient()
        for index in range(DELIVERY_THREADS):
            threading.Thread(
                target=self._deliver_received,
                args=(subscriber,),
                name=f"deliver-{index}",
                daemon=True,
            ).start()
        log.info(
            "relaying %s events",
            "Cloud Storage" if self.events == "storage" else "Pub/Sub",
            extra={"subscription": self.subscription, "target": self.target},
        )
        try:
            while not self.stop_event.is_set():
                try:
                    # No retry policy: this loop is the retry, and it checks for a stop
                    # between two pulls (the default one retries for a minute).
                    response = subscriber.pull(
                        request={"subscription": self.subscription, "max_messages": 50},
                        timeout=1,
                        retry=None,
                    )
                except exceptions.DeadlineExceeded:
                    self._ready()
                    continue
                except (
                    exceptions.ServiceUnavailable,
                    exceptions.InternalServerError,
                    exceptions.Aborted,
                    exceptions.Unknown,
                ):
                    self.stop_event.wait(PULL_RETRY_SECONDS)
                    continue
                self._ready()
                if not response.received_messages:
                    # The emulator may answer an empty pull at once: do not spin.
                    self.stop_event.wait(0.05)
                for received in response.received_messages:
                    self._received.put(received)
        finally:
            subscriber.close()

    def _ready(self) -> None:
        """Tell whoever started the relay that it pulls (the stack waits for it, so that the
        first upload's event is not held up by the relay's start)."""
        if self.ready_file is not None and not self.ready_file.exists():
            self.ready_file.write_text("pulling\n")

    def _deliver_received(self, subscriber: Any) -> None:
        while not self.stop_event.is_set():
            try:
                received = self._received.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                self._handle(subscriber, received)
            except Exception:  # an acknowledgement that failed: the message comes again
                log.exception("could not acknowledge notification %s", received.message.message_id)

    def _handle(self, subscriber: Any, received: Any) -> None:
        message = received.message
        try:
            if self.events == "pubsub":
                event: CloudEvent | None = published_cloudevent(
                    message, self.subscription, self.topic
                )
            else:
                event = to_cloudevent(dict(message.attributes), message.data, message.message_id)
            if event is None:
                log.info("ignored notification", extra={"attributes": dict(message.attributes)})
            else:

                def keepalive() -> None:
                    subscriber.modify_ack_deadline(
                        request={
                            "subscription": self.subscription,
                            "ack_ids": [received.ack_id],
                            "ack_deadline_seconds": KEEPALIVE_SECONDS,
                        }
                    )

                deliver(
                    event,
                    self.target,
                    self.policy,
                    session=self._session,
                    stop=self.stop_event,
                    keepalive=keepalive,
                )
        except Exception:
            log.exception("could not relay notification %s", message.message_id)
        if not self.stop_event.is_set():
            subscriber.acknowledge(
                request={"subscription": self.subscription, "ack_ids": [received.ack_id]}
            )


def add_retry_arguments(parser: argparse.ArgumentParser) -> None:
    """--max-attempts, --initial-backoff and --max-backoff: a RetryPolicy (retry_policy)."""
    parser.add_argument("--max-attempts", type=int, default=RetryPolicy.max_attempts)
    parser.add_argument("--initial-backoff", type=float, default=RetryPolicy.initial_backoff)
    parser.add_argument("--max-backoff", type=float, default=RetryPolicy.max_backoff)


def retry_policy(args: argparse.Namespace) -> RetryPolicy:
    return RetryPolicy(
        max_attempts=args.max_attempts,
        initial_backoff=args.initial_backoff,
        max_backoff=args.max_backoff,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscription", required=True, help="projects/P/subscriptions/S")
    parser.add_argument("--target", required=True, help="URL of the CloudEvent function")
    add_retry_arguments(parser)
    parser.add_argument("--ready-file", type=Path, help="written once the relay pulls")
    parser.add_argument(
        "--events",
        choices=("storage", "pubsub"),
        default="storage",
        help="storage: Cloud Storage finalize notifications; pubsub: messagePublished",
    )
    parser.add_argument("--topic", default="", help="projects/P/topics/T (--events=pubsub)")
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    relay = Relay(
        args.subscription,
        args.target,
        retry_policy(args),
        ready_file=args.ready_file,
        events=args.events,
        topic=args.topic,
    )
    relay.stop_event.install()
    started = time.monotonic()
    relay.run()
    log.info("relay stopped", extra={"uptime_seconds": round(time.monotonic() - started, 1)})


if __name__ == "__main__":
    main()
