"""Create and kill: the two user actions that change the cluster.

Create stores the record first (status `created`), deploys, and moves it to `running`; a
failure part-way deletes what it made and records the job as `failed` with the reason.
Kill records `killed` first, so that a sync running at the same time cannot mistake the
deleted Job for a failure, then deletes the job's cluster objects.
"""

from __future__ import annotations

import datetime
import functools
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, NamedTuple

from shared.cloud.backends import Backends
from shared.cloud.bucket import V4_MAX_LIFETIME
from shared.cloud.store import JobStore, NameTakenError, RequestKey, RequestSeenError, Version
from shared.errors import (
    ApiError,
    BucketError,
    ClusterApiError,
    ClusterConflictError,
    ClusterError,
    ConfigurationError,
    Conflict,
    DoesNotExist,
    InvalidParameters,
    SigningError,
    SigningUnavailableError,
    StorageError,
    StoreError,
    TransitionRefusedError,
)
from shared.jobs import callbacks, joblogs, references
from shared.jobs.inputs import decode_input
from shared.logs import log_context
from shared.model import manifests
from shared.model.job import FINAL, KILLABLE, Job, Status, now_ms
from shared.model.validation import INPUT_SOURCES, derived_names, validate_create
from shared.settings import Settings

log = logging.getLogger(__name__)
INPUT_URL_MARGIN = 3600  # s: the input URL outlives the job's timeout by this much
SESSION_LIFETIME = 7 * 24 * 3600  # s: a resumable upload session's (Cloud Storage's own)


@dataclass(frozen=True)
class Submission:
    """The object `submissions/<name>.zip` whose job.json is the create's body: the rest of
    it is the job's input."""

    object_name: str
    generation: int
    has_input: bool  # it holds more than job.json


class Created(NamedTuple):
    job: Job
    msg: str  # the envelope's message
    repeat: bool = False  # a repeat of an earlier create (its request_id): nothing was made


