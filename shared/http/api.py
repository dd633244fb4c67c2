"""HTTP handlers: parse requests, call the services, answer in the earlier API's envelope
`{data, error, msg, result}`. `respond_errors` is the one place errors become responses."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from shared import logs
from shared.cloud.backends import Backends, default_backends
from shared.errors import (
    ApiError,
    BucketError,
    ClusterApiError,
    ClusterError,
    DatabaseError,
    DoesNotExist,
    InvalidParameters,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    StorageError,
    StoreError,
    Unavailable,
)
from shared.model.job import Job, Status, now_ms
from shared.model.validation import MAX_ACCOUNT_ID
from shared.settings import SettingsError

if TYPE_CHECKING:
    from flask import Request, Response
    from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)
Handler = Callable[..., "Response"]
T = TypeVar("T")
_logging_ready = False
# json.loads joins escaped surrogate pairs, so a surrogate left in a string stands alone: it
# is not Unicode, and no backend (nor the response's own UTF-8) can carry it.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def envelope(
    data: Any = "",
    *,
    msg: str = "",
    error: str = "",
    status: int = 200,
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> Response:
    """The earlier API's envelope; `extra` adds top-level fields (a list's next_page_token)."""
    from flask import Response

    body = {"data": data, "error": error, "msg": msg, "result": not error, **(extra or {})}
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def _configure_logging(backends: Backends) -> None:
    global _logging_ready
    if not _logging_ready:
        logs.configure(backends.settings.log_level)
        _logging_ready = True


def respond_errors(handler: Handler) -> Handler:
    """Every failure answers in the envelope; unexpected ones are logged with a traceback."""

    @functools.wraps(handler)
    def guarded(*args: Any, **kwargs: Any) -> Response:
        try:
            backends = kwargs.get("backends") or default_backends()
            _configure_logging(backends)
            return handler(*args, **{**kwargs, "backends": backends})
        except (ApiError, StoreError, BucketError, ClusterApiError) as raised:
            error = _as_api_error(raised)
            if error.status_code >= 500:
                log.error("request failed: %s", error.msg or error.error, exc_info=raised)
            return envelope(
                error.data,
                msg=error.msg,
                error=error.error,
                status=error.status_code,
                headers=error.headers,
            )
        except SettingsError as error:
            log.critical("misconfigured: %s", error)
            return envelope("", msg="Service misconfigured", error="InternalError", status=500)
        except Exception:
            log.exception("unexpected error")
            return envelope("", msg="Internal error", error="InternalError", status=500)

    return guarded


def event_handler(handler: Callable[..., T]) -> Callable[..., T]:
    """The event functions' one wrapper: the backends, and logging set up."""

    @functools.wraps(handler)
    def guarded(*args: Any, backends: Backends | None = None, **kwargs: Any) -> T:
        backends = backends or default_backends()
        _configure_logging(backends)
        return handler(*args, backends=backends, **kwargs)

    return guarded


def _as_api_error(error: Exception) -> ApiError:
    """What the client is told about a failure of ours or of a backend."""
    if isinstance(error, ApiError):
        return error
    if isinstance(error, StoreError):
        return DatabaseError(msg=f"The job database is unavailable: {error}")
    if isinstance(error, BucketError):
        return StorageError(msg=f"Cloud Storage is unavailable: {error}")
    if isinstance(error, ClusterApiError):
        return ClusterError(msg=str(error), data={"cluster_response": error.body})
    raise TypeError(error)


