"""Indexed Jobs: completion indexes, per-index retries and their status, as
kube-controller-manager 1.32-1.33 keeps them (pkg/controller/job/indexed_job_utils.go,
job_controller.go, backoff_utils.go; https://kubernetes.io/docs/concepts/workloads/controllers/job/#completion-mode).

- Index sets are ordered intervals, written as `.status.completedIndexes` and
  `.status.failedIndexes` are: "0,2-5", two neighbours as "3,4" (orderedIntervals.String).
  A pod's index is its `batch.kubernetes.io/job-completion-index` annotation; a pod
  without a valid one, or with one past `completions`, is not counted (getCompletionIndex,
  getValidPodsWithFilter) and is removed when active (appendDuplicatedIndexPodsForRemoval).
- An index succeeds once one of its pods succeeds (calculateSucceededIndexes); the
  lowest pending indexes get pods first (firstPendingIndexes), where pending means not
  succeeded, not failed, not active, and not held by a terminating pod when only failed
  pods are replaced.
- Each pod is named `<job>-<index>-<random5>` (podGenerateNameWithIndex), carries the
  index as annotation and label (PodIndexLabel, GA in 1.32), the hostname `<job>-<index>`
  (set whatever the subdomain), and every container and init container gets
  JOB_COMPLETION_INDEX from a fieldRef to that label unless it already defines it
  (addCompletionIndexEnvVariable).
- backoffLimitPerIndex: a pod carries its index's earlier failures in
  `batch.kubernetes.io/job-index-failure-count` (counted ones) and
  `...-job-index-ignored-failure-count` (ones the podFailurePolicy ignored), copied from the
  pod it replaces plus that pod's own failure (getNewIndexFailureCounts). An index fails
  when a counted failure comes with failure-count >= backoffLimitPerIndex, or a FailIndex
  rule matches (isIndexFailed). The failed pod keeps its finalizer until its replacement
  exists, so the counts can be copied (getPodsWithDelayedDeletionPerIndex), and the
  replacement waits its own back-off: 10 s doubling per earlier failure of the index, up
  to 6 min, from the failure (getRemainingTimePerIndex); kubesim counts that from when the
  controller first saw the pod failed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from infra.local.kubesim.clock import parse_rfc3339
from infra.local.kubesim.failure_policy import match_rules
from infra.local.kubesim.store import Obj, meta

INDEX_KEY = "batch.kubernetes.io/job-completion-index"
FAILURE_COUNT = "batch.kubernetes.io/job-index-failure-count"
IGNORED_COUNT = "batch.kubernetes.io/job-index-ignored-failure-count"
ENV_NAME = "JOB_COMPLETION_INDEX"
MAX_GENERATED_NAME = 58  # names.MaxGeneratedNameLength: 63 less the 5 random characters
MAX_INT32 = 2**31 - 1
BACKOFF_BASE = 10.0  # DefaultJobPodFailureBackOff, simulated seconds
BACKOFF_CAP = 360.0  # MaxJobPodFailureBackOff

Intervals = list[tuple[int, int]]


def is_indexed(job: Obj) -> bool:
    return (job.get("spec") or {}).get("completionMode") == "Indexed"


def per_index(job: Obj) -> bool:
    """hasBackoffLimitPerIndex (the feature is GA in 1.33, on by default since 1.29)."""
    return (job.get("spec") or {}).get("backoffLimitPerIndex") is not None


def parse(text: str | None, completions: int) -> Intervals:
    """parseIndexesFromString: corrupt parts are skipped, indexes past completions cut."""
    result: Intervals = []
    for part in (text or "").split(",") if text else []:
        limits = part.split("-")
        try:
            first = int(limits[0])
        except ValueError:
            continue
        if first >= completions:
            break
        last = first
        if len(limits) > 1:
            try:
                last = min(int(limits[1]), completions - 1)
            except ValueError:
                continue
        if result and result[-1][1] == first - 1:
            result[-1] = (result[-1][0], last)
        else:
            result.append((first, last))
    return result


def merge(old: Intervals, new: Intervals) -> Intervals:
    """orderedIntervals.merge: both ordered; touching or overlapping intervals join."""
    result: Intervals = []
    for first, last in sorted(old + new):
        if result and first <= result[-1][1] + 1:
            if last > result[-1][1]:
                result[-1] = (result[-1][0], last)
        else:
            result.append((first, last))
    return result


def with_indexes(old: Intervals, indexes: Iterable[int]) -> Intervals:
    return merge(old, [(i, i) for i in sorted(set(indexes))])


def total(intervals: Intervals) -> int:
    return sum(last - first + 1 for first, last in intervals)


def has(intervals: Intervals, index: int) -> bool:
    return any(first <= index <= last for first, last in intervals)


def text(intervals: Intervals) -> str:
    """orderedIntervals.String: "1,3-5,7,8"."""
    parts = []
    for first, last in intervals:
        if last == first:
            parts.append(str(first))
        elif last == first + 1:
            parts.append(f"{first},{last}")
        else:
            parts.append(f"{first}-{last}")
    return ",".join(parts)


def _count(value: str | None) -> int:
    """parseInt32: anything unparsable, negative or past int32 counts as 0."""
    try:
        number = int(value or "0")
    except ValueError:
        return 0
    return number if 0 <= number <= MAX_INT32 else 0


def index_of(pod: Obj) -> int:
    """getCompletionIndex: the annotation's value, or -1."""
    value = (meta(pod).get("annotations") or {}).get(INDEX_KEY)
    try:
        number = int(value) if value is not None else -1
    except ValueError:
        return -1
    return number if number >= 0 else -1


