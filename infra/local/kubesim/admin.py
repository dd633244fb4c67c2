"""Test controls under /_kubesim/: injected faults and request counters.

Faults let tests show that the product survives an API server that errors or stalls;
the counters let benchmarks count the Kubernetes requests a sync makes.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any

from infra.local.kubesim.status import ApiError, bad_request

VERBS = ("create", "get", "list", "watch", "delete", "deletecollection", "patch", "update", "*")
REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


@dataclass
class Fault:
    verb: str
    path: re.Pattern[str]
    status: int
    remaining: int
    delay_seconds: float
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "verb": self.verb,
            "path": self.path.pattern,
            "status": self.status,
            "count": self.remaining,
            "delay_seconds": self.delay_seconds,
            "message": self.message,
        }

    def error(self) -> ApiError:
        reason = REASONS.get(self.status, "InternalError")
        message = self.message or f"kubesim injected fault: {self.status} {reason}"
        return ApiError(
            self.status,
            reason,
            message,
            {"causes": [{"message": message}]} if self.status == 500 else {},
        )


def parse_fault(body: Any) -> Fault:
    if not isinstance(body, dict):
        raise bad_request("a fault is a JSON object")
    verb = str(body.get("verb", "*"))
    if verb not in VERBS:
        raise bad_request(f"verb must be one of {', '.join(VERBS)}")
    try:
        pattern = re.compile(str(body.get("path", ".*")))
        status = int(body.get("status") or 0)
        count = int(body.get("count", 1))
        delay = float(body.get("delay_seconds") or 0.0)
    except (re.error, TypeError, ValueError) as error:
        raise bad_request(f"bad fault: {error}") from error
    if status and not 400 <= status <= 599:
        raise bad_request("status must be an HTTP error code (400-599)")
    if not status and delay <= 0:
        raise bad_request("a fault needs a status, a delay_seconds, or both")
    return Fault(verb, pattern, status, count, delay, str(body.get("message") or ""))


class Admin:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []
        self._counts: Counter[str] = Counter()
        self._by_resource: Counter[str] = Counter()

    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def faults(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.to_dict() for f in self._faults]

    def take_fault(self, verb: str, path: str) -> Fault | None:
        """The first fault matching this request, used up by one (it is gone at zero)."""
        with self._lock:
            for fault in self._faults:
                if fault.verb in ("*", verb) and fault.path.search(path):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def count(self, verb: str, resource: str) -> None:
        with self._lock:
            self._counts[verb] += 1
            self._by_resource[f"{verb} {resource}"] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total": sum(self._counts.values()),
                "by_verb": dict(self._counts),
                "by_resource": dict(self._by_resource),
            }

    def reset_stats(self) -> None:
        with self._lock:
            self._counts.clear()
            self._by_resource.clear()
