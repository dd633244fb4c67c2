"""`synchronize_batch_jobs`: reconcile the job records with what the cluster holds.

One Firestore query for the unfinished jobs and, at the same time, the cluster's Jobs, pods
and volume claims (left by an earlier layout) listed by the label the product puts on
everything, in pages of 500. Nothing is read per job, and nothing is written when nothing
changed. Every status change is checked against the version it
was decided on (shared/cloud/store.py), so two overlapping syncs, or a sync racing a kill,
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

from shared.cloud.backends import Backends
from shared.errors import BucketError, ClusterApiError, StoreError, TransitionRefusedError
from shared.jobs import admission, arrays, joblogs
from shared.jobs.cleanup import remove_from_cluster
from shared.jobs.completion import USER_DONE, USERS_DONE, complete_success, observed
from shared.jobs.start import scheduled, submission, upload
from shared.logs import log_context
from shared.model import manifests, queues
from shared.model.diagnosis import (
    Failure,
    condition,
    diagnose,
    finished,
    image_missing,
    image_pull_error,
    user_started,
    user_succeeded,
)
from shared.model.job import FINAL, Job, Status, now_ms

log = logging.getLogger(__name__)


@dataclass
class SyncReport:
    checked: int = 0
    transitions: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    orphans_deleted: int = 0
    queues_applied: int = 0
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
        self.queues_applied += other.queues_applied
        self.errors += other.errors
        self.passes += other.passes

    def as_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "transitions": dict(self.transitions),
            "orphans_deleted": self.orphans_deleted,
            "queues_applied": self.queues_applied,
            "errors": self.errors,
            "passes": self.passes,
        }


@dataclass
class Owned:
    """The cluster objects of one job id."""

    jobs: list[dict[str, Any]] = field(default_factory=list)
    pods: list[dict[str, Any]] = field(default_factory=list)
    claims: list[str] = field(default_factory=list)  # left by an earlier layout, swept

    def job(self, name: str) -> dict[str, Any] | None:
        return next((obj for obj in self.jobs if obj["metadata"]["name"] == name), None)


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
        self.kueue: admission.Snapshot | None = None  # this pass's view of waiting jobs

    def run(self) -> SyncReport:
        # The query and the three listings are independent: they overlap.
        with ThreadPoolExecutor(max_workers=4) as pool:
            unfinished = pool.submit(self.b.store.unfinished)
            k8s_jobs = pool.submit(self.b.cluster.jobs)
            pods = pool.submit(self.b.cluster.pods)
            claims = pool.submit(self.b.cluster.claims)
            records = {job.id: job for job in unfinished.result()}
            owned: dict[str, Owned] = defaultdict(Owned)
            for job_id, objs in _index(k8s_jobs.result()).items():
                owned[job_id].jobs = objs
            for job_id, objs in _index(pods.result()).items():
                owned[job_id].pods = objs
            for job_id, objs in _index(claims.result()).items():
                owned[job_id].claims = [obj["metadata"]["name"] for obj in objs]
        self.kueue = self._kueue(list(records.values()))
        for job in records.values():
            self.report.checked += 1
            with log_context(job_id=job.id, job_name=job.name):
                try:
                    self._reconcile(job, owned.get(job.id, Owned()))
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
        self._reconcile_queues()
        self.report.passes = 1
        return self.report

    def _kueue(self, jobs: list[Job]) -> admission.Snapshot | None:
        """Where the jobs that wait for Kueue are, read once a pass; None if it fails."""
        try:
            return admission.snapshot(self.b, jobs)
        except ClusterApiError as error:
            self.report.errors += 1
            log.warning(
                "could not read Kueue's queues; next sync retries", extra={"error": str(error)}
            )
            return None

    def _reconcile_queues(self) -> None:
        """Every account's ClusterQueue and LocalQueue as its record says (an operator's
        change another instance could not apply, an account made before its queue)."""
        default = self.b.settings.default_quota
        try:
            shares = [account.share(default) for account in self.b.accounts.all()]
            self.report.queues_applied += self.b.queues.reconcile(shares)
        except (ClusterApiError, StoreError) as error:
            self.report.errors += 1
            log.warning(
                "could not reconcile the queues; next sync retries", extra={"error": str(error)}
            )

    def check(self, job: Job) -> tuple[Job, list[dict[str, Any]]]:
        """Reconcile one job from its own objects (create's short watch): the new record,
        and the job's pods."""
        selector = manifests.job_selector(job.id)
        owned = Owned(jobs=self.b.cluster.jobs(selector), pods=self.b.cluster.pods(selector))
        self._reconcile(job, owned)
        return self.b.store.get(job.id) or job, owned.pods

    # -- per job ---------------------------------------------------------------------------

    def _reconcile(self, job: Job, owned: Owned) -> None:
        k8s_job = owned.job(job.name)
        if job.status is Status.CREATED:
            self._created(job, k8s_job)
        elif job.status in (Status.RUNNING, Status.CLEANING):
            self._deployed(job, k8s_job, owned.pods)

    def _created(self, job: Job, k8s_job: dict[str, Any] | None) -> None:
        if job.suspended:
            self._scheduled(job, k8s_job)
            return
        if job.awaiting_upload:
            self._awaiting_upload(job)
            return
        if now_ms() - job.updated < self.create_grace_ms:
            return  # its create may still be running
        if k8s_job is not None:
            if manifests.queue_of(k8s_job) == queues.SCHEDULED:
                self.b.store.update(job.id, {"suspended": True}, status=Status.CREATED)
                log.info("the create deployed the scheduled job but did not record it")
                return
            queue = manifests.queue_of(k8s_job)
            why = "the create deployed it but did not record it"
            self._move(job, Status.RUNNING, why, admission.pending(queue))
            return
        if job.submission:
            self._start_submitted(job)
            return
        # Nothing ran, so there is no log to keep; a Job the create made after all is
        # swept (its log saved) as soon as a sync sees it.
        failure = Failure("CreateInterrupted", "The create did not finish; nothing ran")
        self._fail_unstarted(job, failure)

    def _scheduled(self, job: Job, k8s_job: dict[str, Any] | None) -> None:
        """A suspended Job waiting for its start time: resumed once it has come."""
        if k8s_job is None:
            failure = Failure("JobMissing", "The scheduled Kubernetes Job disappeared")
            self._fail_unstarted(job, failure)
            return
        if job.scheduled_for is not None and job.scheduled_for > now_ms():
            return
        scheduled.resume(job, self.b)
        self.report.count(Status.RUNNING)

    def _start_submitted(self, job: Job) -> None:
        """A submission's job whose start was cut short (a transient failure, its event not
        delivered again yet): its input is in the bucket, so the sync starts it."""
        try:
            started, _ = submission.start(job, self.b)
        except TransitionRefusedError:
            return  # started, killed or failed meanwhile
        log.info("finished the start of a submitted job: %s", started.status.value)
        if started.status in (Status.RUNNING, Status.FAILED):
            self.report.count(started.status)

    def _awaiting_upload(self, job: Job) -> None:
        """Its input's finalize event deploys it; once the upload URL has expired, the sync
        deploys it if the input is there after all (a lost event), or fails it."""
        if job.input_upload_expires is not None and now_ms() < job.input_upload_expires:
            return
        if self.b.bucket.metadata(job.input_object) is not None:
            try:
                started, _ = upload.start(job, self.b)
            except ClusterApiError as error:
                if error.transient:
                    raise
                failure = Failure("ClusterError", f"The cluster refused the job: {error}")
                self._fail_unstarted(job, failure)
                return
            if started.status is Status.RUNNING:
                self.report.count(Status.RUNNING)
            return
        failure = Failure("InputNotUploaded", "No input was uploaded before its upload URL expired")
        self._fail_unstarted(job, failure)

    def _deployed(
        self, job: Job, k8s_job: dict[str, Any] | None, pods: list[dict[str, Any]]
    ) -> None:
        """A running or cleaning job, from its Job and its pods' statuses."""
        if job.task_count is not None:
            self._deployed_array(job, k8s_job, pods)
            return
        facts = {**observed(job, pods), **admission.facts(job, k8s_job, self.kueue)}
        if k8s_job is None:
            if not self._output_landed(job, pods, facts, "the output was found by the sync"):
                missing = Failure("JobMissing", "The Kubernetes Job disappeared from the cluster")
                self._fail(job, missing, pods, **facts)
            return
        outcome = finished(k8s_job)
        if outcome == "Complete":
            # The finalize event may be lost or late: the object itself is the proof.
            if not self._output_landed(job, pods, facts, "job complete; output found by the sync"):
                failure = Failure("OutputMissing", "The job completed but no output zip was found")
                self._fail(job, failure, pods, **facts)
        elif outcome == "Failed":
            if not self._output_landed(job, pods, facts, "output found after the Job failed"):
                retries = int(job.job_parameters.get("retries", 0))
                self._fail(job, diagnose(k8s_job, pods, retries=retries), pods, **facts)
        elif (pull := self._pull_stuck(job, pods)) is not None:
            self._fail(job, pull, pods, **facts)
        elif job.status is Status.RUNNING and user_succeeded(pods):
            self._move(job, Status.CLEANING, USER_DONE, facts)
        elif facts:
            self.b.store.update(job.id, facts, status=job.status)

    def _deployed_array(
        self, job: Job, k8s_job: dict[str, Any] | None, pods: list[dict[str, Any]]
    ) -> None:
        """An array job: its tasks' progress, and its end once the Job has ended (Failed
        with FailedIndexes is a success when no more tasks failed than it tolerates)."""
        facts = {**observed(job, pods), **admission.facts(job, k8s_job, self.kueue)}
        if k8s_job is not None:
            facts.update(arrays.progress(job, k8s_job, pods))
        outcome = finished(k8s_job) if k8s_job is not None else "Missing"
        failed = (
            (condition(k8s_job, "Failed") or condition(k8s_job, "FailureTarget") or {})
            if k8s_job
            else {}
        )
        if outcome == "Missing" or outcome == "Complete" or failed.get("reason") == "FailedIndexes":
            if not self._outputs_landed(job, k8s_job, pods, facts):
                failure = (
                    Failure("JobMissing", "The Kubernetes Job disappeared from the cluster")
                    if k8s_job is None
                    else Failure("OutputMissing", "Tasks completed but not all outputs were found")
                )
                self._fail(job, failure, pods, **facts)
        elif outcome == "Failed":
            assert k8s_job is not None
            if failed.get("reason") == "MaxFailedIndexesExceeded":
                failure = arrays.tasks_failed(job, k8s_job)
            else:
                retries = int(job.job_parameters.get("retries", 0))
                failure = diagnose(k8s_job, pods, retries=retries)
            self._fail(job, failure, pods, **facts)
        elif (pull := self._pull_stuck(job, pods)) is not None:
            self._fail(job, pull, pods, **facts)
        elif job.status is Status.RUNNING and arrays.users_done(job, k8s_job or {}, pods):
            self._move(job, Status.CLEANING, USERS_DONE, facts)
        elif facts:
            self.b.store.update(job.id, facts, status=job.status)

    def _outputs_landed(
        self,
        job: Job,
        k8s_job: dict[str, Any] | None,
        pods: list[dict[str, Any]],
        facts: dict[str, Any],
    ) -> bool:
        """If every output the array job owes is in the bucket, record the success: True."""
        expected = arrays.expected_outputs(job, k8s_job)
        if not expected or not expected <= arrays.landed(job, self.b):
            return False
        reason = "every task's output found by the sync"
        complete_success(job, self.b, reason=reason, pods=pods, updates=facts, outputs=expected)
        self.report.count(Status.SUCCEEDED)
        return True

    def _output_landed(
        self, job: Job, pods: list[dict[str, Any]], facts: dict[str, Any], reason: str
    ) -> bool:
        """If this job's output is in the bucket, record the success: True."""
        metadata = self.b.bucket.metadata(job.output_object)
        if metadata is None or metadata.get("job-id") != job.id:
            return False  # absent, or not written through this job's upload session
        complete_success(job, self.b, reason=reason, pods=pods, updates=facts)
        self.report.count(Status.SUCCEEDED)
        return True

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

    def _fail_unstarted(self, job: Job, failure: Failure) -> None:
        """Fail a job that never ran: there is no pod, and no log to keep."""
        self._move(job, Status.FAILED, f"{failure.reason}: {failure.message}", failure.updates())

    def _fail(self, job: Job, failure: Failure, pods: list[dict[str, Any]], **updates: Any) -> None:
        why = f"{failure.reason}: {failure.message}"
        failed = self._move(job, Status.FAILED, why, {**failure.updates(), **updates})
        remove_from_cluster(failed, self.b, pods)

    def _pull_stuck(self, job: Job, pods: list[dict[str, Any]]) -> Failure | None:
        """An image that does not exist, or any other image pull error older than
        IMAGE_PULL_GRACE_SECONDS (a registry that may answer later): Kubernetes itself never
        fails a Job for either."""
        failure = image_pull_error(pods)
        if failure is None or image_missing(failure):
            return failure
        if now_ms() - job.updated < self.image_pull_grace_ms:
            return None
        return failure

    def _sweep_orphans(self, candidates: list[str], owned: dict[str, Owned]) -> None:
        """Delete what is labelled as ours without an unfinished record, saving the log of
        a job that has a record first (a kill or an end whose cleanup was cut short).

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
            objects = owned[job_id]
            with log_context(job_id=job_id):
                try:
                    if record is not None and objects.jobs:
                        if self.b.bucket.metadata(record.log_object) is None:
                            joblogs.save(record, self.b, objects.pods)
                    for k8s_job in objects.jobs:
                        self.b.cluster.delete_job(k8s_job["metadata"]["name"])
                    for claim in objects.claims:
                        self.b.cluster.delete_claim(claim)
                    self.report.orphans_deleted += 1
                    log.info(
                        "deleted leftovers",
                        extra={"record": record.status.value if record else None},
                    )
                except (ClusterApiError, BucketError) as error:
                    self.report.errors += 1
                    log.warning("could not delete leftovers", extra={"error": str(error)})


WATCH_POLL_SECONDS = 0.25  # how often a create looks at a new job's pod while it waits


def watch_start(job: Job, backends: Backends) -> tuple[Job, str]:
    """After a create, up to CREATE_WAIT_SECONDS for the user's container to start
    (reconciling the one job meanwhile); a slow pod is left to the sync."""
    deadline = time.monotonic() + backends.settings.create_wait
    while True:
        try:
            job, pods = Reconciler(backends).check(job)
        except (ClusterApiError, BucketError, TransitionRefusedError) as error:
            log.info("stopped watching the start: %s", error)
            return job, ""
        if job.status is not Status.RUNNING:
            finished = job.status in (Status.CLEANING, Status.SUCCEEDED)
            return job, f"Job {job.id} finished instantly" if finished else ""
        if user_started(pods) is not None or time.monotonic() >= deadline:
            return job, ""
        time.sleep(min(WATCH_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


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