def valid(job: Obj, pod: Obj) -> bool:
    """A pod whose index counts: known and below completions."""
    return 0 <= index_of(pod) < int(job["spec"].get("completions") or 0)


def failure_counts(pod: Obj) -> tuple[int, int]:
    """(failure-count, ignored-failure-count) of a pod's annotations."""
    annotations = meta(pod).get("annotations") or {}
    return _count(annotations.get(FAILURE_COUNT)), _count(annotations.get(IGNORED_COUNT))


def new_failure_counts(job: Obj, replaced: Obj | None) -> tuple[int, int]:
    """getNewIndexFailureCounts: the replaced pod's counts plus its own failure."""
    if replaced is None:
        return 0, 0
    counted, ignored = failure_counts(replaced)
    if match_rules(job, replaced).counts:
        return counted + 1, ignored
    return counted, ignored + 1


@dataclass
class Indexes:
    """What syncJob works out about an Indexed Job's indexes in one pass (jobCtx)."""

    completions: int
    previous: Intervals  # .status.completedIndexes as read
    succeeded: Intervals
    failed: Intervals | None = None  # None without backoffLimitPerIndex
    delayed: dict[int, Obj] = field(default_factory=dict)  # the last failed pod per index


def observe(job: Obj, pods: list[Obj], active: list[Obj], is_failed: dict[str, bool]) -> Indexes:
    """calculateSucceededIndexes, calculateFailedIndexes, getPodsWithDelayedDeletionPerIndex.

    `is_failed` maps pod uid to isPodFailed for the pods that have the tracking finalizer."""
    spec, status = job["spec"], job.get("status") or {}
    completions = int(spec.get("completions") or 0)
    tracked = [p for p in pods if meta(p)["uid"] in is_failed and valid(job, p)]
    previous = parse(status.get("completedIndexes"), completions)
    new_succeeded = [
        index_of(p) for p in tracked if (p.get("status") or {}).get("phase") == "Succeeded"
    ]
    result = Indexes(completions, previous, with_indexes(previous, new_succeeded))
    if not per_index(job):
        return result
    limit = int(spec["backoffLimitPerIndex"])
    newly_failed = []
    for pod in tracked:
        if not is_failed[meta(pod)["uid"]]:
            continue
        match = match_rules(job, pod)
        if match.action == "FailIndex" or (match.counts and failure_counts(pod)[0] >= limit):
            newly_failed.append(index_of(pod))
    result.failed = with_indexes(parse(status.get("failedIndexes"), completions), newly_failed)
    busy = {index_of(p) for p in active}
    for pod in tracked:
        index = index_of(pod)
        if not is_failed[meta(pod)["uid"]] or index in busy:
            continue
        if has(result.succeeded, index) or has(result.failed, index):
            continue
        last = result.delayed.get(index)
        if last is None or sum(failure_counts(last)) <= sum(failure_counts(pod)):
            result.delayed[index] = pod
    return result


