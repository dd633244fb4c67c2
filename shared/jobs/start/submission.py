"""Submission by upload: an object `submissions/<account_id>/<name>.zip` landing in the
jobs bucket creates job `<name>` of that account (with access control off,
`submissions/<name>.zip` too). The zip's root `job.json` is the create's body (what POST
/batch/ takes, without an input source, and naming no other account); the rest of the zip
is the job's input, which stage-in reads from the object itself and unpacks without
job.json. Only the account's submitters may write in its folder: IAM holds that (make
deploy grants each of them object creation on that prefix alone).

The outcome is an object beside it: `<name>.job.json` (the envelope the create would have
answered, with the job, and `job_id`), or `<name>.error.json` (the envelope of the
refusal, with its HTTP status). The finalize events of those two are ignored.

Idempotent: the job's name is the key. A redelivered event of the same object generation
finds the job that generation made (recorded on it), finishes its start if an earlier
delivery was cut short, and writes the job object again; another upload under a taken name
is refused. Only the central directory and job.json are read, in ranged reads: a
submission may be as large as MAX_INPUT_URL_BYTES. A transient failure (Firestore, Cloud
Storage, the cluster) is raised, so Eventarc delivers the event again.
"""

from __future__ import annotations

import logging
from typing import Any

from shared.cloud.backends import Backends
from shared.cloud.bucket import ObjectGoneError, ObjectInfo
from shared.errors import (
    ApiError,
    ClusterApiError,
    InvalidParameters,
    PayloadTooLarge,
    TransitionRefusedError,
)
from shared.jobs.start import draft, scheduled, upload
from shared.jobs.start.records import Created, write_task_environments
from shared.jobs.start.submission_zip import read
from shared.logs import log_context
from shared.model.access import ACCOUNT_ID, Caller, Role
from shared.model.job import Job, Status
from shared.model.validation import MAX_TASKS, name_error, validate_create

log = logging.getLogger(__name__)

PREFIX = "submissions/"
ZIP_SUFFIX = ".zip"
JOB_SUFFIX = ".job.json"
ERROR_SUFFIX = ".error.json"


def is_submission(object_name: str) -> bool:
    return object_name.startswith(PREFIX)


def handle(data: dict[str, Any], *, backends: Backends) -> str:
    """Act on one finalized object under submissions/; returns what was done."""
    object_name = str(data.get("name", ""))
    if not object_name.endswith(ZIP_SUFFIX):
        log.info("ignored: not a submission zip", extra={"object": object_name})
        return "ignored"
    stem = object_name.removesuffix(ZIP_SUFFIX)
    account_id, _, name = stem.removeprefix(PREFIX).rpartition("/")
    info = backends.bucket.object_info(object_name)
    event_generation = _generation(data.get("generation"))
    if info is None or (event_generation is not None and event_generation != info.generation):
        # Deleted or replaced since: a replacing upload has its own event.
        log.info(
            "ignored: the submission is gone or was replaced",
            extra={"object": object_name, "generation": event_generation},
        )
        return "ignored"
    with log_context(submission=object_name, generation=info.generation):
        try:
            caller = _uploader(account_id, backends)
            job, msg, what = _submit(name, object_name, info, backends, caller)
        except ObjectGoneError:
            log.info("ignored: the submission was replaced while it was read")
            return "ignored"
        except ApiError as refusal:
            # A concurrent delivery of this same upload may have taken the name first.
            made = _made_by(name, object_name, info, backends)
            if made is None:
                _write_error(stem, object_name, info, refusal, backends)
                return "refused"
            job, msg, what = made, "", "exists"
        _write_job(stem, object_name, info, job, msg, backends)
        return what


def _uploader(account_id: str, backends: Backends) -> Caller:
    """Who a submission is from. Cloud Storage does not say who uploaded it; IAM let only
    the submitters of the account its folder names write there (make deploy grants that,
    by prefix), so it is a submitter of that account and of no other. With access control
    off, anyone, as before; a submission outside an account's folder is then accepted."""
    if not backends.settings.access.enabled:
        return Caller.unchecked()
    if not account_id:
        raise InvalidParameters(
            msg="A submission goes under submissions/<account_id>/<name>.zip: the account "
            "whose submitters may write there"
        )
    if not ACCOUNT_ID.fullmatch(account_id) or backends.accounts.get(account_id) is None:
        raise InvalidParameters(
            data={"account_id": f"No account {account_id!r} (the folder in submissions/)"}
        )
    return Caller(email=None, roles={account_id: Role.SUBMITTER})


