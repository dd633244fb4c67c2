"""Time for the simulator: wall-clock timestamps, and simulated durations scaled by speed.

Every simulated duration (run time, scheduling delay, grace period, deadline, TTL, backoff)
is divided by the speed factor, so tests at speed 20 see a 1 s container finish in 50 ms.
Timestamps stay real wall-clock times, as a client would see them from a cluster.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

_log_lock = threading.Lock()
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40}
_min_level = 20


def now_rfc3339(at: float | None = None) -> str:
    """Now (or the epoch time `at`) as the API server writes times: whole seconds, UTC."""
    moment = datetime.now(UTC) if at is None else datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch of a 'YYYY-MM-DDTHH:MM:SSZ' timestamp."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()


class Clock:
    """Scales simulated seconds to wall seconds, and remembers when things happened."""

    def __init__(self, speed: float) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed

    def wall(self, simulated_seconds: float) -> float:
        return max(0.0, float(simulated_seconds)) / self.speed

    @staticmethod
    def monotonic() -> float:
        return time.monotonic()


def set_log_level(level: str) -> None:
    global _min_level
    _min_level = _LEVELS.get(level.upper(), 20)


def log(severity: str, message: str, **fields: Any) -> None:
    """One JSON object a line on stderr: what the lead's log tooling and Cloud Logging read."""
    if _LEVELS.get(severity, 20) < _min_level:
        return
    record = {"severity": severity, "message": message, "component": "nodeagent", **fields}
    line = json.dumps(record, default=str)
    with _log_lock:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
