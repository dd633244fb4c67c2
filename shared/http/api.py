"""HTTP handlers: parse requests, call the services, answer in the earlier API's envelope
`{data, error, msg, result}`. `respond_errors` is the one place errors become responses."""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Callable
from typing import Any, Concatenate, ParamSpec

from flask import Request, Response
from flask import request as current_request
from werkzeug.exceptions import HTTPException

from shared import logs
from shared.accounts import callers
from shared.accounts import service as accounts
from shared.cloud.backends import Backends
from shared.errors import (
    ApiError,
    BucketError,
    ClusterApiError,
    ClusterError,
    DatabaseError,
    DoesNotExist,
    InvalidParameters,
    MethodNotAllowed,
    NoSuchAccount,
    NotFound,
    PayloadTooLarge,
    StorageError,
    StoreError,
    Unavailable,
)
from shared.http import paging
from shared.jobs import health, lifecycle, queries, reconciler
from shared.model.access import Account, Caller
from shared.model.job import Status
from shared.model.validation import MAX_ACCOUNT_ID, MAX_NAME
from shared.settings import SettingsError

log = logging.getLogger(__name__)
P = ParamSpec("P")
# A handler: the request, the process's backends, and what its route took from the path.
Handler = Callable[Concatenate[Request, Backends, P], Response]
# A handler of a caller's request: the same, and its verified caller.
CallerHandler = Callable[Concatenate[Request, Backends, Caller, P], Response]
MAX_ACCOUNT_BODY = 1 << 20  # an account of a thousand members is about 60 KB
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
    body = {"data": data, "error": error, "msg": msg, "result": not error, **(extra or {})}
    return Response(
        json.dumps(body, ensure_ascii=False),
        status=status,
        mimetype="application/json",
        headers=headers,
    )


def respond_errors(handler: Handler[P]) -> Handler[P]:
    """Every failure answers in the envelope; unexpected ones are logged with a traceback."""

    @functools.wraps(handler)
    def guarded(
        request: Request, backends: Backends, /, *args: P.args, **kwargs: P.kwargs
    ) -> Response:
        try:
            logs.configure_once(backends.settings.log_level)
            return handler(request, backends, *args, **kwargs)
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


def identified(handler: CallerHandler[P]) -> Handler[P]:
    """A handler of a caller's request: the caller is identified first (401 without a
    valid identity token), and handed to the handler, which checks what it may do."""

    @respond_errors
    @functools.wraps(handler)
    def checked(
        request: Request, backends: Backends, /, *args: P.args, **kwargs: P.kwargs
    ) -> Response:
        caller = callers.identify(request, backends)
        return handler(request, backends, caller, *args, **kwargs)

    return checked


# -- the four actions ----------------------------------------------------------------------


@identified
def create(request: Request, backends: Backends, caller: Caller) -> Response:
    """A create; with `?dry_run=true`, whether it would be accepted and where it would
    wait, nothing made."""
    body = read_json(request, backends.settings.max_body_bytes)
    if _flag(request.args.get("dry_run")):
        answer, msg = lifecycle.preview(body, backends, caller)
        return envelope(answer, msg=msg)
    job, msg, _ = lifecycle.create(body, backends, caller)
    return envelope(job.to_api(), msg=msg)


def _flag(value: str | None) -> bool:
    """A boolean query parameter: true or 1; false, 0 or absent; anything else is 400."""
    if value is None or value.lower() in ("false", "0"):
        return False
    if value.lower() in ("true", "1"):
        return True
    raise InvalidParameters(data={"dry_run": "Must be true or false"})


def _shown(backends: Backends) -> bool:
    """Whether a job's secrets (its upload URL, its input URL's signature, its callback's
    token) are in answers other than the create's: only while access control is off, as the
    earlier API showed them."""
    return not backends.settings.access.enabled


@identified
def get(request: Request, backends: Backends, caller: Caller, job_id: str) -> Response:
    return envelope(queries.get(job_id, backends, caller).to_api(_shown(backends)))


@identified
def list_jobs(request: Request, backends: Backends, caller: Caller) -> Response:
    """A page of the jobs in one status, oldest first (`status=any`: of every status, newest
    first), and the token of the next page ("" on the last). Without page_size, pages of
    1000; without status, `running`: the earlier API's list, while it is shorter. `name`
    finds the job of that name (of any status unless one is given)."""
    name = request.args.get("name") or None
    if name is not None and len(name) > MAX_NAME:
        raise InvalidParameters(data={"name": f"At most {MAX_NAME} characters"})
    default = paging.ANY if name is not None else Status.RUNNING.value
    status = _list_status(request.args.get("status", default))
    account_id = request.args.get("account_id") or None
    if account_id is not None and len(account_id) > MAX_ACCOUNT_ID:
        # No job can have it, and Firestore refuses long values in a query.
        raise InvalidParameters(data={"account_id": f"At most {MAX_ACCOUNT_ID} characters"})
    size = paging.page_size(request.args)
    after = paging.cursor(request.args.get("page_token"), status, account_id)
    jobs, more = queries.page(
        status, account_id, backends, caller, size=size, after=after, name=name
    )
    next_token = paging.token(status, account_id, jobs[-1]) if more else ""
    shown = _shown(backends)
    return envelope([job.to_api(shown) for job in jobs], extra={"next_page_token": next_token})


