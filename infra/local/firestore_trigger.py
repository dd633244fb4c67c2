"""Eventarc's Firestore trigger, locally: every write of a document of one collection becomes
a `google.cloud.firestore.document.v1.written` CloudEvent POSTed to a function.

A Firestore listener (`on_snapshot`, which the emulator serves) watches the collection and
keeps the last version it saw of each document; each change is sent as Eventarc sends it:
binary content mode, `ce-source: //firestore.googleapis.com/projects/P/databases/D`,
`ce-subject: documents/COLLECTION/ID`, the extensions `project`, `database`, `namespace`,
`document` and `location`, and `application/protobuf` data: a DocumentEventData with the
document after the write (`value`, none for a delete) and before it (`old_value`, none for
a create). The documents there when the listener starts are its baseline: no events.

Where it differs from Eventarc: a listener may merge writes that follow each other closely
into one change (the event then spans them: its old value is the last one seen); the
events of one document are delivered in order, one at a time (Eventarc promises no order);
events not yet delivered when it stops are lost (Eventarc keeps them). A non-2xx answer is
retried with backoff as the relay does (relay.RetryPolicy), then dropped with an ERROR line.

    python -m infra.local.firestore_trigger --collection C --target URL [--ready-file F]
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import queue
import threading
import time
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from cloudevents.http import CloudEvent

from infra.local.procs import StopSignal
from infra.local.relay import RetryPolicy, add_retry_arguments, deliver, retry_policy
from shared import logs
from shared.cloud.documents import encode_event

log = logging.getLogger("eventarc-firestore")

WRITTEN = "google.cloud.firestore.document.v1.written"
DATA_SCHEMA = (
    "https://github.com/googleapis/google-cloudevents/blob/main/"
    "proto/google/events/cloud/firestore/v1/data.proto"
)
DELIVERY_THREADS = 8
LOCATION = "local"  # Eventarc reports the database's location (a region, or nam5, eur3)


@dataclass(frozen=True)
class Version:
    """A document as the listener last saw it."""

    fields: dict[str, Any]
    created: datetime.datetime
    updated: datetime.datetime


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")


def written_event(
    *,
    project: str,
    database: str,
    collection: str,
    document_id: str,
    old: Version | None,
    new: Version | None,
    at: datetime.datetime,
) -> CloudEvent:
    """The CloudEvent of one write (old None: a create; new None: a delete)."""
    document = f"{collection}/{document_id}"
    data = encode_event(
        f"projects/{project}/databases/{database}/documents/{document}",
        old.fields if old else None,
        new.fields if new else None,
        old_times=(old.created, old.updated) if old else None,
        new_times=(new.created, new.updated) if new else None,
    )
    return CloudEvent(
        {
            "id": str(uuid.uuid4()),
            "source": f"//firestore.googleapis.com/projects/{project}/databases/{database}",
            "type": WRITTEN,
            "subject": f"documents/{document}",
            "time": rfc3339(at),
            "specversion": "1.0",
            "datacontenttype": "application/protobuf",
            "dataschema": DATA_SCHEMA,
            "project": project,
            "database": database,
            "namespace": "(default)",
            "document": document,
            "location": LOCATION,
        },
        data,
    )


class FirestoreTrigger:
    """Listens to one collection and delivers its writes; `start` returns once the listener
    has its baseline (the first snapshot)."""

    def __init__(
        self,
        project: str,
        collection: str,
        target: str,
        policy: RetryPolicy,
        *,
        database: str = "(default)",
        ready_file: Path | None = None,
    ) -> None:
        self.project = project
        self.database = database
        self.collection = collection
        self.target = target
        self.policy = policy
        self.ready_file = ready_file
        self.stop_event = StopSignal()
        self.ready = threading.Event()
        self._last: dict[str, Version] = {}
        self._queues: list[queue.Queue[CloudEvent]] = [
            queue.Queue() for _ in range(DELIVERY_THREADS)
        ]
        self._watch: Any = None

    def start(self, timeout: float = 30.0) -> None:
        from google.cloud import firestore

        client = firestore.Client(project=self.project, database=self.database)
        for index, pending in enumerate(self._queues):
            threading.Thread(
                target=self._deliver, args=(pending,), name=f"deliver-{index}", daemon=True
            ).start()
        self._watch = client.collection(self.collection).on_snapshot(self._on_snapshot)
        if not self.ready.wait(timeout):
            raise TimeoutError(f"no first snapshot of {self.collection} in {timeout} s")
        if self.ready_file is not None:
            self.ready_file.write_text("listening\n")
        log.info(
            "relaying Firestore writes",
            extra={"collection": self.collection, "target": self.target},
        )

    def stop(self) -> None:
        """Stop listening and delivering; events not yet delivered are dropped."""
        self.stop_event.set()
        if self._watch is not None:
            self._watch.unsubscribe()

    def _on_snapshot(self, snapshots: list[Any], changes: list[Any], read_time: Any) -> None:
        try:
            if not self.ready.is_set():  # the first snapshot: the baseline
                self._last = {snapshot.id: _version(snapshot) for snapshot in snapshots}
                self.ready.set()
                return
            for change in changes:
                self._changed(change, read_time)
        except Exception:  # on the listener's thread: it must survive
            log.exception("could not turn a Firestore change into an event")

    def _changed(self, change: Any, read_time: Any) -> None:
        snapshot = change.document
        old = self._last.get(snapshot.id)
        new: Version | None = None
        if change.type.name == "REMOVED":
            self._last.pop(snapshot.id, None)
            at = read_time
        else:
            new = self._last[snapshot.id] = _version(snapshot)
            at = new.updated
        event = written_event(
            project=self.project,
            database=self.database,
            collection=self.collection,
            document_id=snapshot.id,
            old=old,
            new=new,
            at=at,
        )
        # One queue per document (by its id): its events go out in order, one at a time.
        self._queues[zlib.crc32(snapshot.id.encode()) % len(self._queues)].put(event)

    def _deliver(self, pending: queue.Queue[CloudEvent]) -> None:
        session = requests.Session()
        while not self.stop_event.is_set():
            try:
                event = pending.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                deliver(event, self.target, self.policy, session=session, stop=self.stop_event)
            except Exception:
                log.exception("could not deliver event %s", event["id"])


def _version(snapshot: Any) -> Version:
    return Version(snapshot.to_dict() or {}, snapshot.create_time, snapshot.update_time)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", default=os.environ.get("GOOGLE_CLOUD_PROJECT", ""))
    parser.add_argument("--database", default="(default)")
    parser.add_argument("--collection", required=True, help="the collection to listen to")
    parser.add_argument("--target", required=True, help="URL of the CloudEvent function")
    add_retry_arguments(parser)
    parser.add_argument("--ready-file", type=Path, help="written once the listener listens")
    args = parser.parse_args(argv)
    logs.configure(os.environ.get("LOG_LEVEL", "INFO"))
    trigger = FirestoreTrigger(
        args.project,
        args.collection,
        args.target,
        retry_policy(args),
        database=args.database,
        ready_file=args.ready_file,
    )
    trigger.stop_event.install()
    started = time.monotonic()
    trigger.start()
    trigger.stop_event.wait()
    trigger.stop()
    log.info("trigger stopped", extra={"uptime_seconds": round(time.monotonic() - started, 1)})


if __name__ == "__main__":
    main()
