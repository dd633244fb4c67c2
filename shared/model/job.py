"""A job record, its six statuses, and the one table of allowed status changes."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit, urlunsplit


class Status(StrEnum):
    CREATED = "created"  # being deployed, scheduled (start_after), or waiting for its upload
    RUNNING = "running"  # deployed; its pod stages the input in, or runs the user's container
    CLEANING = "cleaning"  # the user's container exited 0; stage-out uploads the output
    SUCCEEDED = "succeeded"  # output zip in the bucket
    FAILED = "failed"  # could not be deployed, or failed mid-execution
    KILLED = "killed"  # stopped by its user


FINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.KILLED})

# Every status change goes through this table (JobStore.transition checks it).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.CREATED: frozenset({Status.RUNNING, Status.FAILED, Status.KILLED}),
    Status.RUNNING: frozenset({Status.CLEANING, Status.FAILED, Status.KILLED}),
    Status.CLEANING: frozenset({Status.SUCCEEDED, Status.FAILED, Status.KILLED}),
    Status.SUCCEEDED: frozenset(),
    Status.FAILED: frozenset(),
    Status.KILLED: frozenset(),
}

KILLABLE = frozenset({Status.CREATED, Status.RUNNING, Status.CLEANING})


def allowed(current: Status, target: Status) -> bool:
    return target in TRANSITIONS[current]


def now_ms() -> int:
    return int(time.time() * 1000)


def canonical_id(text: str) -> str | None:
    """A job id as the records hold it, or None if `text` is no UUID. The earlier API read
    ids with `uuid.UUID` (mongoengine's UUIDField), so it found a job by its id in hex, in
    capitals, in braces or as a URN too."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None


@dataclass
class Job:
    """One job, as stored in Firestore (one document, id = the job id)."""

    id: str
    name: str
    status: Status
    created: int  # epoch milliseconds
    job_parameters: dict[str, Any]  # as accepted, without input_zip
    account_id: str | None = None
    created_by: str | None = None  # the verified email of the caller that created it
    killed_by: str | None = None  # the verified email of the caller that killed it
    has_input: bool = False  # stage-in runs: input_zip, input_url or input_upload
    input_upload_url: str | None = None  # signed PUT URL of <name>-input.zip (input_upload)
    input_upload_expires: int | None = None  # epoch ms; the sync fails the job after it
    submission: str | None = None  # submissions/<name>.zip: the object that made the job,
    #   and its input (stage-in leaves its job.json out)
    submission_generation: int | None = None  # that object's generation: a redelivered
    #   event for it finds this job, another upload under the name is refused
    scheduled_for: int | None = None  # epoch ms (start_after): its Job waits held till then
    suspended: bool = False  # its Job exists, held in the `scheduled` queue till scheduled_for
    queue: str | None = None  # the Kueue LocalQueue its Job names (its account's)
    queued: dict[str, Any] | None = None  # while Kueue has not admitted it: its queue,
    #   position (1: next), Kueue's reason and since when (shared/jobs/admission.py)
    admitted: int | None = None  # epoch ms: Kueue admitted its workload (and resumed it)
    urls_expire: int | None = None  # epoch ms: the pod's input URL or upload session expires
    start_time: int | None = None  # epoch ms: the user's container first started (an array
    #   job's: its first task's), as Kubernetes records it (whole seconds)
    end_time: int | None = None  # epoch ms: the user's container last finished (an array
    #   job's: its last task's), as Kubernetes records it; end - start is the run time
    stop_time: int | None = None  # epoch ms: reached a final status
    reason: str | None = None  # why it failed (or was killed): short code
    message: str | None = None  # human detail of the reason
    exit_code: int | None = None
    disruptions: int = 0  # pods lost to evictions, drains or Spot preemptions (no retry used)
    disrupted_pods: list[str] = field(default_factory=list)  # their names, each counted once
    output_file_url: str | None = None
    output_url_expires: int | None = None  # epoch ms; None = does not expire
    transitions: list[dict[str, Any]] = field(default_factory=list)
    callback_url: str | None = None  # POSTed the job once it reaches a final status
    callback_status: str | None = None  # "delivered" or "failed" (retries given up)
    callback_attempts: int = 0  # deliveries tried (the last, when it succeeded, included)
    callback_time: int | None = None  # epoch ms: delivered, or given up
    callback_answer: str | None = None  # the receiver's last answer, e.g. "500" or "timeout"
    # Array jobs (job_parameters.task_count): one Indexed Job, one pod per task.
    task_environments: bool = False  # <name>-tasks.json holds each task's variables
    tasks: dict[str, int] | None = None  # count, succeeded, failed, running, pending
    failed_tasks: list[dict[str, Any]] = field(default_factory=list)  # index, reason, exit_code
    task_output_urls: list[str] | None = None  # once succeeded: each task's, in index order
    updated: int = 0  # epoch ms of the last write

    @property
    def killable(self) -> bool:
        """Running or cleaning; or `created` but waiting, for its time or for its input
        (a `created` job whose create is still deploying it is not)."""
        if self.status is Status.CREATED:
            return self.waiting
        return self.status in KILLABLE

    @property
    def waiting(self) -> bool:
        """Created and deliberately not running yet: scheduled, or its input not uploaded."""
        return self.status is Status.CREATED and (self.suspended or self.awaiting_upload)

    @property
    def awaiting_upload(self) -> bool:
        return self.status is Status.CREATED and self.input_upload_url is not None

    @property
    def task_count(self) -> int | None:
        """The number of tasks of an array job; None for a plain job."""
        count = self.job_parameters.get("task_count")
        return int(count) if count is not None else None

    @property
    def tasks_object(self) -> str:
        """An array job's task_environments, a JSON list, read by each task's pod."""
        return f"{self.name}-tasks.json"

    def task_output_object(self, index: int) -> str:
        return f"{self.name}-output-{index}.zip"

    def task_log_object(self, index: int) -> str:
        return f"{self.name}-logs-{index}.txt"

    @property
    def output_objects(self) -> list[str]:
        """Every output the job makes when all goes well: one, or one per task."""
        if self.task_count is None:
            return [self.output_object]
        return [self.task_output_object(index) for index in range(self.task_count)]

    @property
    def input_object(self) -> str:
        """Where the job's input is in the bucket: its submission, or `<name>-input.zip`."""
        return self.submission or f"{self.name}-input.zip"

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

    def to_api(self, secrets: bool = True) -> dict[str, Any]:
        """The representation clients of the earlier API know, plus a few new fields.
        Without `secrets` (any answer but the create's, while access control is on), the
        URLs that grant something show without their query and credentials, and the input's
        upload URL not at all: whoever may read a job may not thereby write its input."""
        params = self.job_parameters
        if not secrets and isinstance(params.get("input_url"), str):
            params = {**params, "input_url": without_secrets(params["input_url"])}
        body: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "status": self.status.value,
            "created": self.created,
            "job_parameters": params,
        }
        for key in ("account_id", "created_by", "killed_by"):
            if (value := getattr(self, key)) is not None:
                body[key] = value
        for key in ("start_time", "end_time", "stop_time", "output_file_url", "reason", "message"):
            value = getattr(self, key)
            if value is not None:
                body[key] = value
        if self.exit_code is not None:
            body["exit_code"] = self.exit_code
        if self.transitions:
            body["transitions"] = self.transitions
        if self.disruptions:
            body["disruptions"] = self.disruptions
        if self.scheduled_for is not None:
            body["scheduled_for"] = self.scheduled_for
        for key in ("queue", "admitted"):
            if (value := getattr(self, key)) is not None:
                body[key] = value
        if self.queued is not None and self.status not in FINAL:
            body["queued"] = self.queued
        if self.callback_url is not None:
            body["callback_url"] = (
                self.callback_url if secrets else without_secrets(self.callback_url)
            )
            for key in ("callback_status", "callback_time", "callback_answer"):
                if (value := getattr(self, key)) is not None:
                    body[key] = value
            if self.callback_attempts:
                body["callback_attempts"] = self.callback_attempts
        if self.tasks is not None:
            body["tasks"] = self.tasks
        if self.failed_tasks:
            body["failed_tasks"] = self.failed_tasks
        if self.task_output_urls is not None:
            body["task_output_urls"] = self.task_output_urls
        if self.awaiting_upload:
            if secrets:
                body["input_upload_url"] = self.input_upload_url
            body["input_upload_expires"] = self.input_upload_expires
        return body


def without_secrets(url: str) -> str:
    """A URL as it may be shown to anyone who may read its job: no user or password, no
    query (a signature, a token), no fragment. `gs://` names hold none."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))