def read_json(request: Request, limit: int) -> Any:
    """The request's JSON body, or a 4xx ApiError saying what is wrong with it."""
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(msg=f"Request body larger than {limit} bytes")
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise InvalidParameters(msg=f"Content-Type must be application/json, not {mimetype}")
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise PayloadTooLarge(msg=f"Request body larger than {limit} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        detail = "nested too deeply" if isinstance(error, RecursionError) else str(error)
        raise InvalidParameters(msg=f"Malformed JSON: {detail}") from None
    if _has_lone_surrogate(body):
        raise InvalidParameters(msg="Malformed JSON: a string holds a lone UTF-16 surrogate")
    return body


def _has_lone_surrogate(value: Any) -> bool:
    """Walks the parsed body without recursion (it may be nested a thousand deep)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            # isascii() is a flag read: the 1.4 MB of base64 in an input skips the scan.
            if not item.isascii() and _SURROGATE.search(item):
                return True
        elif isinstance(item, dict):
            pending.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _refresh_output_url(job: Job, backends: Backends) -> Job:
    """A succeeded job's signed URL, signed again on read once it has expired."""
    if job.status is not Status.SUCCEEDED or job.output_url_expires is None:
        return job
    if job.output_url_expires > now_ms():
        return job
    changes: dict[str, Any]
    if job.task_count is not None:
        from shared.jobs import arrays

        if job.task_output_urls is not None:
            landed = {index for index, url in enumerate(job.task_output_urls) if url}
        else:
            landed = arrays.landed(job, backends)
        changes = arrays.success_urls(job, backends, landed)
    else:
        url, expires = backends.bucket.output_url(
            job.output_object, backends.settings.output_url_lifetime
        )
        changes = {"output_file_url": url, "output_url_expires": expires}
    backends.store.update(job.id, changes, status=Status.SUCCEEDED)
    for key, value in changes.items():
        setattr(job, key, value)
    return job


# -- the four actions ----------------------------------------------------------------------


@respond_errors
def create(request: Request, *, backends: Backends) -> Response:
    from shared.jobs import lifecycle

    body = read_json(request, backends.settings.max_body_bytes)
    job, msg, repeat = lifecycle.create(body, backends=backends)
    if repeat:
        return envelope(_refresh_output_url(job, backends).to_api(), msg=msg)
    if backends.settings.create_wait > 0 and job.status is Status.RUNNING:
        from shared.jobs.reconciler import watch_start

        with logs.log_context(job_id=job.id, job_name=job.name):
            job, msg = watch_start(job, backends)
    return envelope(job.to_api(), msg=msg)


@respond_errors
def get(request: Request, job_id: str, *, backends: Backends) -> Response:
    from shared.jobs import lifecycle

    job = lifecycle.get(job_id, store=backends.store)
    return envelope(_refresh_output_url(job, backends).to_api())


@respond_errors
def list_jobs(request: Request, *, backends: Backends) -> Response:
    """A page of the jobs in one status, oldest first, and the token of the next page ("" on
    the last). Without page_size, pages of 1000: the earlier API's list, while it is shorter."""
    from shared.http import paging

    raw = request.args.get("status", Status.RUNNING.value)
    try:
        status = Status(raw)
    except ValueError:
        choices = ", ".join(s.value for s in Status)
        raise InvalidParameters(data={"status": f"Must be one of: {choices}"}) from None
    account_id = request.args.get("account_id") or None
    if account_id is not None and len(account_id) > MAX_ACCOUNT_ID:
        # No job can have it, and Firestore refuses long values in a query.
        raise InvalidParameters(data={"account_id": f"At most {MAX_ACCOUNT_ID} characters"})
    size = paging.page_size(request.args)
    after = paging.cursor(request.args.get("page_token"), status, account_id)
    # One more than the page: whether it exists says whether there is a next page.
    jobs = backends.store.find_page(status, account_id, limit=size + 1, after=after)
    page = jobs[:size]
    next_token = paging.token(status, account_id, page[-1]) if len(jobs) > size else ""
    return envelope(
        [_refresh_output_url(job, backends).to_api() for job in page],
        extra={"next_page_token": next_token},
    )


MAX_TAIL_LINES = 100_000


@respond_errors
def job_log(request: Request, job_id: str, *, backends: Backends) -> Response:
    """The user container's log: from the cluster while the job runs, saved after."""
    from shared.jobs import joblogs, lifecycle

    tail = None
    if "tail" in request.args:
        raw = request.args["tail"]
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_TAIL_LINES:
            raise InvalidParameters(
                data={"tail": f"Must be a whole number from 1 to {MAX_TAIL_LINES}"}
            )
        tail = int(raw)
    job = lifecycle.get(job_id, store=backends.store)
    task = None
    if "task" in request.args:
        raw, count = request.args["task"], job.task_count
        if count is None:
            raise InvalidParameters(data={"task": "Only for array jobs (task_count)"})
        if not raw.isascii() or not raw.isdigit() or not int(raw) < count:
            raise InvalidParameters(data={"task": f"Must be a task index from 0 to {count - 1}"})
        task = int(raw)
    return envelope(joblogs.read(job, backends, tail=tail, task=task).as_dict())


@respond_errors
def task_output(request: Request, job_id: str, index: str, *, backends: Backends) -> Response:
    """An array job's task's output: 302 to a URL signed for this request, any number of
    tasks (the record lists them only up to arrays.MAX_LISTED_OUTPUTS)."""
    from shared.jobs import lifecycle

    job = lifecycle.get(job_id, store=backends.store)
    count = job.task_count
    if count is None:
        raise InvalidParameters(data={"index": "Only for array jobs (task_count)"})
    if not index.isascii() or not index.isdigit() or not int(index) < count:
        raise InvalidParameters(data={"index": f"Must be a task index from 0 to {count - 1}"})
    name = job.task_output_object(int(index))
    metadata = backends.bucket.metadata(name)
    if metadata is None or metadata.get("job-id") != job.id:
        raise NotFound(msg=f"Task {index} of job {job.id} has no output (yet)")
    url, _ = backends.bucket.output_url(name, backends.settings.output_url_lifetime)
    return envelope({"url": url}, status=302, headers={"Location": url})


@respond_errors
def kill(request: Request, job_id: str, *, backends: Backends) -> Response:
    from shared.jobs import lifecycle

    job, msg = lifecycle.kill(job_id, backends=backends)
    return envelope(job.to_api(), msg=msg)


@respond_errors
def healthcheck(request: Request, *, backends: Backends) -> Response:
    """200 with each dependency's latency when all answered in time; 503 naming those that
    did not. Reads only."""
    from shared.jobs import health

    probes = health.check(backends)
    report = {name: probe.as_dict() for name, probe in probes.items()}
    failed = [name for name, probe in probes.items() if not probe.ok]
    if failed:
        detail = "; ".join(f"{name}: {probes[name].error}" for name in failed)
        raise Unavailable(msg=f"Unavailable: {detail}", data=report)
    return envelope(report, msg="Firestore, the cluster and the bucket answered")


@respond_errors
def synchronize(request: Request, *, backends: Backends) -> Response:
    from shared.jobs.reconciler import synchronize as run_sync

    report = run_sync(backends)
    return envelope(report.as_dict(), msg="Synchronization finished")


@event_handler
def handle_finalized(data: dict[str, Any], *, backends: Backends) -> str:
    """The finalize event. A transient failure is raised: the function answers 500 and
    Eventarc delivers the event again. Anything else is logged and the event dropped."""
    from shared.jobs import finalize

    try:
        return finalize.handle(data, backends=backends)
    except (StoreError, BucketError):
        log.exception("finalize failed; the event will be delivered again")
        raise
    except ClusterApiError as error:
        if error.transient:
            log.exception("finalize failed; the event will be delivered again")
            raise
        log.exception("finalize could not clean up; the sync will")
        return "cleanup pending"


@event_handler
def handle_job_event(event: dict[str, Any], *, backends: Backends) -> str:
    """A status notification (Pub/Sub messagePublished): deliver the job's callback if it
    reached a final status. A failed delivery is raised, so Eventarc delivers the event
    again with backoff, until CALLBACK_RETRY_SECONDS after the status; then it is recorded."""
    from shared.jobs import callbacks

    try:
        return callbacks.handle(event, backends=backends)
    except StoreError:
        log.exception("callback bookkeeping failed; the event will be delivered again")
        raise


@event_handler
def handle_job_written(data: bytes, *, backends: Backends) -> str:
    """A write of a job's document (Firestore's trigger): publish its status steps. A
    failed publish is raised, so the function answers 500 and Eventarc delivers the event
    again (consumers drop the messages they have seen)."""
    from shared.jobs import notify

    return notify.handle(data, backends=backends)


@respond_errors
def not_found(request: Request, *, backends: Backends) -> Response:
    raise NotFound(msg=f"No route for {request.method} {request.path}")


@respond_errors
def no_such_job(request: Request, job_id: str, *, backends: Backends) -> Response:
    raise DoesNotExist(job_id)


@respond_errors
def method_not_allowed(
    request: Request, allowed: tuple[str, ...], *, backends: Backends
) -> Response:
    raise MethodNotAllowed(
        msg=f"Method {request.method} not allowed on {request.path}", allowed=allowed
    )


_FRAMEWORK_ERRORS: dict[int, type[ApiError]] = {
    400: InvalidParameters,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
}


def framework_error(error: HTTPException) -> Response:
    """An HTTP error raised by Flask or Werkzeug themselves (no route matched the path, a
    malformed request), in the envelope like every other answer."""
    from flask import request

    status = error.code or 500
    kind = _FRAMEWORK_ERRORS.get(status)
    name = kind.error if kind else type(error).__name__
    msg = f"No route for {request.method} {request.path}" if status == 404 else error.description
    allowed = getattr(error, "valid_methods", None)
    headers = {"Allow": ", ".join(allowed)} if status == 405 and allowed else None
    return envelope("", msg=msg or "", error=name, status=status, headers=headers)
