"""Job records in Firestore. Every status change is checked against the transition table,
recorded on the job (time, from, to, reason), and written only if the document is still
the version that was checked.

Changes are optimistic: read, check, then write with the read's update time as a
precondition; a concurrent writer makes the precondition fail, and the change is checked
again on a fresh read. Two round trips, no lock (a Firestore transaction takes three, and
its locks make many writers queue and give up).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from google.api_core import exceptions as gexc

from shared.errors import StoreError, TransitionRefusedError
from shared.model.job import FINAL, Job, Status, allowed, now_ms

if TYPE_CHECKING:
    from google.cloud import firestore

T = TypeVar("T")

UNFINISHED = [status.value for status in Status if status not in FINAL]
REQUEST_TTL = datetime.timedelta(hours=24)  # how long a create's request_id is remembered
EXPIRES_AT = "expires_at"  # the request keys' TTL field (infra/deploy/indexes.py)


@dataclass(frozen=True)
class Version:
    """A job as read or written, and the document's update time at that moment."""

    job: Job
    update_time: Any  # the server's timestamp: the precondition of the next write


class NameTakenError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a job named {name!r} already exists")
        self.name = name


@dataclass(frozen=True)
class RequestKey:
    """A create's `request_id` and the fingerprint of its body."""

    request_id: str
    fingerprint: str


class RequestSeenError(Exception):
    """The request id is held, within its 24 h, by the job `job_id`."""

    def __init__(self, request_id: str, job_id: str, fingerprint: str) -> None:
        super().__init__(f"request {request_id} made job {job_id}")
        self.request_id = request_id
        self.job_id = job_id
        self.fingerprint = fingerprint


