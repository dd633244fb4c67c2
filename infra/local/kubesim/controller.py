"""The Job controller: creates pods from a Job's template and keeps its status, conditions,
retries (backoffLimit, podFailurePolicy), deadline, suspension and TTL, as kube-controller-
manager does for non-indexed Jobs.

Interim conditions follow Kubernetes 1.31+: FailureTarget (or SuccessCriteriaMet) is set
first, and Failed (or Complete) once no pod of the Job is still running or terminating.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from typing import Any

from infra.local.kubesim import deletion, podstatus
from infra.local.kubesim import resources as r
from infra.local.kubesim.clock import Clock, now_rfc3339
from infra.local.kubesim.failure_policy import match_rules
from infra.local.kubesim.loop import StoreLoop
from infra.local.kubesim.registry import random_suffix
from infra.local.kubesim.store import Obj, Store, meta

BACKOFF_BASE = 10.0  # simulated seconds before the first retry, doubling, capped
BACKOFF_CAP = 360.0
TERMINAL = ("Succeeded", "Failed")


@dataclass
class JobState:
    """What the controller remembers about a Job between passes (in wall seconds)."""

    started_at: float | None = None
    finished_at: float | None = None
    last_failure_at: float | None = None
    counted: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    verdict: tuple[str, str, str] | None = None  # (final type, reason, message)


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in status.get("conditions") or []:
        if cond["type"] == kind and cond["status"] == "True":
            result: dict[str, Any] = cond
            return result
    return None


def set_condition(
    status: dict[str, Any], kind: str, value: bool, reason: str, message: str
) -> None:
    conditions = status.setdefault("conditions", [])
    text = "True" if value else "False"
    now = now_rfc3339()
    for cond in conditions:
        if cond["type"] == kind:
            if cond["status"] != text:
                cond.update(status=text, lastTransitionTime=now)
            cond.update(lastProbeTime=now, reason=reason, message=message)
            return
    conditions.append(
        {
            "type": kind,
            "status": text,
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )


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

    def _pods(self, job: Obj) -> list[Obj]:
        return list(self._owned.get(meta(job)["uid"], []))

    def _sync(self, job: Obj, now: float) -> None:
        m, spec = meta(job), job["spec"]
        if m.get("deletionTimestamp"):
            return
        state = self.states.setdefault(m["uid"], JobState())
        status = copy.deepcopy(job.get("status") or {})
        if condition(status, "Complete") or condition(status, "Failed"):
            self._expire(job, state, now)
            return
        pods = self._pods(job)
        active = [
            p
            for p in pods
            if p["status"].get("phase") not in TERMINAL and not meta(p).get("deletionTimestamp")
        ]
        terminating = [
            p
            for p in pods
            if p["status"].get("phase") not in TERMINAL and meta(p).get("deletionTimestamp")
        ]
        self._count(job, state, pods, status, now)
        if state.verdict is None:
            if spec.get("suspend"):
                self._suspend(job, state, active, status)
                return self._save(job, status, active=[], terminating=terminating)
            if condition(status, "Suspended"):
                set_condition(status, "Suspended", False, "JobResumed", "Job resumed")
                status["startTime"] = now_rfc3339()
                state.started_at = now
            status.setdefault("startTime", now_rfc3339())
            if state.started_at is None:
                state.started_at = now
            self._judge(job, state, status, now)
        if state.verdict is not None:
            for pod in active:
                self._delete_pod(pod)
            if not active and not terminating:
                kind, reason, message = state.verdict
                set_condition(status, kind, True, reason, message)
                if kind == "Complete":
                    status["completionTime"] = now_rfc3339()
                state.finished_at = now
            return self._save(job, status, active=[], terminating=active + terminating)
        active += self._create_pods(
            job,
            state,
            status,
            len(active) + (len(terminating) if spec.get("podReplacementPolicy") == "Failed" else 0),
            now,
        )
        self._save(job, status, active=active, terminating=terminating)

    def _count(
        self, job: Obj, state: JobState, pods: list[Obj], status: dict[str, Any], now: float
    ) -> None:
        present = set()
        for pod in pods:
            uid, phase = meta(pod)["uid"], pod["status"].get("phase")
            present.add(uid)
            if uid in state.counted:
                continue
            if phase == "Succeeded":
                status["succeeded"] = status.get("succeeded", 0) + 1
                state.counted.add(uid)
            elif phase == "Failed":
                state.counted.add(uid)
                action = match_rules(job, pod)
                if action is not None and action[0] == "FailJob" and state.verdict is None:
                    set_condition(status, "FailureTarget", True, "PodFailurePolicy", action[1])
                    state.verdict = ("Failed", "PodFailurePolicy", action[1])
                if action is None or action[0] != "Ignore":
                    status["failed"] = status.get("failed", 0) + 1
                    state.last_failure_at = now
            else:
                state.seen.add(uid)
        suspended = bool(job["spec"].get("suspend"))
        for uid in state.seen - present - state.counted:
            state.counted.add(uid)
            if not suspended and state.verdict is None:
                status["failed"] = status.get("failed", 0) + 1
                state.last_failure_at = now

    def _judge(self, job: Obj, state: JobState, status: dict[str, Any], now: float) -> None:
        spec = job["spec"]
        deadline = spec.get("activeDeadlineSeconds")
        if status.get("failed", 0) > spec.get("backoffLimit", 6):
            verdict = (
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
        elif (
            deadline
            and state.started_at is not None
            and now - state.started_at >= self.clock.wall(deadline)
        ):
            verdict = (
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            )
        elif status.get("succeeded", 0) >= spec.get("completions", 1):
            verdict = (
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            )
        else:
            return
        interim = "FailureTarget" if verdict[0] == "Failed" else "SuccessCriteriaMet"
        set_condition(status, interim, True, verdict[1], verdict[2])
        state.verdict = verdict

    def _suspend(
        self, job: Obj, state: JobState, active: list[Obj], status: dict[str, Any]
    ) -> None:
        for pod in active:
            state.counted.add(meta(pod)["uid"])  # suspension is not a failure
            self._delete_pod(pod)
        if not condition(status, "Suspended"):
            set_condition(status, "Suspended", True, "JobSuspended", "Job suspended")
        state.started_at = None

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
        deletion.delete(
            self.store, self.clock, r.PODS, pod, deletion.Options(propagation="Background")
        )

    def _create_pods(
        self, job: Obj, state: JobState, status: dict[str, Any], busy: int, now: float
    ) -> list[Obj]:
        spec = job["spec"]
        wanted = (
            min(spec.get("parallelism", 1), spec.get("completions", 1) - status.get("succeeded", 0))
            - busy
        )
        failed = status.get("failed", 0)
        if wanted <= 0:
            return []
        if failed and state.last_failure_at is not None:
            delay = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failed - 1))
            if now - state.last_failure_at < self.clock.wall(delay):
                return []
        created = [self._new_pod(job) for _ in range(wanted)]
        state.seen.update(meta(p)["uid"] for p in created)
        return created

    def _new_pod(self, job: Obj) -> Obj:
        m, template = meta(job), job["spec"]["template"]
        tmeta = template.get("metadata") or {}
        name = f"{m['name']}-{random_suffix()}"
        while self.store.raw(r.PODS, m["namespace"], name) is not None:
            name = f"{m['name']}-{random_suffix()}"
        pod: Obj = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": name,
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
            },
            "spec": copy.deepcopy(template.get("spec") or {}),
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }
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
        for key in ("active", "succeeded", "failed"):
            if not status.get(key):
                status.pop(key, None)
        if status != (job.get("status") or {}):
            updated = copy.deepcopy(job)
            updated["status"] = status
            self.store.save(r.JOBS, updated)