def _generation(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _submit(
    name: str, object_name: str, info: ObjectInfo, backends: Backends, caller: Caller
) -> tuple[Job, str, str]:
    """The job this submission made (or makes now), its message, and what was done; an
    ApiError for a refusal."""
    settings = backends.settings
    if error := name_error(name):
        raise InvalidParameters(
            data={"name": f"{error} (the name in submissions/<account_id>/<name>.zip)"}
        )
    existing = backends.store.get_by_name(name)
    if existing is not None:
        if not _same(existing, object_name, info):
            raise InvalidParameters(data={"name": "A job with this name already exists"})
        return (*_finish(existing, backends), "exists")
    if info.size > settings.max_input_url_bytes:
        raise PayloadTooLarge(
            msg=f"The submission is {info.size} bytes, more than MAX_INPUT_URL_BYTES "
            f"({settings.max_input_url_bytes})"
        )
    body, has_input = read(object_name, info, backends)
    if isinstance(body, dict):
        given = body.get("name")
        if given not in (None, "", name):
            raise InvalidParameters(
                data={"name": f"Must be {name!r}, the submission's own name, or left out"}
            )
        folder = caller.default_account()
        if folder is not None and body.get("account_id") not in (None, folder):
            raise InvalidParameters(
                data={"account_id": f"Must be {folder!r}, the submission's folder, or left out"}
            )
        body = {**body, "name": name}
    submission = draft.Submission(object_name, info.generation, has_input)
    try:
        job, msg, _ = create(body, backends, caller, submission)
    except TransitionRefusedError:
        # Killed (or failed by the sync) while it was deployed: it is what it is.
        made = _made_by(name, object_name, info, backends)
        if made is None:
            raise
        return made, "", "created"
    return job, msg, "created" if job.status is not Status.FAILED else "failed"


def _same(job: Job, object_name: str, info: ObjectInfo) -> bool:
    return job.submission == object_name and job.submission_generation == info.generation


def _made_by(name: str, object_name: str, info: ObjectInfo, backends: Backends) -> Job | None:
    if name_error(name):
        return None
    job = backends.store.get_by_name(name)
    return job if job is not None and _same(job, object_name, info) else None


def _finish(job: Job, backends: Backends) -> tuple[Job, str]:
    """A redelivery: start the job if an earlier delivery stored it but failed to."""
    if job.status is not Status.CREATED or job.suspended:
        return job, ""
    with log_context(job_id=job.id, job_name=job.name):
        log.info("finishing the start of a submitted job")
        try:
            return start(job, backends)
        except TransitionRefusedError:
            return backends.store.get(job.id) or job, ""


def start(job: Job, backends: Backends) -> tuple[Job, str]:
    """Start a stored submission's job whose first start was cut short (by its event again,
    or by the sync). An array job's task environments are written first when that start
    did not write them: they are read again from the generation the job was made from.
    Raises TransitionRefusedError if the job moved on meanwhile."""
    if job.task_environments and backends.bucket.object_info(job.tasks_object) is None:
        assert job.submission is not None and job.submission_generation is not None
        info = backends.bucket.object_info(job.submission)
        try:
            if info is None or info.generation != job.submission_generation:
                raise ObjectGoneError(job.submission)
            body, _ = read(job.submission, info, backends)
        except ObjectGoneError:
            return _fail_unstartable(job, backends), ""
        again = validate_create({**body, "name": job.name}, max_parallelism=MAX_TASKS)
        environments = again.task_environments
        assert environments is not None  # the same body made this job
        write_task_environments(job, environments, backends)
        log.info("wrote the task environments its first start did not")
    return deploy(job, backends)


def create(body: Any, backends: Backends, caller: Caller, submission: draft.Submission) -> Created:
    """Store the submission's job, then deploy it as an uploaded input is deployed
    (upload.start). A transient failure (of the cluster, or of the task environments'
    write) changes nothing more, and is raised for the event to come again; the
    redelivery, or the sync, finds this job and finishes its start. A cluster refusal
    fails the job."""
    drafted = draft.prepare(body, backends, caller, submission)
    if isinstance(drafted, Created):
        return drafted
    stored = draft.store(drafted, backends)
    if isinstance(stored, Created):
        return stored
    job = drafted.job
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created from its submission", extra={"object": job.submission})
        return Created(*deploy(job, backends))


def deploy(job: Job, backends: Backends) -> tuple[Job, str]:
    """Deploy a stored submission's job (again, after a transient failure: idempotent)."""
    try:
        started, what = upload.start(job, backends, reason="submitted; deployed to the cluster")
    except ClusterApiError as error:
        if error.transient:
            raise
        failed = backends.store.transition(
            job.id,
            Status.FAILED,
            reason=f"create failed: {error}",
            expect={Status.CREATED},
            updates={"reason": "ClusterError", "message": f"The cluster refused the job: {error}"},
        )
        log.error("the cluster refused the submitted job", extra={"error": str(error)})
        return failed, f"The cluster refused job {job.name}"
    if what == "scheduled":
        return started, scheduled.message(started)
    return started, ""


def _fail_unstartable(job: Job, backends: Backends) -> Job:
    """Its submission was deleted or replaced before its task environments were written:
    there is nothing left to run its tasks with."""
    message = f"{job.submission} was deleted or replaced before the job could start"
    failed = backends.store.transition(
        job.id,
        Status.FAILED,
        reason="its submission is gone",
        expect={Status.CREATED},
        updates={"reason": "SubmissionGone", "message": message},
    )
    log.error("the submission is gone; the job cannot start")
    return failed


def _write_job(
    stem: str, object_name: str, info: ObjectInfo, job: Job, msg: str, backends: Backends
) -> None:
    body = {
        "data": job.to_api(),
        "error": "",
        "msg": msg,
        "result": True,
        "status": 200,
        "job_id": job.id,
        "submission": object_name,
        "generation": str(info.generation),
    }
    backends.bucket.put_json(f"{stem}{JOB_SUFFIX}", body, {"job-id": job.id})
    # An earlier refused upload under this name said so; this one was accepted.
    backends.bucket.delete(f"{stem}{ERROR_SUFFIX}")
    with log_context(job_id=job.id, job_name=job.name):
        log.info("submission accepted", extra={"status": job.status.value})


def _write_error(
    stem: str, object_name: str, info: ObjectInfo, error: ApiError, backends: Backends
) -> None:
    body = {
        "data": error.data,
        "error": error.error,
        "msg": error.msg,
        "result": False,
        "status": error.status_code,
        "submission": object_name,
        "generation": str(info.generation),
    }
    backends.bucket.put_json(f"{stem}{ERROR_SUFFIX}", body, {})
    level = logging.ERROR if error.status_code >= 500 else logging.INFO
    log.log(level, "submission refused: %s", error.msg or error.error, extra={"data": error.data})
