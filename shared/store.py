"""Job records in Firestore. Every status change is a transaction checked against the
transition table, and recorded on the job (time, from, to, reason)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from google.api_core import exceptions as gexc

from shared.errors import StoreError, TransitionRefusedError
from shared.model import FINAL, Job, Status, allowed, now_ms

if TYPE_CHECKING:
    from google.cloud import firestore

T = TypeVar("T")

UNFINISHED = [status.value for status in Status if status not in FINAL]


class NameTakenError(Exception):
    def __init__(self, name: str) -> None:
        super().__init__(f"a job named {name!r} already exists")
        self.name = name


def _wrap(action: str, call: Callable[[], T]) -> T:
    try:
        return call()
    except (gexc.GoogleAPICallError, gexc.RetryError) as error:
        raise StoreError(f"{action}: {error}") from error


def _transact(action: str, write: Callable[[Any], T], client: firestore.Client) -> T:
    """Run a transactional function. A transaction that keeps losing to concurrent writers
    ends in the library's ValueError("Failed to commit transaction in N attempts"): that is
    the database being busy (503, try again), not a bug."""
    try:
        return _wrap(action, lambda: write(client.transaction()))
    except ValueError as error:
        if not str(error).startswith("Failed to commit transaction"):
            raise
        raise StoreError(f"{action}: too many concurrent changes; try again") from error


def _job(snapshot: Any) -> Job:
    return Job.from_document(snapshot.to_dict() or {})


class JobStore:
    """One collection of job documents, plus one of names (which keeps names unique)."""

    def __init__(self, client: firestore.Client, collection: str, timeout: float = 15.0) -> None:
        from google.api_core.retry import Retry, if_transient_error

        self.client = client
        self.jobs = client.collection(collection)
        self.names = client.collection(f"{collection}_names")
        # Every call gives up after `timeout`, retries included: the library's defaults keep
        # retrying an unreachable Firestore for minutes, past any function's timeout.
        self.bounded: dict[str, Any] = {
            "retry": Retry(predicate=if_transient_error, maximum=2.0, timeout=timeout),
            "timeout": timeout,
        }

    def create(self, job: Job) -> None:
        """Store a new job; NameTakenError if its name is in use. Both writes or none.

        One batch of two creates, which fails whole when the name's document exists: no
        transaction, so many creates at once do not queue on a lock and give up.
        """
        job.updated = now_ms()
        batch = self.client.batch()
        batch.create(self.names.document(job.name), {"job_id": job.id, "created": job.created})
        batch.create(self.jobs.document(job.id), job.to_document())
        try:
            _wrap("create job", lambda: batch.commit(**self.bounded))
        except StoreError as error:
            if isinstance(error.__cause__, gexc.AlreadyExists):
                raise NameTakenError(job.name) from None
            raise

    def get(self, job_id: str) -> Job | None:
        snapshot = _wrap("get job", lambda: self.jobs.document(job_id).get(**self.bounded))
        return _job(snapshot) if snapshot.exists else None

    def get_many(self, job_ids: list[str]) -> dict[str, Job]:
        """The jobs that exist among `job_ids`, in one round trip."""
        refs = [self.jobs.document(job_id) for job_id in job_ids]
        snapshots = _wrap("get jobs", lambda: list(self.client.get_all(refs, **self.bounded)))
        return {s.id: _job(s) for s in snapshots if s.exists}

    def get_by_name(self, name: str) -> Job | None:
        snapshot = _wrap("get job name", lambda: self.names.document(name).get(**self.bounded))
        if not snapshot.exists:
            return None
        return self.get(str(snapshot.get("job_id")))

    def find(self, status: Status, account_id: str | None = None) -> list[Job]:
        query = self.find_query(status, account_id)
        return _wrap("list jobs", lambda: [_job(s) for s in query.stream(**self.bounded)])

    def find_query(self, status: Status, account_id: str | None = None) -> firestore.Query:
        """The list's query: it needs a composite index (infra/firestore.indexes.json)."""
        from google.cloud.firestore_v1 import FieldFilter

        query = self.jobs.where(filter=FieldFilter("status", "==", status.value))
        if account_id is not None:
            query = query.where(filter=FieldFilter("account_id", "==", account_id))
        return query.order_by("created")

    def unfinished(self) -> list[Job]:
        """Every job not in a final status: the one query of a sync."""
        query = self.unfinished_query()
        return _wrap(
            "list unfinished jobs", lambda: [_job(s) for s in query.stream(**self.bounded)]
        )

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
    ) -> Job:
        """Move the job to `target` atomically, if the table (and `expect`) allow it.

        Raises TransitionRefusedError when the stored status forbids it: a concurrent
        writer (a kill racing a sync) got there first, and its result stands.
        """
        from google.cloud import firestore

        expected = None if expect is None else frozenset(expect)

        @firestore.transactional
        def write(transaction: firestore.Transaction) -> Job:
            ref = self.jobs.document(job_id)
            snapshot = ref.get(transaction=transaction, **self.bounded)
            if not snapshot.exists:
                raise TransitionRefusedError(job_id, "missing", target.value)
            job = _job(snapshot)
            if not allowed(job.status, target) or (
                expected is not None and job.status not in expected
            ):
                raise TransitionRefusedError(job_id, job.status.value, target.value)
            at = now_ms()
            record = {"at": at, "from": job.status.value, "to": target.value, "reason": reason}
            changes: dict[str, Any] = {
                **(updates or {}),
                "status": target.value,
                "updated": at,
                "transitions": [*job.transitions, record],
            }
            if target in FINAL and "stop_time" not in changes:
                changes["stop_time"] = at
            transaction.update(ref, changes)
            for key, value in changes.items():
                setattr(job, key, value)
            job.status = target
            return job

        return _transact("change job status", write, self.client)

    def update(self, job_id: str, changes: dict[str, Any], *, status: Status) -> bool:
        """Write `changes` (no status change) only if the job is still in `status`."""
        from google.cloud import firestore

        @firestore.transactional
        def write(transaction: firestore.Transaction) -> bool:
            ref = self.jobs.document(job_id)
            snapshot = ref.get(transaction=transaction, **self.bounded)
            if not snapshot.exists or snapshot.get("status") != status.value:
                return False
            transaction.update(ref, {**changes, "updated": now_ms()})
            return True

        return _transact("update job", write, self.client)
