"""An array job's tasks, below everything that handles them (arrays.py, joblogs.py): which
task a pod runs, and work done for every task at once.

An array job is one Indexed Job: each pod carries the index of its task."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from shared.model.diagnosis import Pod

T = TypeVar("T")
# Set on an Indexed Job's pods, as annotation and label (pkg/apis/batch/types.go).
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"
THREADS = 16  # threads that sign URLs or save logs, one task each


def task_of(pod: Pod) -> int | None:
    meta = pod.get("metadata") or {}
    raw = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(
        COMPLETION_INDEX
    )
    return int(raw) if raw is not None and str(raw).isdigit() else None


def pods_of(pods: list[Pod], index: int) -> list[Pod]:
    return [pod for pod in pods if task_of(pod) == index]


def indexes_of(pods: list[Pod]) -> list[int]:
    """The tasks that have pods, in order."""
    return sorted({index for pod in pods if (index := task_of(pod)) is not None})


def each(work: Callable[[int], T], indexes: Iterable[int]) -> list[T]:
    """`work` for every index, on a few threads, each in the caller's log context (so
    every line names the job)."""
    context = contextvars.copy_context()
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        return list(pool.map(lambda index: context.copy().run(work, index), indexes))
