"""The health check: Firestore, the cluster and the bucket are each asked something cheap,
in parallel, and must answer within BACKEND_TIMEOUT_SECONDS. Nothing is written.

- Firestore: a read of a document that does not exist (an answer is all it takes).
- The cluster: list at most one Job in the namespace, with the function's own credentials.
- The bucket: list at most one object. Its metadata would need storage.buckets.get, which
  the API's role (objects only) does not hold; the listing needs storage.objects.list, which
  it does, and fails the same way when the bucket is missing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

from shared.cloud.backends import Backends
from shared.errors import cut

DEPENDENCIES = ("firestore", "cluster", "bucket")
GRACE = 0.25  # s past BACKEND_TIMEOUT_SECONDS for a probe's own timeout to fire first


@dataclass(frozen=True)
class Probe:
    ok: bool
    latency_ms: float
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        answer: dict[str, Any] = {"ok": self.ok, "latency_ms": round(self.latency_ms, 1)}
        if self.error:
            answer["error"] = self.error
        return answer


def check(backends: Backends) -> dict[str, Probe]:
    """Each dependency's probe, by name (DEPENDENCIES' order)."""
    limit = backends.settings.backend_timeout
    calls: dict[str, Callable[[], None]] = {
        "firestore": lambda: backends.store.probe(),
        "cluster": lambda: backends.cluster.probe(),
        "bucket": lambda: backends.bucket.probe(),
    }
    futures: dict[str, Future[Probe]] = {
        name: _pool().submit(_timed, call, limit) for name, call in calls.items()
    }
    wait(futures.values(), timeout=limit + GRACE)
    late = Probe(False, limit * 1000, f"no answer within {limit:g} s")
    return {name: future.result() if future.done() else late for name, future in futures.items()}


def _timed(call: Callable[[], None], limit: float) -> Probe:
    started = time.perf_counter()
    try:
        call()
    except Exception as error:  # any failure, a misconfigured client's included, is "down"
        elapsed = (time.perf_counter() - started) * 1000
        return Probe(False, elapsed, cut(f"{type(error).__name__}: {error}", 300))
    elapsed = (time.perf_counter() - started) * 1000
    if elapsed > limit * 1000:
        return Probe(False, elapsed, f"answered after {elapsed:.0f} ms, over {limit:g} s")
    return Probe(True, elapsed)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """Threads for the probes, made once. A probe stuck past its timeout keeps its thread,
    so there are spares for the next checks."""
    return ThreadPoolExecutor(max_workers=3 * len(DEPENDENCIES), thread_name_prefix="health")
