"""The local stand-in of GKE's event logging and of the log sink `make deploy` creates:
it watches the real API server's Events in the jobs' namespace, writes each as the log
entry GKE would (shared/model/clusterevents.py), and publishes those the sink's filter
passes to the emulator's topic, where the Eventarc relay's subscription takes them to
`on_cluster_event`.

    python -m infra.local.eventsink --kubeconfig PATH --namespace NS --project P \\
        --topic T [--ready-file PATH]

Each Event is published when it is made and each time it is seen again (its count grows),
as the exporter logs it. A watch that ends, or whose connection breaks, is taken up again
from where it was; one whose resource version is too old (410) starts from a fresh list.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from shared.logs import configure
from shared.model import clusterevents

log = logging.getLogger("eventsink")
CLUSTER = "local-cluster"  # the cluster's name and location in the entries' resource
LOCATION = "local"
WATCH_SECONDS = 30  # each watch request's own timeout; the loop takes it up again


class EventSink:
    def __init__(
        self,
        core: Any,
        namespace: str,
        project: str,
        publish: Callable[[bytes], None],
        watch_seconds: int = WATCH_SECONDS,
    ) -> None:
        self.core = core
        self.namespace = namespace
        self.project = project
        self.publish = publish
        self.watch_seconds = watch_seconds  # how soon a stop is noticed with no event

    def forward(self, event: dict[str, Any]) -> bool:
        """Publish the event's log entry if the sink's filter passes it."""
        entry = clusterevents.log_entry(event, self.project, CLUSTER, LOCATION)
        if not clusterevents.matches(entry, self.namespace):
            return False
        self.publish(json.dumps(entry).encode())
        log.info(
            "published",
            extra={"reason": event.get("reason"), "object": event["involvedObject"].get("name")},
        )
        return True

    def run(self, stop: threading.Event, ready: Callable[[], None]) -> None:
        from kubernetes import watch
        from kubernetes.client import ApiException
        from urllib3.exceptions import HTTPError

        version = self._latest()
        ready()
        while not stop.is_set():
            stream = watch.Watch()
            try:
                for change in stream.stream(
                    self.core.list_namespaced_event,
                    self.namespace,
                    resource_version=version,
                    timeout_seconds=self.watch_seconds,
                    _preload_content=False,
                ):
                    event = change["raw_object"]
                    version = event["metadata"]["resourceVersion"]
                    if change["type"] in ("ADDED", "MODIFIED"):
                        self.forward(event)
                    if stop.is_set():
                        stream.stop()
            except ApiException as error:
                if error.status != 410:
                    raise
                version = self._latest()  # too old: what came meanwhile is in the API's past
            except HTTPError as error:  # the connection ended: watch again from `version`
                log.warning("the watch ended; watching again", extra={"error": str(error)})
                stop.wait(1.0)

    def _latest(self) -> str:
        listed = self.core.list_namespaced_event(self.namespace, limit=1)
        return str(listed.metadata.resource_version)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--topic", required=True, help="a topic id of --project")
    parser.add_argument("--ready-file", type=Path)
    args = parser.parse_args()
    configure("INFO")
    from google.cloud import pubsub_v1
    from kubernetes import client, config

    publisher = pubsub_v1.PublisherClient()
    topic = publisher.topic_path(args.project, args.topic)
    core = client.CoreV1Api(config.new_client_from_config(args.kubeconfig))
    sink = EventSink(core, args.namespace, args.project, lambda data: _sent(publisher, topic, data))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit)

    def ready() -> None:
        if args.ready_file is not None:
            args.ready_file.write_text("watching\n")

    sink.run(threading.Event(), ready)


def _exit(*_: Any) -> None:
    raise SystemExit(0)  # out of a watch that may wait WATCH_SECONDS for its next event


def _sent(publisher: Any, topic: str, data: bytes) -> None:
    publisher.publish(topic, data).result(timeout=30)


if __name__ == "__main__":
    main()
