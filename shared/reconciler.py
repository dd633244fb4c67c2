"""`synchronize_batch_jobs`: reconcile the job records with what the cluster holds.

One Firestore query for the unfinished jobs and, at the same time, the cluster's Jobs and
volume claims listed by the label the product puts on everything, in pages of 500; pods
only for the few jobs whose failure needs explaining. Nothing is read per job, and nothing
is written when nothing changed. Every status change is checked against the version it
was decided on (shared/store.py), so two overlapping syncs, or a sync racing a kill,
cannot overwrite each other: the loser's change is refused.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from shared import manifests
from shared.backends import Backends
from shared.diagnosis import Failure, diagnose, epoch_ms, finished, image_pull_error
from shared.errors import BucketError, ClusterApiError, ClusterConflictError, TransitionRefusedError
from shared.lifecycle import remove_from_cluster
from shared.logs import log_context
from shared.model import FINAL, Job, Status, now_ms

log = logging.getLogger(__name__)

SELECTOR_CHUNK = 50  # job ids per `in (...)` label selector


@dataclass
class SyncReport:
    checked: int = 0
    transitions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orphans_deleted: int = 0
    errors: int = 0
    passes: int = 0

    def count(self, target: Status) -> None:
        self.transitions[target.value] += 1

    def add(self, other: SyncReport) -> None:
        """Fold one pass's report into a call's."""
        self.checked += other.checked
        for status, count in other.transitions.items():
            self.transitions[status] += count
        self.orphans_deleted += other.orphans_deleted
        self.errors += other.errors
        self.passes += other.passes

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "transitions": dict(self.transitions),
            "orphans_deleted": self.orphans_deleted,
            "errors": self.errors,
            "passes": self.passes,
        }


@dataclass
class Owned:
    """The cluster objects of one job id, by role."""

    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)  # role -> Job
    claims: list[str] = field(default_factory=list)


def _index(objects: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_id: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for obj in objects:
        job_id = (obj["metadata"].get("labels") or {}).get(manifests.JOB_ID)
        if job_id:
            by_id[job_id].append(obj)
    return by_id


class Reconciler:
    def __init__(self, backends: Backends) -> None:
        self.b = backends
        self.create_grace_ms = int(backends.settings.create_grace * 1000)
        self.image_pull_grace_ms = int(backends.settings.image_pull_grace * 1000)
        self.report = SyncReport()

    def run(self) -> SyncReport:
        # The query and the two listings are independent: they overlap.
        with ThreadPoolExecutor(max_workers=3) as pool:
            unfinished = pool.submit(self.b.store.unfinished)
            k8s_jobs = pool.submit(self.b.cluster.jobs)
            claims = pool.submit(self.b.cluster.claims)
            records = {job.id: job for job in unfinished.result()}
            owned: dict[str, Owned] = defaultdict(Owned)
            for job_id, objs in _index(k8s_jobs.result()).items():
                for obj in objs:
                    owned[job_id].jobs[obj["metadata"]["labels"].get(manifests.ROLE, "job")] = obj
            for job_id, objs in _index(claims.result()).items():
                owned[job_id].claims = [obj["metadata"]["name"] for obj in objs]
        pods = self._pods_needed(records, owned)
        for job in records.values():
            self.report.checked += 1
            with log_context(job_id=job.id, job_name=job.name):
                try:
                    self._reconcile(job, owned.get(job.id, Owned()), pods.get(job.id, []))
                except TransitionRefusedError as refused:
                    log.info(
                        "status changed meanwhile; left as it is",
                        extra={"current": refused.current},
                    )
                except (ClusterApiError, BucketError) as error:
                    self.report.errors += 1
                    log.warning(
                        "could not reconcile the job; next sync retries",
                        extra={"error": str(error)},
                    )
        self._sweep_orphans([job_id for job_id in owned if job_id not in records], owned)
        self.report.passes = 1
        return self.report

    def check(self, job: Job) -> tuple[Job, list[dict[str, Any]]]:
        """Reconcile one job from its own objects (create's short watch): the new record,
        and the job's pods."""
        selector = f"{manifests.OWNED_SELECTOR},{manifests.JOB_ID}={job.id}"
        owned = Owned()
        for obj in self.b.cluster.jobs(selector):
            owned.jobs[obj["metadata"]["labels"].get(manifests.ROLE, "job")] = obj
        pods = self.b.cluster.pods(selector)
        self._reconcile(job, owned, pods)
        return self.b.store.get(job.id) or job, pods

    # -- per job ---------------------------------------------------------------------------

    def _reconcile(self, job: Job, owned: Owned, pods: list[dict[str, Any]]) -> None:
        k8s_job = owned.jobs.get("job")
        if job.status is Status.CREATED:
            self._created(job, k8s_job)
        elif job.status is Status.RUNNING:
            self._running(job, k8s_job, pods)
        elif job.status is Status.CLEANING:
            self._cleaning(job, owned.jobs.get("cleanup"), pods)

    def _created(self, job: Job, k8s_job: dict[str, Any] | None) -> None:
        if now_ms() - job.updated < self.create_grace_ms:
            return  # its create may still be running
        if k8s_job is not None:
            self._move(job, Status.RUNNING, "the create deployed it but did not record it")
            return
        self._fail(job, Failure("CreateInterrupted", "The create did not finish; nothing ran"))

    def _running(
        self, job: Job, k8s_job: dict[str, Any] | None, pods: list[dict[str, Any]]
    ) -> None:
        if k8s_job is None:
            self._fail(
                job, Failure("JobMissing", "The Kubernetes Job disappeared from the cluster")
            )
            return
        start = epoch_ms((k8s_job.get("status") or {}).get("startTime"))
        if start is not None:
            # Kubernetes times are whole seconds: never before the record's own creation.
            start = max(start, job.created)
        outcome = finished(k8s_job)
        if outcome == "Complete":
            moved = self._move(
                job, Status.CLEANING, "the job completed", {"start_time": job.start_time or start}
            )
            self._launch_cleanup(moved)
        elif outcome == "Failed":
            retries = int(job.job_parameters.get("retries", 0))
            self._fail(
                job, diagnose(k8s_job, pods, retries=retries), start_time=job.start_time or start
            )
        elif self._pull_stuck(job, pods):
            failure = image_pull_error(pods)
            assert failure is not None
            self._fail(job, failure, start_time=job.start_time or start)
        elif start and job.start_time is None:
            self.b.store.update(job.id, {"start_time": start}, status=Status.RUNNING)

    def _cleaning(
        self, job: Job, cleanup: dict[str, Any] | None, pods: list[dict[str, Any]]
    ) -> None:
        if cleanup is None:
            self._launch_cleanup(job)
            return
        outcome = finished(cleanup)
        if outcome == "Complete":
            # The finalize event may be lost or late: the object itself is the proof.
            if self.b.bucket.metadata(job.output_object) is not None:
                complete_success(
                    job, self.b, reason="cleanup job complete; output found by the sync"
                )
                self.report.count(Status.SUCCEEDED)
            else:
                self._fail(
                    job,
                    Failure("OutputMissing", "The cleanup finished but no output zip was found"),
                )
        elif outcome == "Failed":
            failure = diagnose(cleanup, pods, retries=manifests.CLEANUP_RETRIES)
            self._fail(
                job,
                Failure(
                    "CleanupFailed",
                    f"Uploading the output failed: {failure.message}",
                    failure.exit_code,
                ),
            )

    # -- actions ---------------------------------------------------------------------------

    def _move(
        self, job: Job, target: Status, why: str, updates: dict[str, Any] | None = None
    ) -> Job:
        """A checked transition from the status this sync read; `why` is recorded on it."""
        moved = self.b.store.transition(
            job.id, target, reason=why, expect={job.status}, updates=updates
        )
        self.report.count(target)
        log.info("job %s -> %s: %s", job.status.value, target.value, why)
        return moved

    def _fail(self, job: Job, failure: Failure, **updates: Any) -> None:
        why = f"{failure.reason}: {failure.message}"
        self._move(job, Status.FAILED, why, {**failure.updates(), **updates})
        remove_from_cluster(job, self.b)

    def _launch_cleanup(self, job: Job) -> None:
        try:
            self.b.cluster.create_job(manifests.cleanup_job(job, self.b.settings))
        except ClusterConflictError:
            pass  # an overlapping sync launched it already
        log.info("cleanup job launched")

    def _pull_stuck(self, job: Job, pods: list[dict[str, Any]]) -> bool:
        return (
            image_pull_error(pods) is not None
            and now_ms() - job.updated >= self.image_pull_grace_ms
        )

    def _pods_needed(
        self, records: dict[str, Job], owned: dict[str, Owned]
    ) -> dict[str, list[dict[str, Any]]]:
        """Pods only of jobs whose Job failed, or that run without a ready pod."""
        wanted = []
        for job_id, job in records.items():
            role = "cleanup" if job.status is Status.CLEANING else "job"
            k8s_job = owned.get(job_id, Owned()).jobs.get(role)
            if k8s_job is None:
                continue
            status = k8s_job.get("status") or {}
            outcome = finished(k8s_job)
            waiting = outcome is None and status.get("active") and not status.get("ready")
            if outcome == "Failed" or waiting:
                wanted.append(job_id)
        pods: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for start in range(0, len(wanted), SELECTOR_CHUNK):
            chunk = ",".join(wanted[start : start + SELECTOR_CHUNK])
            selector = f"{manifests.OWNED_SELECTOR},{manifests.JOB_ID} in ({chunk})"
            for job_id, objs in _index(self.b.cluster.pods(selector)).items():
                pods[job_id].extend(objs)
        return pods

    def _sweep_orphans(self, candidates: list[str], owned: dict[str, Owned]) -> None:
        """Delete what is labelled as ours without an unfinished record.

        A record created after this sync's query is not an orphan: its create stored it
        before making any cluster object, so it is read again here before deleting.
        """
        if not candidates:
            return
        current = self.b.store.get_many(candidates)
        for job_id in candidates:
            record = current.get(job_id)
            if record is not None and record.status not in FINAL:
                continue
            with log_context(job_id=job_id):
                try:
                    for k8s_job in owned[job_id].jobs.values():
                        self.b.cluster.delete_job(k8s_job["metadata"]["name"])
                    for claim in owned[job_id].claims:
                        self.b.cluster.delete_claim(claim)
                    self.report.orphans_deleted += 1
                    log.info(
                        "deleted leftovers",
                        extra={"record": record.status.value if record else None},
                    )
                except ClusterApiError as error:
                    self.report.errors += 1
                    log.warning("could not delete leftovers", extra={"error": str(error)})


def complete_success(job: Job, backends: Backends, *, reason: str) -> Job:
    """cleaning -> succeeded with the output URL, then remove the job from the cluster."""
    url, expires = backends.bucket.output_url(
        job.output_object, backends.settings.output_url_lifetime
    )
    done = backends.store.transition(
        job.id,
        Status.SUCCEEDED,
        reason=reason,
        expect={Status.CLEANING},
        updates={"output_file_url": url, "output_url_expires": expires},
    )
    remove_from_cluster(done, backends)
    return done


def synchronize(
    backends: Backends,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SyncReport:
    """One scheduler call: SYNC_PASSES_PER_CALL passes, JOB_SYNCHRONIZATION_INTERVAL apart.

    Cloud Scheduler fires at most once a minute, so shorter intervals run several passes per
    call. A pass is not started if, taking as long as the slowest one so far, it would end
    after SYNC_TIME_BUDGET_SECONDS: the call returns well before the function's timeout.
    """
    settings = backends.settings
    report, started, slowest = SyncReport(), clock(), 0.0
    for number in range(settings.sync_passes):
        start_at = started + number * settings.sync_interval
        if max(start_at, clock()) + slowest - started > settings.sync_budget:
            log.info("sync call stops: its time budget is spent", extra={"passes": number})
            break
        sleep(max(0.0, start_at - clock()))
        began = clock()
        report.add(Reconciler(backends).run())
        slowest = max(slowest, clock() - began)
    return report