def verdict(job: Obj, indexes: Indexes) -> tuple[str, str, str] | None:
    """The failure syncJob decides on from the failed indexes, if any."""
    if indexes.failed is None:
        return None
    failed = total(indexes.failed)
    most = job["spec"].get("maxFailedIndexes")
    if most is not None and failed > most:
        return (
            "FailureTarget",
            "MaxFailedIndexesExceeded",
            "Job has exceeded the specified maximal number of failed indexes",
        )
    if failed > 0 and failed + total(indexes.succeeded) >= indexes.completions:
        return ("FailureTarget", "FailedIndexes", "Job has failed indexes")
    return None


def first_pending(
    indexes: Indexes, active: list[Obj], terminating: list[Obj], count: int
) -> list[int]:
    """firstPendingIndexes: the `count` lowest indexes nobody holds."""
    busy = merge(indexes.succeeded, indexes.failed or [])
    busy = with_indexes(busy, [index_of(p) for p in active + terminating if index_of(p) >= 0])
    result: list[int] = []
    candidate = 0
    for first, last in busy + [(indexes.completions, indexes.completions)]:
        while candidate < min(first, indexes.completions) and len(result) < count:
            result.append(candidate)
            candidate += 1
        candidate = max(candidate, last + 1)
    return result


def backoff_delay(pod: Obj) -> float:
    """getRemainingTimePerIndex's delay, in simulated seconds, after the failure of `pod`
    (the index's last failed pod): 10 s doubling per failure of the index, up to 6 min."""
    failures = sum(failure_counts(pod)) + 1
    return min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (failures - 1))


def extra_pods(job: Obj, active: list[Obj]) -> list[Obj]:
    """appendDuplicatedIndexPodsForRemoval: pods without a valid index, and all but one
    pod of each index (the one furthest along stays)."""
    remove: list[Obj] = []
    by_index: dict[int, list[Obj]] = {}
    for pod in active:
        if valid(job, pod):
            by_index.setdefault(index_of(pod), []).append(pod)
        else:
            remove.append(pod)
    for pods in by_index.values():
        remove.extend(sorted(pods, key=progress)[:-1])
    return remove


def progress(pod: Obj) -> tuple[bool, bool, float]:
    """controller.ActivePods order, roughly: pending before running, not ready before
    ready, newer before older; the first ones are removed first."""
    status = pod.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    created = meta(pod).get("creationTimestamp")
    age = -parse_rfc3339(created) if created else float("-inf")
    return (status.get("phase") == "Running", ready, age)


def decorate(pod: Obj, job: Obj, index: int, replaced: Obj | None) -> None:
    """What manageJob adds to the template of an index's pod."""
    name = meta(job)["name"]
    suffix = f"-{index}-"
    prefix = name + suffix
    if len(prefix) > MAX_GENERATED_NAME:
        prefix = prefix[: MAX_GENERATED_NAME - len(suffix)] + suffix
    m = pod["metadata"]
    m["generateName"] = prefix
    m.setdefault("annotations", {})[INDEX_KEY] = str(index)
    m.setdefault("labels", {})[INDEX_KEY] = str(index)
    if per_index(job):
        counted, ignored = new_failure_counts(job, replaced)
        m["annotations"][FAILURE_COUNT] = str(counted)
        if ignored > 0:
            m["annotations"][IGNORED_COUNT] = str(ignored)
    spec = pod["spec"]
    spec["hostname"] = f"{name}-{index}"
    for container in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
        env = container.setdefault("env", [])
        if not any(var.get("name") == ENV_NAME for var in env):
            path = f"metadata.labels['{INDEX_KEY}']"
            ref = {"apiVersion": "v1", "fieldPath": path}
            env.append({"name": ENV_NAME, "valueFrom": {"fieldRef": ref}})