def create(body: Any, *, backends: Backends, submission: Submission | None = None) -> Created:
    """Validate, store, deploy. Returns the job and the envelope's message.

    A job with `input_upload` is stored and answered at once with its upload URL; its
    input's finalize event deploys it (start_uploaded). A job with `start_after` is deployed
    as a suspended Job, so the cluster has checked it, and stays `created` until the sync
    resumes it. A `submission`'s job is created by its finalize event: see
    _create_submitted for how its failures differ.

    A `request_id` seen in the last 24 h answers the job it made, as it is now, and makes
    nothing; with a different body it is a 409. The key is written in the job's own batch,
    so of concurrent creates with one request id exactly one makes a job.
    """
    settings, store = backends.settings, backends.store
    if submission is not None:
        _refuse_input_sources(body)
    request = validate_create(body, max_parallelism=settings.max_parallelism)
    key = RequestKey(request.request_id, request.fingerprint) if request.request_id else None
    if key is not None and (seen := store.request(key.request_id)) is not None:
        return _repeat(key, *seen, store=store)
    data = decode_input(request.input_zip, settings) if request.input_zip is not None else None
    if request.callback_url:
        callbacks.check(request.callback_url, settings)
    # Clients first: a misconfigured cluster or bucket fails the request before anything is
    # stored, instead of leaving a record that nothing will ever deploy.
    backends.cluster, backends.bucket  # noqa: B018 - built on first use, cached
    if request.input_url:
        references.check(request.input_url, backends)
    created = now_ms()
    names = Names(request.name, request.job_parameters["docker_image"], created)
    job = Job(
        id=str(uuid.uuid4()),
        name=names.first,
        status=Status.CREATED,
        created=created,
        job_parameters=request.job_parameters,
        account_id=request.account_id,
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
        return _create_submitted(job, key, backends, request.task_environments, names)
    if request.input_upload:
        return _create_awaiting_upload(job, key, backends, request.task_environments, names)
    # The output's upload session is opened while the record is written: it creates no
    # object, so a create refused for its name (or found a repeat, or given the next derived
    # name) just leaves it to expire.
    upload = _open_output(job, backends)
    try:
        written = _store(job, backends, key, request.task_environments, names)
    except RequestSeenError as seen:
        return _repeat(key, seen.job_id, seen.fingerprint, store=store)
    if job.name != names.first:
        upload = _open_output(job, backends)
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created")
        try:
            urls_expire = _deploy(job, data, upload, backends)
        except (ClusterApiError, BucketError) as error:
            _undo(job, backends)
            reason, answer = _create_failure(job, error)
            store.transition(
                job.id,
                Status.FAILED,
                reason=f"create failed: {error}",
                updates={"reason": reason, "message": str(error)},
                known=written,
            )
            log.error("create failed; cleaned up", extra={"error": str(error)})
            raise answer from error
        if job.scheduled_for is not None:
            return Created(_record_scheduled(job, urls_expire, backends), _scheduled_message(job))
        running = store.transition(
            job.id,
            Status.RUNNING,
            reason="deployed to the cluster",
            known=written,
            updates={"urls_expire": urls_expire},
        )
        log.info("job deployed")
    return Created(running, "")


class Names:
    """The name a create gives its job: the client's, or derived from the image and the
    creation time. A name the client chose is refused when taken; a derived one is never
    refused, the next free one in the same format is taken (derived_names)."""

    def __init__(self, chosen: str | None, image: str, created_ms: int) -> None:
        self.chosen = chosen
        self._derived = derived_names(image, created_ms)
        self.first = chosen or next(self._derived)

    def after_taken(self, name: str) -> str:
        """The name to try after `name` was found taken."""
        if self.chosen is not None:
            raise InvalidParameters(data={"name": "A job with this name already exists"})
        following = next(self._derived, None)
        if following is None:
            raise StoreError(f"no free name after {name}: too many creates at once")
        log.info("derived name taken; trying the next", extra={"taken": name, "next": following})
        return following


def _store(
    job: Job,
    backends: Backends,
    key: RequestKey | None,
    environments: list[Any] | None,
    names: Names,
    prepare: Callable[[Job], None] | None = None,
) -> Version:
    """The record, under the first free name `names` gives, then an array job's
    task_environments: once the name is the job's, so that they never land over another
    job's. `prepare` makes what the record holds for its name, before each write."""
    while True:
        if prepare is not None:
            prepare(job)
        try:
            written = backends.store.create(job, key)
            break
        except NameTakenError as taken:
            job.name = names.after_taken(taken.name)
    if environments is not None:
        _put_task_environments(job, environments, backends)
    return written


def _refuse_input_sources(body: Any) -> None:
    params = body.get("job_parameters") if isinstance(body, dict) else None
    given = [key for key in INPUT_SOURCES if isinstance(params, dict) and key in params]
    if given:
        problem = "Not in a submission: the rest of its zip is the job's input"
        raise InvalidParameters(data={"job_parameters": dict.fromkeys(given, problem)})


def _create_submitted(
    job: Job,
    key: RequestKey | None,
    backends: Backends,
    environments: list[Any] | None,
    names: Names,
) -> Created:
    """Store, then deploy as an uploaded input is deployed (start_uploaded): a transient
    failure (of the cluster, or of the task environments' write) changes nothing more, and
    is raised for the event to come again; the redelivery, or the sync, finds this job and
    finishes its start. A cluster refusal fails the job."""
    try:
        _store(job, backends, key, environments, names)
    except RequestSeenError as seen:
        return _repeat(key, seen.job_id, seen.fingerprint, store=backends.store)
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created from its submission", extra={"object": job.submission})
        return Created(*start_submitted(job, backends))


def start_submitted(job: Job, backends: Backends) -> tuple[Job, str]:
    """Deploy a stored submission's job (again, after a transient failure: idempotent)."""
    try:
        started, what = start_uploaded(job, backends, reason="submitted; deployed to the cluster")
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
        return started, _scheduled_message(started)
    return started, ""


def _repeat(key: RequestKey | None, job_id: str, fingerprint: str, *, store: JobStore) -> Created:
    """The answer to a request id seen before: its job as it is now, or 409 Conflict."""
    assert key is not None
    if fingerprint != key.fingerprint:
        raise Conflict(
            msg=f"request_id {key.request_id} was used for a different request (job {job_id})",
            data={"request_id": "Used in the last 24 hours by a request with a different body"},
        )
    job = store.get(job_id)
    if job is None:  # written in one batch with the key: only a hand could have removed it
        raise StoreError(f"request {key.request_id} names job {job_id}, which is missing")
    with log_context(job_id=job.id, job_name=job.name):
        log.info("repeated create: answered the job", extra={"request_id": key.request_id})
    return Created(job, f"Repeat of request {key.request_id}: job {job.id}", repeat=True)


def _create_awaiting_upload(
    job: Job,
    key: RequestKey | None,
    backends: Backends,
    environments: list[Any] | None,
    names: Names,
) -> Created:
    """Store the job with a URL to PUT its input to; nothing is deployed until it lands."""
    lifetime = backends.settings.input_upload_lifetime

    def sign(job: Job) -> None:  # for the input object of the name about to be written
        try:
            job.input_upload_url = backends.bucket.upload_url(job.input_object, lifetime, job.id)
        except BucketError as error:
            raise _create_failure(job, error)[1] from error
        job.input_upload_expires = now_ms() + lifetime * 1000

    try:
        _store(job, backends, key, environments, names, prepare=sign)
    except RequestSeenError as seen:
        return _repeat(key, seen.job_id, seen.fingerprint, store=backends.store)
    with log_context(job_id=job.id, job_name=job.name):
        log.info("job created; waiting for its input upload")
    return Created(
        job,
        f"Job {job.id} waits for its input: PUT the zip to data.input_upload_url "
        "with Content-Type: application/zip",
    )


def _record_scheduled(job: Job, urls_expire: int | None, backends: Backends) -> Job:
    """The job's suspended Job exists: the record says so, and the sync resumes it."""
    changes = {"suspended": True, "urls_expire": urls_expire, "input_upload_url": None}
    changes["input_upload_expires"] = None
    if not backends.store.update(job.id, changes, status=Status.CREATED):
        log.info("the job changed while it was deployed; left to the sync")
    log.info("job scheduled", extra={"scheduled_for": job.scheduled_for})
    for key, value in changes.items():
        setattr(job, key, value)
    return job


def _scheduled_message(job: Job) -> str:
    at = datetime.datetime.fromtimestamp((job.scheduled_for or 0) / 1000, datetime.UTC)
    return f"Job {job.id} is scheduled to start at {at.isoformat().replace('+00:00', 'Z')}"


def start_uploaded(
    job: Job, backends: Backends, *, reason: str = "input uploaded; deployed to the cluster"
) -> tuple[Job, str]:
    """Deploy a job whose input has been uploaded (its finalize event, or the sync at the
    upload URL's expiry): `running`, or still `created` but scheduled.

    Safe to run twice at once: a Job that exists already is this job's (the name is
    unique), and the record's checked write lets one caller win. Raises ClusterApiError
    or BucketError without changing anything, for the caller to retry.
    """
    upload = _open_output(job, backends)
    made = True
    try:
        urls_expire = _deploy(job, None, upload, backends)
    except ClusterConflictError:
        made = False
        urls_expire = None  # an earlier delivery made it; its URLs are not known here
        log.info("the job's Job exists already")
    if _due(job) is False:
        return _record_scheduled(job, urls_expire, backends), "scheduled"
    try:
        running = backends.store.transition(
            job.id,
            Status.RUNNING,
            reason=reason,
            expect={Status.CREATED},
            updates={
                "urls_expire": urls_expire,
                "input_upload_url": None,
                "input_upload_expires": None,
            },
        )
    except TransitionRefusedError as refused:
        # Killed (or failed by the sync) meanwhile: what was just made goes again. A Job
        # that a concurrent delivery made, and recorded as running, stays.
        if made and refused.current in {status.value for status in FINAL}:
            backends.cluster.delete_job(job.name)
        raise
    log.info("job deployed: %s", reason.partition(";")[0])
    return running, "deployed"


def resume(job: Job, backends: Backends) -> Job:
    """Start a scheduled job whose time has come: unsuspend its Job, or, when its URLs
    would expire before its pod is done, replace it with one with fresh URLs."""
    settings = backends.settings
    # The Job's own deadline, with a few minutes for the sync to notice the end.
    needed = manifests.run_seconds(job, settings) + manifests.JOB_DEADLINE_MARGIN + 300
    if job.urls_expire is not None and job.urls_expire < now_ms() + needed * 1000:
        backends.cluster.delete_job(job.name)
        upload = _open_output(job, backends)
        urls_expire = _deploy(job, None, upload, backends, suspend=False)
        log.info("replaced the scheduled Job: its URLs would have expired")
    else:
        backends.cluster.resume_job(job.name)
        urls_expire = job.urls_expire
    running = backends.store.transition(
        job.id,
        Status.RUNNING,
        reason="its start time came; resumed",
        expect={Status.CREATED},
        updates={"suspended": False, "urls_expire": urls_expire},
    )
    log.info("job resumed")
    return running


def initial_tasks(count: int) -> dict[str, int]:
    return {"count": count, "succeeded": 0, "failed": 0, "running": 0, "pending": count}


def _open_output(job: Job, backends: Backends) -> Future[str]:
    """In the background: the output's upload session, or an array job's tasks' plan."""
    bucket = backends.bucket
    if job.task_count is None:
        return _pool().submit(bucket.open_upload, job.output_object, job.id)
    lifetime = input_url_lifetime(job, backends.settings)
    prefix = f"{job.name}-output-"
    max_bytes = manifests.volume_bytes(backends.settings)
    return _pool().submit(bucket.task_upload, prefix, job.id, lifetime, max_bytes)


def write_task_environments(job: Job, environments: list[Any], backends: Backends) -> None:
    """<name>-tasks.json, which each task's pod reads."""
    backends.bucket.put_json(job.tasks_object, environments, {"job-id": job.id})


def _put_task_environments(job: Job, environments: list[Any], backends: Backends) -> None:
    """Write the task environments of a job just stored. A failure fails an API create.
    A submission's job stays `created` and the error is raised, for its event to come
    again: its next start writes them first (submissions.start)."""
    try:
        write_task_environments(job, environments, backends)
    except BucketError as error:
        if job.submission is not None:
            with log_context(job_id=job.id, job_name=job.name):
                log.warning("writing the task environments failed; left to the next delivery")
            raise
        reason, answer = _create_failure(job, error)
        backends.store.transition(
            job.id,
            Status.FAILED,
            reason=f"create failed: {error}",
            updates={"reason": reason, "message": str(error)},
        )
        raise answer from error


def _due(job: Job) -> bool:
    return job.scheduled_for is None or job.scheduled_for <= now_ms()


@functools.cache
def _pool() -> ThreadPoolExecutor:
    """The process's threads for calls a create overlaps; made once, so a request pays for
    no thread start."""
    return ThreadPoolExecutor(max_workers=8, thread_name_prefix="create")


def _create_failure(job: Job, error: ClusterApiError | BucketError) -> tuple[str, ApiError]:
    """The failed record's reason, and what the client is told."""
    if isinstance(error, ClusterApiError):
        answer: ApiError = ClusterError(
            msg=f"API request failed when creating job {job.name}",
            data={"cluster_response": error.body},
        )
        return "ClusterError", answer
    if isinstance(error, SigningUnavailableError):
        answer = StorageError(msg=f"Could not sign the input URL of job {job.name}: {error}")
        return "StorageError", answer
    if isinstance(error, SigningError):
        answer = ConfigurationError(msg=f"Could not sign the input URL of job {job.name}: {error}")
        return "ConfigurationError", answer
    return "StorageError", StorageError(msg=f"Could not prepare the storage of job {job.name}")


def _deploy(
    job: Job,
    data: bytes | None,
    upload: Future[str],
    backends: Backends,
    *,
    suspend: bool | None = None,
) -> int | None:
    """Create the job's one Job, once its input is in the bucket with a signed URL (the two
    overlap) and its output's upload session is open. Suspended while the job's start time
    is ahead. Returns when the pod's URLs expire (epoch ms): the upload session lives a
    week, a signed input URL as long as it was signed for."""
    settings, bucket = backends.settings, backends.bucket
    if suspend is None:
        suspend = not _due(job)
    lifetime = input_url_lifetime(job, settings)
    opened = now_ms()
    expires = [opened + SESSION_LIFETIME * 1000]
    source = None
    if data is not None:
        stored = _pool().submit(bucket.upload_input, job.input_object, data, job.id)
        try:
            source = references.StageInSource(bucket.input_url(job.input_object, lifetime), False)
        finally:
            wait([stored])  # done before any undo deletes the object it writes
        stored.result()
    elif job.job_parameters.get("input_url"):
        source = references.stage_in_source(job.job_parameters["input_url"], backends, lifetime)
    elif job.has_input:  # in the bucket already: uploaded by its user, or by the create
        # A submission's own generation: another upload under its name is not its input.
        url = bucket.input_url(job.input_object, lifetime, generation=job.submission_generation)
        source = references.StageInSource(url, False)
    if source is not None and not source.public:
        expires.append(opened + lifetime * 1000)
    tasks_url = None
    if job.task_environments:
        tasks_url = bucket.input_url(job.tasks_object, lifetime)
    if job.task_count is not None:
        expires.append(opened + lifetime * 1000)  # the tasks' upload plan
    manifest = manifests.batch_job(
        job,
        settings,
        upload_url=upload.result(),
        input_url=source.url if source else None,
        public_input=bool(source and source.public),
        suspend=suspend,
        tasks_url=tasks_url,
    )
    backends.cluster.create_job(manifest)
    return min(expires)


def input_url_lifetime(job: Job, settings: Settings) -> int:
    """Seconds the stage-in URL stays valid: until the job's scheduled start (if ahead),
    plus its timeout and an hour, which covers every retry of the init container (they all
    fall within activeDeadlineSeconds), capped at the 7 days a V4 signed URL may live; the
    sync replaces a scheduled Job whose URLs would not last."""
    wait_ms = max(0, (job.scheduled_for or 0) - now_ms())
    needed = wait_ms // 1000 + manifests.run_seconds(job, settings) + INPUT_URL_MARGIN
    return min(needed, V4_MAX_LIFETIME)


def _undo(job: Job, backends: Backends) -> None:
    """Best effort: whatever is left is swept by the next sync (it is labelled as ours)."""
    steps = [("job", lambda: backends.cluster.delete_job(job.name))]
    if job.has_input:
        steps.append(("input object", lambda: backends.bucket.delete(job.input_object)))
    for what, step in steps:
        try:
            step()
        except (ClusterApiError, BucketError) as error:
            log.warning("could not delete the %s; the sync will", what, extra={"error": str(error)})


def get(job_id: str, *, store: JobStore) -> Job:
    """The job with this id, in any spelling of a UUID the earlier API took."""
    canonical = _canonical_uuid(job_id)
    job = store.get(canonical) if canonical else None
    if job is None:
        raise DoesNotExist(job_id)
    return job


def kill(job_id: str, *, backends: Backends) -> tuple[Job, str]:
    store = backends.store
    job = get(job_id, store=store)
    refusal = f"Can't stop batch job {job.id}. Status is: {{}}."
    if not job.killable:
        raise InvalidParameters(msg=refusal.format(job.status.value))
    with log_context(job_id=job.id, job_name=job.name):
        try:
            killed = store.transition(
                job.id,
                Status.KILLED,
                reason="killed by its user",
                expect=KILLABLE,
                updates={"reason": "Killed", "message": "Killed by its user"},
            )
        except TransitionRefusedError as refused:
            raise InvalidParameters(msg=refusal.format(refused.current)) from None
        log.info("job killed")
        if killed.transitions[-1]["from"] == Status.CREATED.value:
            pending = _remove_unstarted(killed, backends)
        else:
            pending = remove_from_cluster(killed, backends)
    msg = f"Instance {job.id} was successfully deleted from the cluster."
    if pending:
        msg = f"Instance {job.id} was killed; the next synchronization removes it from the cluster."
    return killed, msg


def _remove_unstarted(job: Job, backends: Backends) -> bool:
    """A job killed before it started: its suspended Job has no pod and no log."""
    try:
        backends.cluster.delete_job(job.name)
    except ClusterApiError as error:
        log.warning("cleanup postponed to the sync", extra={"error": str(error)})
        return True
    return False


def remove_from_cluster(
    job: Job, backends: Backends, pods: list[dict[str, Any]] | None = None
) -> bool:
    """Save the job's log, then delete its Job and pod; True if that must wait for a later
    sync (which saves what is missing and deletes what is left).

    The pod is never deleted before its log is saved. The input and output objects stay in
    the bucket, as they did before.
    """
    try:
        if pods is None:
            pods = joblogs.job_pods(job, backends)
        joblogs.save(job, backends, pods)
        backends.cluster.delete_job(job.name)
    except (ClusterApiError, BucketError) as error:
        log.warning("cleanup postponed to the sync", extra={"error": str(error)})
        return True
    return False


def _canonical_uuid(text: str) -> str | None:
    """The earlier API read ids with `uuid.UUID` (mongoengine's UUIDField), so it found a
    job by its id in hex, in capitals, in braces or as a URN too; this is the one spelling
    the records are stored under."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        return None
