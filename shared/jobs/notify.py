"""The status notifications of one write of a job's document (Firestore's write trigger).

Every status change adds its records to the job's `transitions` (from, to, at, reason), and
a create stores the job in its first status; so the steps a write made are the records the
new document has and the old one had not, after the first status when the document is new.
A write that records Kueue's admission (`admitted`, shared/jobs/admission.py) is one more
step, of event `admitted` (the job stays `running`). Each is published
(shared/cloud/events.py). Idempotent for a consumer: a redelivered event publishes the same
messages again, and consumers drop what they have seen (job id, status and event). A
delete, or a write that changed neither, publishes nothing.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.cloud.backends import Backends
from shared.cloud.documents import decode_event
from shared.cloud.events import PublishError, Step
from shared.logs import log_context
from shared.model.job import Job

log = logging.getLogger(__name__)


def steps(old: dict[str, Any] | None, new: dict[str, Any]) -> list[Step]:
    """The status steps `new` records that `old` does not, in the order written."""
    seen = {_key(record) for record in (old or {}).get("transitions") or []}
    records = new.get("transitions") or []
    found = []
    if old is None:  # a create: its first status is the one the first record leaves
        first = records[0]["from"] if records else new["status"]
        found.append(Step(None, first, int(new["created"])))
    for record in records:
        if _key(record) not in seen:
            found.append(Step(record["from"], record["to"], int(record["at"])))
    admitted = new.get("admitted")
    if admitted is not None and (old or {}).get("admitted") is None:
        found.append(Step("running", "running", int(admitted), event="admitted"))
    return sorted(found, key=lambda step: step.at)


def _key(record: dict[str, Any]) -> tuple[Any, Any, Any]:
    return record.get("from"), record.get("to"), record.get("at")


def handle(data: bytes, *, backends: Backends) -> str:
    """Publish the steps of the write `data` (a DocumentEventData); returns what was done."""
    publisher = backends.events
    if publisher is None:
        return "no topic"
    old, new = decode_event(data)
    if new is None:
        return "deleted"
    job = Job.from_document(new)
    found = steps(old, new)
    with log_context(job_id=job.id, job_name=job.name):
        try:
            publisher.publish(job, found)
        except PublishError:
            log.exception(
                "status notifications not published; the event will be delivered again",
                extra={"job_id": job.id},
            )
            raise
        if found:
            log.info("published %s", ", ".join(step.status for step in found))
    return f"published {len(found)}"
