"""Topics and subscriptions on the Pub/Sub emulator, created idempotently."""

from __future__ import annotations

from google.api_core import exceptions
from google.cloud import pubsub_v1

ACK_DEADLINE_SECONDS = 600  # long enough for the relay's whole retry schedule


def ensure_topic(project: str, topic: str) -> str:
    """Create `topic` unless it exists; returns its path."""
    publisher = pubsub_v1.PublisherClient()
    topic_path = publisher.topic_path(project, topic)
    try:
        publisher.create_topic(name=topic_path)
    except exceptions.AlreadyExists:
        pass
    return topic_path


def ensure_topic_and_subscription(
    project: str, topic: str, subscription: str, *, ordered: bool = False
) -> str:
    """Create `topic` and a pull `subscription` on it unless they exist; returns its path.
    `ordered`: messages with one ordering key are delivered in order."""
    publisher = pubsub_v1.PublisherClient()
    subscriber = pubsub_v1.SubscriberClient()
    topic_path = publisher.topic_path(project, topic)
    subscription_path = subscriber.subscription_path(project, subscription)
    try:
        publisher.create_topic(name=topic_path)
    except exceptions.AlreadyExists:
        pass
    try:
        subscriber.create_subscription(
            request={
                "name": subscription_path,
                "topic": topic_path,
                "ack_deadline_seconds": ACK_DEADLINE_SECONDS,
                "enable_message_ordering": ordered,
            }
        )
    except exceptions.AlreadyExists:
        pass
    finally:
        subscriber.close()
    return subscription_path
