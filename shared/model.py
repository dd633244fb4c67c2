"""A job record, its six statuses, and the one table of allowed status changes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    CREATED = "created"  # being deployed
    RUNNING = "running"  # deployed; its pod stages the input in, or runs the user's container
    CLEANING = "cleaning"  # the user's container exited 0; stage-out uploads the output
    SUCCEEDED = "succeeded"  # output zip in the bucket
    FAILED = "failed"  # could not be deployed, or failed mid-execution
    KILLED = "killed"  # stopped by its user


FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.KILLED})

# Every status change goes through this table (JobStore.transition checks it).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.RUNNING, Status.FAILED}),
    Status.RUNNING: frozenset({Status.CLEANING, Status.FAILED, Status.KILLED}),
    Status.CLEANING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.KILLED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.KILLED: frozenset(),
}

KILLABLE = frozenset({Status.RUNNING, Status.CLEANING})


def allowed(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Job:
    """One job, as stored in Firestore (one document, id = the job id)."""

    id: str
    name: str
    status: Status
    created: int  # epoch milliseconds
    job_parameters: dict[str, Any]  # as accepted, without input_zip
    account_id: str | None = None
    has_input: bool = False
    start_time: int | None = None  # epoch ms: the job's pod started
    stop_time: int | None = None  # epoch ms: reached a final status
    reason: str | None = None  # why it failed (or was killed): short code
    message: str | None = None  # human detail of the reason
    exit_code: int | None = None
    disruptions: int = 0  # pods lost to evictions, drains or Spot preemptions (no retry used)
    disrupted_pods: list[str] = field(default_factory=list)  # their names, each counted once
    output_file_url: str | None = None
    output_url_expires: int | None = None  # epoch ms; None = does not expire
    transitions: list[dict[str, Any]] = field(default_factory=list)
    updated: int = 0  # epoch ms of the last write

    @property
    def input_object(self) -> str:
        return f"{self.name}-input.zip"

    @property
    def output_object(self) -> str:
        return f"{self.name}-output.zip"

    @property
    def log_object(self) -> str:
        """The user container's log, saved before the job's pod is deleted."""
        return f"{self.name}-logs.txt"

    def to_document(self) -> dict[str, Any]:
        doc = dict(vars(self))
        doc["status"] = self.status.value
        return doc

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Job:
        known = {name: doc[name] for name in cls.__dataclass_fields__ if name in doc}
        known["status"] = Status(known["status"])
        return cls(**known)

    def to_api(self) -> dict[str, Any]:
        """The representation clients of the earlier API know, plus a few new fields."""
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "created": self.created,
            "job_parameters": self.job_parameters,
        }
        if self.account_id is not None:
            body["account_id"] = self.account_id
        for key in ("start_time", "stop_time", "output_file_url", "reason", "message"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.exit_code is not None:
            body["exit_code"] = self.exit_code
        if self.disruptions:
            body["disruptions"] = self.disruptions
        return body
