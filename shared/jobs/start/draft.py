"""A create's body, checked and made into the job it describes, before anything is stored.

Every way a job starts goes through `prepare`: the body is validated, a repeated request
id answered with its job, an inline input decoded and checked, a callback URL and an input
URL checked, and the clients the create needs are built. A misconfigured cluster or bucket
fails the request here, before anything is stored, instead of leaving a record that
nothing will ever deploy."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shared.cloud.backends import Backends
from shared.cloud.store import RequestKey, RequestSeenError, Version
from shared.errors import InvalidParameters
from shared.jobs import callbacks, references
from shared.jobs.inputs import decode_input
from shared.jobs.start import placement, records
from shared.jobs.start.records import Created, Names, repeat
from shared.model import queues
from shared.model.access import Caller, Role
from shared.model.job import Job, Status, now_ms
from shared.model.validation import INPUT_SOURCES, validate_create


@dataclass(frozen=True)
class Submission:
    """The object `submissions/<account_id>/<name>.zip` whose job.json is the create's body:
    the rest of it is the job's input."""

    object_name: str
    generation: int
    has_input: bool  # it holds more than job.json


@dataclass
class Draft:
    """A checked create: the job to store (status `created`), and what storing it needs."""

    job: Job
    key: RequestKey | None  # the request id, written in the job's own batch
    names: Names
    environments: list[Any] | None  # an array job's task_environments
    data: bytes | None  # the inline input, decoded
    awaits_upload: bool  # input_upload: the input comes later
    queue: str = queues.NO_ACCOUNT  # the Kueue queue it will wait in


def prepare(
    body: Any,
    backends: Backends,
    caller: Caller,
    submission: Submission | None = None,
    *,
    dry_run: bool = False,
) -> Draft | Created:
    """The draft of the job `body` asks for, or the answer to a request id seen in the last
    24 h: the job it made, as it is now (with a different body, a 409). The caller must be
    a submitter of the job's account, and the job able to run some day in its account's
    queue (placement.check). A `dry_run` checks the same, request id aside."""
    if submission is not None:
        _refuse_input_sources(body)
    request = validate_create(body, max_parallelism=backends.settings.max_parallelism)
    account_id = _account(request.account_id, caller)
    caller.require(account_id, Role.SUBMITTER)
    key = RequestKey(request.request_id, request.fingerprint) if request.request_id else None
    seen = None if key is None or dry_run else backends.store.request(key.request_id)
    if key is not None and seen is not None:
        return repeat(key, *seen, store=backends.store, account_id=account_id)
    data = None
    if request.input_zip is not None:
        data = decode_input(request.input_zip, backends.settings)
    if request.callback_url:
        callbacks.check(request.callback_url, backends.settings)
    backends.cluster, backends.bucket  # noqa: B018 - built on first use, cached
    if request.input_url:
        references.check(request.input_url, backends, caller, account_id)
    created = now_ms()
    names = Names(request.name, request.job_parameters["docker_image"], created)
    job = Job(
        id=str(uuid.uuid4()),
        name=names.first,
        status=Status.CREATED,
        created=created,
        job_parameters=request.job_parameters,
        account_id=account_id,
        created_by=caller.email,
        has_input=data is not None or bool(request.input_url) or request.input_upload,
        scheduled_for=request.scheduled_for,
        callback_url=request.callback_url,
        task_environments=request.task_environments is not None,
    )
    if job.task_count is not None:
        job.tasks = initial_tasks(job.task_count)
    if submission is not None:
        job.submission, job.submission_generation = submission.object_name, submission.generation
        job.has_input = submission.has_input
    queue = placement.check(job, backends)
    return Draft(job, key, names, request.task_environments, data, request.input_upload, queue)


def _account(given: str | None, caller: Caller) -> str | None:
    """The job's account: the one the body names, else the caller's only account. A job of
    no account is the operators' alone (and, with access control off, everyone's)."""
    if given is not None or caller.operator:
        return given
    found = caller.default_account()
    if found is None:
        accounts = ", ".join(sorted(caller.roles)) or "none"
        raise InvalidParameters(
            data={
                "account_id": f"Required: you belong to more than one account, or to none "
                f"({accounts})"
            }
        )
    return found


def initial_tasks(count: int) -> dict[str, int]:
    return {"count": count, "succeeded": 0, "failed": 0, "running": 0, "pending": count}


def _refuse_input_sources(body: Any) -> None:
    params = body.get("job_parameters") if isinstance(body, dict) else None
    given = [key for key in INPUT_SOURCES if isinstance(params, dict) and key in params]
    if given:
        problem = "Not in a submission: the rest of its zip is the job's input"
        raise InvalidParameters(data={"job_parameters": dict.fromkeys(given, problem)})


def store(
    draft: Draft, backends: Backends, prepare: Callable[[Job], None] | None = None
) -> Version | Created:
    """Store the draft's job (records.store), or answer as a repeat when a create with
    the same request id stored its job meanwhile."""
    try:
        return records.store(
            draft.job, backends, draft.key, draft.environments, draft.names, prepare
        )
    except RequestSeenError as seen:
        return repeat(
            draft.key,
            seen.job_id,
            seen.fingerprint,
            store=backends.store,
            account_id=draft.job.account_id,
        )
