"""The Job controller: creates pods from a Job's template and keeps its status, conditions,
retries (backoffLimit, podFailurePolicy), deadline, suspension and TTL, as kube-controller-
manager does (pkg/controller/job/job_controller.go, 1.31-1.33). Indexed Jobs' indexes,
per-index retries and their status are in indexed.py.

- Every pod it creates carries the `batch.kubernetes.io/job-tracking` finalizer, so a pod
  cannot vanish before it was counted: the controller counts a finished pod (Succeeded,
  or failed in the sense of isPodFailed) and removes the finalizer in the same step
  (trackJobStatusAndRemoveFinalizers). Pods of a Job that is gone, finished or being
  deleted lose the finalizer too (syncOrphanPod, canRemoveFinalizer).
- isPodFailed: a pod is failed once its phase is Failed; when only failed pods are
  replaced (a podFailurePolicy, or podReplacementPolicy Failed: onlyReplaceFailedPods) a
  pod being deleted is not failed until it reaches that phase, otherwise a deleted pod
  that did not succeed counts as failed at once.
- A failed pod counts against backoffLimit unless the podFailurePolicy says Ignore
  (failure_policy.py); a FailJob match fails the Job at once (getFailJobMessage).
- manageJob: with onlyReplaceFailedPods, pods still terminating take the place of the
  pods they will be replaced by, so no replacement starts before the old pod has failed.
  New pods wait out the back-off (10 s doubling to 6 min) after failures, ignored ones
  included (backoff_utils.go counts every new failed pod).
- A Job without completions (parallelism alone) is a work queue: it is complete once a pod
  succeeded and none is left active, and starts no pod after the first success (manageJob).
- Interim conditions: FailureTarget (or SuccessCriteriaMet) is set first, and Failed (or
  Complete) once no pod of the Job is still terminating (delayTerminalCondition).
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from infra.local.kubesim import deletion, indexed, podstatus
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, now_rfc3339
from infra.local.kubesim.failure_policy import match_rules
from infra.local.kubesim.jobutil import (
    TRACKING_FINALIZER,
    condition,
    has_finalizer,
    is_finished,
    is_pod_failed,
    is_terminal,
    only_replace_failed,
    set_condition,
)
from infra.local.kubesim.loop import StoreLoop
from infra.local.kubesim.registry import random_suffix
from infra.local.kubesim.store import Obj, Store, meta

BACKOFF_BASE = 10.0  # simulated seconds before the first retry, doubling, capped
BACKOFF_CAP = 360.0


@dataclass
class JobState:
    """What the controller remembers about a Job between passes (in wall seconds): what
    kube-controller-manager keeps in memory too (the back-off record, its requeues)."""

    started_at: float | None = None
    finished_at: float | None = None
    failures_after_success: int = 0
    last_failure_at: float | None = None
    failed_seen: dict[str, float] = field(default_factory=dict)  # pod uid -> first seen failed


class JobController(StoreLoop):
    name = "job controller pass"
    full_pass = (
        0.1  # wall seconds: time-based work (deadlines, TTLs, backoff) is checked this often
    )

    def __init__(self, store: Store, clock: Clock) -> None:
        super().__init__(store, clock)
        self.states: dict[str, JobState] = {}
        self._owned: dict[str, list[Obj]] = {}

    def pass_once(self, now: float) -> None:
        jobs = list(self.store.raw_items(r.JOBS))
        self._owned = self._pods_by_owner()
        self._release_orphans({meta(j)["uid"]: j for j in jobs})
        for job in jobs:
            self._sync(job, now)
        live = {meta(j)["uid"] for j in jobs}
        for uid in [u for u in self.states if u not in live]:
            del self.states[uid]

    def _pods_by_owner(self) -> dict[str, list[Obj]]:
        """Every pod under the uid of its controller: one look at the pods per pass, not
        one per Job (which made a pass over thousands of Jobs quadratic)."""
        owned: dict[str, list[Obj]] = {}
        for pod in self.store.raw_items(r.PODS):
            for ref in meta(pod).get("ownerReferences") or []:
                if ref.get("controller"):
                    owned.setdefault(ref.get("uid", ""), []).append(pod)
        return owned

    def _release_orphans(self, jobs: dict[str, Obj]) -> None:
        """syncOrphanPod: a tracked pod whose Job is gone or finished loses the finalizer."""
        for pod in list(self.store.raw_items(r.PODS)):
            if not has_finalizer(pod):
                continue
            refs = meta(pod).get("ownerReferences") or []
            ref = next((x for x in refs if x.get("controller")), None)
            if ref is not None and (ref.get("kind"), ref.get("apiVersion")) != ("Job", "batch/v1"):
                continue  # another controller's pod
            job = jobs.get(ref.get("uid", "")) if ref is not None else None
            if job is None or is_finished(job):
                self._drop_finalizer(pod)

    def _drop_finalizer(self, pod: Obj) -> None:
        def change(p: Obj) -> None:
            left = [f for f in meta(p).get("finalizers") or [] if f != TRACKING_FINALIZER]
            if left:
                meta(p)["finalizers"] = left
            else:
                meta(p).pop("finalizers", None)

        m = meta(pod)
        saved = self.store.mutate(r.PODS, m["namespace"], m["name"], change)
        if saved is not None:
            current = self.store.raw(r.PODS, m["namespace"], m["name"])
            if current is not None:
                deletion.finish_if_unblocked(self.store, r.PODS, current)

    def _pods(self, job: Obj) -> list[Obj]:
        return list(self._owned.get(meta(job)["uid"], []))

    def _sync(self, job: Obj, now: float) -> None:
        m, spec = meta(job), job["spec"]
        pods = self._pods(job)
        if m.get("deletionTimestamp"):
            for pod in pods:  # canRemoveFinalizer: the whole Job is going away
                if has_finalizer(pod):
                    self._drop_finalizer(pod)
            return
        state = self.states.setdefault(m["uid"], JobState())
        status = copy.deepcopy(job.get("status") or {})
        if is_finished(job):
            self._expire(job, state, now)
            return
        suspended = bool(spec.get("suspend"))
        if status.get("startTime") is None and not suspended:
            status["startTime"] = now_rfc3339()
            state.started_at = now
        if state.started_at is None and not suspended:
            state.started_at = now
        active = [p for p in pods if not is_terminal(p) and not meta(p).get("deletionTimestamp")]
        terminating = [p for p in pods if not is_terminal(p) and meta(p).get("deletionTimestamp")]
        tracked = [p for p in pods if has_finalizer(p)]
        mode = indexed.is_indexed(job)
        valid = [p for p in tracked if not mode or indexed.valid(job, p)]  # getValidPods...
        new_succeeded = [p for p in valid if (p.get("status") or {}).get("phase") == "Succeeded"]
        new_failed = [p for p in valid if is_pod_failed(p, job)]
        self._backoff(state, new_succeeded, new_failed, now)
        state.failed_seen = {
            meta(p)["uid"]: state.failed_seen.get(meta(p)["uid"], now)
            for p in pods
            if is_pod_failed(p, job)
        }
        failed = status.get("failed", 0) + sum(1 for p in new_failed if match_rules(job, p).counts)
        succeeded = status.get("succeeded", 0) + len(new_succeeded)

        verdict = self._verdict(job, state, status, pods, failed, now)
        indexes = None
        if mode:
            failing = {meta(p)["uid"]: is_pod_failed(p, job) for p in tracked}
            indexes = indexed.observe(job, pods, active, failing)
            succeeded = indexed.total(indexes.succeeded)
            verdict = verdict or indexed.verdict(job, indexes)
        if verdict is not None:  # "Remove active pods if Job failed" (any finished condition)
            for pod in active:
                self._delete_pod(pod)
            terminating += active
            active = []
        else:
            active, terminating = self._manage(
                job, state, succeeded, active, terminating, now, indexes
            )
            completions = spec.get("completions")
            done = succeeded > 0 if completions is None else succeeded >= completions
            if done and not active:
                verdict = (
                    "SuccessCriteriaMet",
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                )
            elif suspended:
                set_condition(status, "Suspended", True, "JobSuspended", "Job suspended")
                state.started_at = None
            elif condition(status, "Suspended"):
                set_condition(status, "Suspended", False, "JobResumed", "Job resumed")
                status["startTime"] = now_rfc3339()  # a resumed Job starts its deadline anew
                state.started_at = now
        self._track(job, status, tracked, verdict, indexes)
        if verdict is not None:
            set_condition(status, verdict[0], True, verdict[1], verdict[2])
            if not terminating:
                final = "Failed" if verdict[0] == "FailureTarget" else "Complete"
                set_condition(status, final, True, verdict[1], verdict[2])
                if final == "Complete":
                    status["completionTime"] = now_rfc3339()
                state.finished_at = now
        self._save(job, status, active=active, terminating=terminating)

    def _backoff(
        self, state: JobState, succeeded: list[Obj], failed: list[Obj], now: float
    ) -> None:
        """newBackoffRecord (backoff_utils.go): failures since the last success."""
        if succeeded:
            state.failures_after_success = 0
            state.last_failure_at = None
        if failed:
            state.failures_after_success += len(failed)
            state.last_failure_at = now

    def _verdict(
        self,
        job: Obj,
        state: JobState,
        status: dict[str, Any],
        pods: list[Obj],
        failed: int,
        now: float,
    ) -> tuple[str, str, str] | None:
        """The finished condition syncJob decides on, if any (type, reason, message)."""
        spec = job["spec"]
        if condition(status, "SuccessCriteriaMet"):
            cond = condition(status, "SuccessCriteriaMet") or {}
            return ("SuccessCriteriaMet", cond.get("reason", ""), cond.get("message", ""))
        target = condition(status, "FailureTarget")
        if target is not None:
            return ("FailureTarget", target.get("reason", ""), target.get("message", ""))
        if spec.get("podFailurePolicy") is not None:
            for pod in pods:
                if is_pod_failed(pod, job):
                    match = match_rules(job, pod)
                    if match.action == "FailJob" and match.message:
                        return ("FailureTarget", "PodFailurePolicy", match.message)
        if failed > spec.get("backoffLimit", 6):
            return (
                "FailureTarget",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        deadline = spec.get("activeDeadlineSeconds")
        if (
            deadline is not None
            and not spec.get("suspend")
            and state.started_at is not None
            and now - state.started_at >= self.clock.wall(deadline)
        ):
            return (
                "FailureTarget",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        return None

    def _manage(
        self,
        job: Obj,
        state: JobState,
        succeeded: int,
        active: list[Obj],
        terminating: list[Obj],
        now: float,
        indexes: indexed.Indexes | None,
    ) -> tuple[list[Obj], list[Obj]]:
        """manageJob: suspension deletes the active pods; otherwise create or delete pods
        to reach the wanted number. Returns the active and terminating pods afterwards."""
        spec = job["spec"]
        if spec.get("suspend"):
            for pod in active:  # deleteJobPods: untracked first, so no failure is counted
                self._drop_finalizer(pod)
                self._delete_pod(pod)
            return [], terminating + active
        completions, parallelism = spec.get("completions"), spec.get("parallelism", 1)
        if completions is None:
            wanted = len(active) if succeeded > 0 else parallelism
        else:
            wanted = max(0, min(parallelism, completions - succeeded))
        extra = active[wanted:]
        if indexes is not None:  # activePodsForRemoval: repeated and invalid indexes first
            extra = indexed.extra_pods(job, active)
            left = sorted((p for p in active if p not in extra), key=indexed.progress)
            extra += left[: max(0, len(active) - wanted - len(extra))]
        if extra:  # pod deletion takes precedence over creation in one sync
            for pod in extra:
                self._drop_finalizer(pod)
                self._delete_pod(pod)
            return [p for p in active if p not in extra], terminating + extra
        held = terminating if only_replace_failed(job) else []
        missing = wanted - len(active) - len(held)
        if missing <= 0:
            return active, terminating
        if indexes is None or indexes.failed is None:  # one back-off for the whole Job
            if state.failures_after_success and state.last_failure_at is not None:
                delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (state.failures_after_success - 1))
                if now - state.last_failure_at < self.clock.wall(delay):
                    return active, terminating
        if indexes is None:
            return active + [self._new_pod(job) for _ in range(missing)], terminating
        todo = indexed.first_pending(indexes, active, held, missing)
        if indexes.failed is not None:  # getPodCreationInfoForIndependentIndexes
            todo = [i for i in todo if self._index_ready(indexes.delayed.get(i), state, now)]
        created = [self._new_pod(job, i, indexes.delayed.get(i)) for i in todo]
        return active + created, terminating

    def _index_ready(self, last: Obj | None, state: JobState, now: float) -> bool:
        """getRemainingTimePerIndex is over: the index's last failure is old enough."""
        if last is None:
            return True
        seen = state.failed_seen.get(meta(last)["uid"], now)
        return now - seen >= self.clock.wall(indexed.backoff_delay(last))

    def _track(
        self,
        job: Obj,
        status: dict[str, Any],
        tracked: list[Obj],
        verdict: tuple[str, str, str] | None,
        indexes: indexed.Indexes | None,
    ) -> None:
        """trackJobStatusAndRemoveFinalizers: count each finished pod once and release it.
        An Indexed Job counts pods of valid indexes only, its succeeded indexes rather than
        pods, and keeps an index's last failed pod until its replacement exists
        (canRemoveFinalizer)."""
        failing = verdict is not None and verdict[0] == "FailureTarget"
        delayed = [meta(p)["uid"] for p in indexes.delayed.values()] if indexes else []
        for pod in tracked:
            phase = (pod.get("status") or {}).get("phase")
            failed = is_pod_failed(pod, job)
            if not (verdict is not None or phase == "Succeeded" or failed):
                continue
            if verdict is None and phase != "Succeeded" and meta(pod)["uid"] in delayed:
                continue
            counts = indexes is None or indexed.valid(job, pod)
            if phase == "Succeeded":
                if indexes is None:
                    status["succeeded"] = status.get("succeeded", 0) + 1
            elif (failed or failing) and counts:
                if match_rules(job, pod).counts:
                    status["failed"] = status.get("failed", 0) + 1
            self._drop_finalizer(pod)
        if indexes is not None:
            status["succeeded"] = indexed.total(indexes.succeeded)
            status["completedIndexes"] = indexed.text(indexes.succeeded)
            if indexes.failed is not None:
                status["failedIndexes"] = indexed.text(indexes.failed)

    def _expire(self, job: Obj, state: JobState, now: float) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        if state.finished_at is None:
            state.finished_at = now
        if now - state.finished_at >= self.clock.wall(ttl):
            deletion.delete(
                self.store, self.clock, r.JOBS, job, deletion.Options(propagation="Background")
            )

    def _delete_pod(self, pod: Obj) -> None:
        current = self.store.raw(r.PODS, meta(pod)["namespace"], meta(pod)["name"])
        if current is None or meta(current)["uid"] != meta(pod)["uid"]:
            return
        deletion.delete(
            self.store, self.clock, r.PODS, current, deletion.Options(propagation="Background")
        )

    def _new_pod(self, job: Obj, index: int | None = None, replaced: Obj | None = None) -> Obj:
        m, template = meta(job), job["spec"]["template"]
        tmeta = template.get("metadata") or {}
        finalizers = list(tmeta.get("finalizers") or [])
        if TRACKING_FINALIZER not in finalizers:
            finalizers.append(TRACKING_FINALIZER)
        pod: Obj = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": "",
                "generateName": f"{m['name']}-",
                "namespace": m["namespace"],
                "uid": str(uuid.uuid4()),
                "creationTimestamp": now_rfc3339(),
                "labels": dict(tmeta.get("labels") or {}),
                "annotations": dict(tmeta.get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "batch/v1",
                        "kind": "Job",
                        "name": m["name"],
                        "uid": m["uid"],
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
                "finalizers": finalizers,
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }
        if index is not None:
            indexed.decorate(pod, job, index, replaced)
        prefix = pod["metadata"]["generateName"]
        name = prefix + random_suffix()
        while self.store.raw(r.PODS, m["namespace"], name) is not None:
            name = prefix + random_suffix()
        pod["metadata"]["name"] = name
        if not pod["metadata"]["annotations"]:
            del pod["metadata"]["annotations"]
        return self.store.save(r.PODS, pod, created=True)

    def _save(
        self, job: Obj, status: dict[str, Any], *, active: list[Obj], terminating: list[Obj]
    ) -> None:
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if podstatus.is_ready(p.get("status") or {}))
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        for key in ("active", "succeeded", "failed", "completedIndexes"):
            if not status.get(key):
                status.pop(key, None)
        if status != (job.get("status") or {}):
            updated = copy.deepcopy(job)
            updated["status"] = status
            self.store.save(r.JOBS, updated)