def _list_status(raw: str) -> Status | None:
    if raw == paging.ANY:
        return None
    try:
        return Status(raw)
    except ValueError:
        choices = ", ".join([*(s.value for s in Status), paging.ANY])
        raise InvalidParameters(data={"status": f"Must be one of: {choices}"}) from None


MAX_TAIL_LINES = 100_000


@identified
def job_log(request: Request, backends: Backends, caller: Caller, job_id: str) -> Response:
    """The user container's log (an array job's: `?task=<index>`, the first by default)."""
    tail = None
    if "tail" in request.args:
        raw = request.args["tail"]
        if not raw.isascii() or not raw.isdigit() or not 0 < int(raw) <= MAX_TAIL_LINES:
            raise InvalidParameters(
                data={"tail": f"Must be a whole number from 1 to {MAX_TAIL_LINES}"}
            )
        tail = int(raw)
    view = queries.log(job_id, backends, caller, tail=tail, task=request.args.get("task"))
    return envelope(view.as_dict())


@identified
def task_output(
    request: Request, backends: Backends, caller: Caller, job_id: str, index: str
) -> Response:
    """An array job's task's output: 302 to a URL signed for this request."""
    url = queries.task_output_url(job_id, index, backends, caller)
    return envelope({"url": url}, status=302, headers={"Location": url})


@identified
def kill(request: Request, backends: Backends, caller: Caller, job_id: str) -> Response:
    job, msg = lifecycle.kill(job_id, backends, caller)
    return envelope(job.to_api(_shown(backends)), msg=msg)


# -- accounts ------------------------------------------------------------------------------


def _account(account: Account, backends: Backends) -> dict[str, Any]:
    """An account as the API shows it: its quota is DEFAULT_QUOTA until an operator sets it."""
    return account.to_api(backends.settings.default_quota)


@identified
def create_account(request: Request, backends: Backends, caller: Caller) -> Response:
    body = read_json(request, MAX_ACCOUNT_BODY)
    account = accounts.create(body, backends, caller)
    return envelope(_account(account, backends), msg=f"Account {account.account_id} created")


@identified
def list_accounts(request: Request, backends: Backends, caller: Caller) -> Response:
    listed = accounts.listing(backends, caller)
    return envelope([_account(account, backends) for account in listed])


@identified
def get_account(request: Request, backends: Backends, caller: Caller, account_id: str) -> Response:
    return envelope(_account(accounts.get(account_id, backends, caller), backends))


@identified
def change_account(
    request: Request, backends: Backends, caller: Caller, account_id: str
) -> Response:
    body = read_json(request, MAX_ACCOUNT_BODY)
    account = accounts.change_settings(account_id, body, backends, caller)
    return envelope(_account(account, backends), msg=f"Account {account_id} changed")


@identified
def set_member(
    request: Request, backends: Backends, caller: Caller, account_id: str, email: str
) -> Response:
    body = read_json(request, MAX_ACCOUNT_BODY)
    account = accounts.set_member(account_id, email, body, backends, caller)
    msg = f"{email.lower()} is a {body['role']} of {account_id}"
    return envelope(_account(account, backends), msg=msg)


@identified
def remove_member(
    request: Request, backends: Backends, caller: Caller, account_id: str, email: str
) -> Response:
    account = accounts.remove_member(account_id, email, backends, caller)
    return envelope(_account(account, backends), msg=f"{email.lower()} left {account_id}")


@identified
def healthcheck(request: Request, backends: Backends, caller: Caller) -> Response:
    """200 with each dependency's latency when all answered in time; 503 naming those that
    did not. Reads only; any verified caller may ask."""
    probes = health.check(backends)
    report = {name: probe.as_dict() for name, probe in probes.items()}
    failed = [name for name, probe in probes.items() if not probe.ok]
    if failed:
        detail = "; ".join(f"{name}: {probes[name].error}" for name in failed)
        raise Unavailable(msg=f"Unavailable: {detail}", data=report)
    return envelope(report, msg="Firestore, the cluster and the bucket answered")


@respond_errors
def synchronize(request: Request, backends: Backends) -> Response:
    report = reconciler.synchronize(backends)
    return envelope(report.as_dict(), msg="Synchronization finished")


@respond_errors
def not_found(request: Request, backends: Backends) -> Response:
    raise NotFound(msg=f"No route for {request.method} {request.path}")


@respond_errors
def no_such_job(request: Request, backends: Backends, job_id: str) -> Response:
    raise DoesNotExist(job_id)


@respond_errors
def no_such_account(request: Request, backends: Backends, account_id: str) -> Response:
    raise NoSuchAccount(account_id)


@respond_errors
def method_not_allowed(request: Request, backends: Backends, allowed: tuple[str, ...]) -> Response:
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
    status = error.code or 500
    kind = _FRAMEWORK_ERRORS.get(status)
    name = kind.error if kind else type(error).__name__
    msg = (
        f"No route for {current_request.method} {current_request.path}"
        if status == 404
        else error.description
    )
    allowed = getattr(error, "valid_methods", None)
    headers = {"Allow": ", ".join(allowed)} if status == 405 and allowed else None
    return envelope("", msg=msg or "", error=name, status=status, headers=headers)