def wrap(action: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (gexc.GoogleAPICallError, gexc.RetryError) as error:
        raise StoreError(f"{action}: {error}") from error


def bounded_calls(timeout: float) -> dict[str, Any]:
    """The retry and timeout of every call: each gives up after `timeout`, retries included
    (the library's defaults keep retrying an unreachable Firestore for minutes, past any
    function's timeout)."""
    from google.api_core.retry import Retry, if_transient_error

    return {
        "retry": Retry(predicate=if_transient_error, maximum=2.0, timeout=timeout),
        "timeout": timeout,
    }


MAX_WRITE_ATTEMPTS = 10  # read-check-write rounds lost to concurrent writers before a 503
MAX_CREATE_ATTEMPTS = 3  # batches of a create: each retry follows an expired key taken over


PROBE_ID = "healthcheck"  # the document the health check reads; never a job's id
DOCUMENT_ID = "__name__"  # Firestore's name for a document's id in orders and cursors


def _job(snapshot: Any) -> Job:
    return Job.from_document(snapshot.to_dict() or {})


def _expired(request: dict[str, Any]) -> bool:
    expires = request.get(EXPIRES_AT)
    return not isinstance(expires, datetime.datetime) or expires <= datetime.datetime.now(
        datetime.UTC
    )


class JobStore:
    """One collection of job documents, plus one of names (which keeps names unique)."""

    def __init__(
        self,
        client: firestore.Client,
        collection: str,
        timeout: float = 15.0,
    ) -> None:
        self.client = client
        self.jobs = client.collection(collection)
        self.names = client.collection(f"{collection}_names")
        self.requests = client.collection(f"{collection}_requests")
        self.bounded = bounded_calls(timeout)

    def create(self, job: Job, request: RequestKey | None = None) -> Version:
        """Store a new job; NameTakenError if its name is in use, RequestSeenError if its
        request id is held. All the writes or none.

        One batch of creates (the name, the job, the request id), which fails whole when
        any of their documents exists: no transaction, so many creates at once do not queue
        on a lock and give up, and of many creates with one request id exactly one writes.
        Returns the version written, which lets the next change skip its read.
        """
        job.updated = now_ms()
        for _ in range(MAX_CREATE_ATTEMPTS):
            batch = self.client.batch()
            batch.create(self.names.document(job.name), {"job_id": job.id, "created": job.created})
            batch.create(self.jobs.document(job.id), job.to_document())
            if request is not None:
                at = datetime.datetime.fromtimestamp(job.created / 1000, datetime.UTC)
                batch.create(
                    self.requests.document(request.request_id),
                    {
                        "job_id": job.id,
                        "fingerprint": request.fingerprint,
                        "created": job.created,
                        EXPIRES_AT: at + REQUEST_TTL,
                    },
                )
            try:
                results = wrap("create job", lambda: batch.commit(**self.bounded))  # noqa: B023
            except StoreError as error:
                if not isinstance(error.__cause__, gexc.AlreadyExists):
                    raise
                if request is None:
                    raise NameTakenError(job.name) from None
                self._which_exists(job, request)
                continue  # an expired request key was taken over, or went meanwhile
            return Version(job, results[1].update_time)
        raise StoreError("create job: too many concurrent creates with one request id")

    def _which_exists(self, job: Job, request: RequestKey) -> None:
        """After a batch refused for a document that exists: raise what answers the create,
        or return for the batch to be tried again.

        A live request key means a repeat (or a conflict); an expired one (Firestore's TTL
        deletion lags up to a day) counts as absent, and is deleted on condition that it is
        still the version read, so of several creates taking it over one batch wins and the
        others find its new key. With no key, the name is taken."""
        snapshot = wrap(
            "get request id",
            lambda: self.requests.document(request.request_id).get(**self.bounded),
        )
        if snapshot.exists:
            data = snapshot.to_dict() or {}
            if not _expired(data):
                raise RequestSeenError(
                    request.request_id, str(data.get("job_id")), str(data.get("fingerprint"))
                )
            option = self.client.write_option(last_update_time=snapshot.update_time)
            try:
                wrap(
                    "take over an expired request id",
                    lambda: snapshot.reference.delete(option=option, **self.bounded),
                )
            except StoreError as error:
                if not isinstance(error.__cause__, gexc.FailedPrecondition | gexc.NotFound):
                    raise
            return
        name = wrap("get job name", lambda: self.names.document(job.name).get(**self.bounded))
        if name.exists:
            raise NameTakenError(job.name)

    def request(self, request_id: str) -> tuple[str, str] | None:
        """(job id, body fingerprint) of a live request id, or None: a create's first,
        cheap look before it makes anything."""
        snapshot = wrap(
            "get request id", lambda: self.requests.document(request_id).get(**self.bounded)
        )
        data = snapshot.to_dict() if snapshot.exists else None
        if not data or _expired(data):
            return None
        return str(data.get("job_id")), str(data.get("fingerprint"))

    def probe(self) -> None:
        """A read of a document no job has (ids are UUIDs): Firestore answers, nothing is
        written."""
        wrap("health check read", lambda: self.jobs.document(PROBE_ID).get(**self.bounded))

    def get(self, job_id: str) -> Job | None:
        snapshot = wrap("get job", lambda: self.jobs.document(job_id).get(**self.bounded))
        return _job(snapshot) if snapshot.exists else None

    def get_many(self, job_ids: list[str]) -> dict[str, Job]:
        """The jobs that exist among `job_ids`, in one round trip."""
        refs = [self.jobs.document(job_id) for job_id in job_ids]
        snapshots = wrap("get jobs", lambda: list(self.client.get_all(refs, **self.bounded)))
        return {s.id: _job(s) for s in snapshots if s.exists}

    def get_by_name(self, name: str) -> Job | None:
        snapshot = wrap("get job name", lambda: self.names.document(name).get(**self.bounded))
        if not snapshot.exists:
            return None
        return self.get(str(snapshot.get("job_id")))

    def find(self, status: Status, account_id: str | None = None) -> list[Job]:
        query = self.find_query(status, [account_id] if account_id is not None else None)
        return wrap("list jobs", lambda: [_job(s) for s in query.stream(**self.bounded)])

    def find_page(
        self,
        status: Status | None,
        accounts: list[str] | None,
        *,
        limit: int,
        after: tuple[int, str] | None = None,
    ) -> list[Job]:
        """At most `limit` jobs after the job (created, id) `after`: of one status oldest
        first, or (`status` None) of every status newest first; of these accounts (None:
        of any account, or none).

        A cursor, not an offset: Firestore starts reading at the cursor in the index, so a
        page costs the same whatever the collection holds before it."""
        query = self.find_query(status, accounts)
        if after is not None:
            query = query.start_after({"created": after[0], DOCUMENT_ID: after[1]})
        query = query.limit(limit)
        return wrap("list jobs", lambda: [_job(s) for s in query.stream(**self.bounded)])

    def find_query(
        self, status: Status | None, accounts: list[str] | None = None
    ) -> firestore.Query:
        """The list's query: it needs a composite index (infra/firestore.indexes.json).
        Ordered by creation, then by document id: jobs created in the same millisecond
        keep one order, which a page's cursor relies on. Every index ends with the
        document id, in the direction of its last field, so the tiebreak needs no other.
        One status is listed oldest first (the earlier API's order); every status (None),
        newest first."""
        from google.cloud.firestore_v1 import FieldFilter, Query

        query: Any = self.jobs
        if status is not None:
            query = query.where(filter=FieldFilter("status", "==", status.value))
        if accounts is not None and len(accounts) == 1:
            query = query.where(filter=FieldFilter("account_id", "==", accounts[0]))
        elif accounts is not None:
            query = query.where(filter=FieldFilter("account_id", "in", accounts))
        direction = Query.ASCENDING if status is not None else Query.DESCENDING
        return query.order_by("created", direction=direction).order_by(
            DOCUMENT_ID, direction=direction
        )

    def unfinished(self) -> list[Job]:
        """Every job not in a final status: the one query of a sync."""
        query = self.unfinished_query()
        return wrap("list unfinished jobs", lambda: [_job(s) for s in query.stream(**self.bounded)])

    def unfinished_query(self) -> firestore.Query:
        from google.cloud.firestore_v1 import FieldFilter

        return self.jobs.where(filter=FieldFilter("status", "in", UNFINISHED))

    def transition(
        self,
        job_id: str,
        target: Status,
        *,
        reason: str,
        expect: Iterable[Status] | None = None,
        updates: dict[str, Any] | None = None,
        known: Version | None = None,
        via: Sequence[tuple[Status, str]] = (),
    ) -> Job:
        """Move the job to `target` atomically, if the table (and `expect`) allow it.

        `via` lists steps (status, reason) recorded on the way, in the same write: a job
        whose output lands before any sync saw its user container finish goes running ->
        cleaning -> succeeded at once. Raises TransitionRefusedError when the stored status
        forbids it: a concurrent writer (a kill racing a sync) got there first, and its
        result stands. `known`, the version this process wrote last, saves the first read;
        if anyone wrote since, the write fails its precondition and the change is checked
        again on a fresh read.
        """
        expected = None if expect is None else frozenset(expect)
        steps = [*via, (target, reason)]

        def change(job: Job) -> dict[str, Any]:
            path = [job.status, *(status for status, _ in steps)]
            if not all(allowed(a, b) for a, b in zip(path, path[1:], strict=False)) or (
                expected is not None and job.status not in expected
            ):
                raise TransitionRefusedError(job_id, job.status.value, target.value)
            at = now_ms()
            records = [
                {"at": at, "from": before.value, "to": after.value, "reason": why}
                for before, (after, why) in zip(path[:-1], steps, strict=True)
            ]
            changes: dict[str, Any] = {
                **(updates or {}),
                "status": target.value,
                "updated": at,
                "transitions": [*job.transitions, *records],
            }
            if target in FINAL and "stop_time" not in changes:
                changes["stop_time"] = at
            return changes

        job, changes = self._write_checked(job_id, change, known, target.value)
        for key, value in changes.items():
            setattr(job, key, value)
        job.status = target
        return job

    def update(self, job_id: str, changes: dict[str, Any], *, status: Status) -> bool:
        """Write `changes` (no status change) only if the job is still in `status`."""

        def change(job: Job) -> dict[str, Any]:
            if job.status is not status:
                raise TransitionRefusedError(job_id, job.status.value, status.value)
            return {**changes, "updated": now_ms()}

        try:
            self._write_checked(job_id, change, None, status.value)
        except TransitionRefusedError:
            return False
        return True

    def _write_checked(
        self,
        job_id: str,
        change: Callable[[Job], dict[str, Any]],
        known: Version | None,
        target: str,
    ) -> tuple[Job, dict[str, Any]]:
        """Read (unless `known`), let `change` check the job and say what to write, and
        write it on condition that the document is still the version read."""
        ref = self.jobs.document(job_id)
        for _ in range(MAX_WRITE_ATTEMPTS):
            current = known or self._read_version(job_id, target)
            known = None
            changes = change(current.job)
            option = self.client.write_option(last_update_time=current.update_time)
            try:
                wrap("change job", lambda: ref.update(changes, option=option, **self.bounded))  # noqa: B023
            except StoreError as error:
                if isinstance(error.__cause__, gexc.FailedPrecondition | gexc.NotFound):
                    continue  # written (or deleted) since it was read: check again
                raise
            return current.job, changes
        raise StoreError("change job: too many concurrent changes; try again")

    def _read_version(self, job_id: str, target: str) -> Version:
        snapshot = wrap("get job", lambda: self.jobs.document(job_id).get(**self.bounded))
        if not snapshot.exists:
            raise TransitionRefusedError(job_id, "missing", target)
        return Version(_job(snapshot), snapshot.update_time)
