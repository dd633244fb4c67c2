"""The earlier REST API's routes on one function (`batch_api`), and the id/parameter
conventions of the single-purpose functions. All of them call the same handlers."""

from __future__ import annotations

from flask import Request, Response
from flask import request as current_request
from werkzeug.exceptions import HTTPException

from shared.cloud.backends import Backends
from shared.http import api, ui


def _parts(request: Request) -> list[str]:
    return [part for part in request.path.split("/") if part]


# The methods each path serves: a 405 lists them in its Allow header.
COLLECTION_METHODS = ("GET", "POST")  # /batch/
JOB_METHODS = ("GET", "DELETE")  # /batch/<id>
LOGS = "logs"
LOGS_METHODS = ("GET",)  # /batch/<id>/logs
OUTPUTS = "outputs"
OUTPUTS_METHODS = ("GET",)  # /batch/<id>/outputs/<index>
HEALTHCHECK = "healthcheck"
HEALTHCHECK_METHODS = ("GET",)  # /healthcheck
ACCOUNTS = "accounts"
ACCOUNTS_METHODS = ("GET", "POST")  # /accounts/
ACCOUNT_METHODS = ("GET", "PATCH")  # /accounts/<id>
MEMBERS = "members"
MEMBER_METHODS = ("PUT", "DELETE")  # /accounts/<id>/members/<email>
UI = "ui"
UI_METHODS = ("GET",)  # /ui, /ui/ and its files


def _logs(request: Request, backends: Backends, job_id: str) -> Response:
    if request.method != "GET":
        return api.method_not_allowed(request, backends, LOGS_METHODS)
    return api.job_log(request, backends, job_id)


def _job_path(parts: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(job id, the methods served) for `/batch/<id>`, `/batch/<id>/logs` and
    `/batch/<id>/outputs/<index>`."""
    if parts[:1] != ["batch"]:
        return None
    if len(parts) == 2:
        return parts[1], JOB_METHODS
    if len(parts) == 3 and parts[2] == LOGS:
        return parts[1], LOGS_METHODS
    if len(parts) == 4 and parts[2] == OUTPUTS:
        return parts[1], OUTPUTS_METHODS
    return None


def _ui(request: Request, backends: Backends, parts: list[str]) -> Response:
    """The status page: /ui redirects to /ui/, which serves index.html, with its two files
    beside it. Anything else under /ui/ is the API's 404, another method its 405."""
    if parts == [UI]:
        name = "" if request.path.endswith("/") else None  # None: /ui, redirected
    elif len(parts) == 2 and ui.is_asset(parts[1]) and not request.path.endswith("/"):
        name = parts[1]
    else:
        return api.not_found(request, backends)
    if request.method != "GET":
        return api.method_not_allowed(request, backends, UI_METHODS)
    return ui.redirect_to_page(request) if name is None else ui.serve(request, name)


def _account_path(parts: list[str]) -> tuple[str, tuple[str, ...]] | None:
    """(account id, the methods served) for `/accounts/<id>` and its members' paths."""
    if parts[:1] != [ACCOUNTS]:
        return None
    if len(parts) == 2:
        return parts[1], ACCOUNT_METHODS
    if len(parts) == 4 and parts[2] == MEMBERS:
        return parts[1], MEMBER_METHODS
    return None


def _accounts(request: Request, backends: Backends, parts: list[str]) -> Response:
    """GET and POST /accounts/, GET /accounts/<id>, PUT and DELETE
    /accounts/<id>/members/<email>."""
    method = request.method
    if len(parts) == 1:
        if method == "GET":
            return api.list_accounts(request, backends)
        if method == "POST":
            return api.create_account(request, backends)
        return api.method_not_allowed(request, backends, ACCOUNTS_METHODS)
    if len(parts) == 2:
        if method == "GET":
            return api.get_account(request, backends, parts[1])
        if method == "PATCH":
            return api.change_account(request, backends, parts[1])
        return api.method_not_allowed(request, backends, ACCOUNT_METHODS)
    if len(parts) == 4 and parts[2] == MEMBERS:
        if method == "PUT":
            return api.set_member(request, backends, parts[1], parts[3])
        if method == "DELETE":
            return api.remove_member(request, backends, parts[1], parts[3])
        return api.method_not_allowed(request, backends, MEMBER_METHODS)
    return api.not_found(request, backends)


def batch_api(request: Request, backends: Backends) -> Response:
    """GET /batch/, POST /batch/, GET /batch/<id>, DELETE /batch/<id>, GET /batch/<id>/logs,
    GET /batch/<id>/outputs/<index>, GET /healthcheck; the accounts: GET /accounts/,
    POST /accounts/, GET /accounts/<account_id>, PATCH /accounts/<account_id>,
    PUT /accounts/<account_id>/members/<email>,
    DELETE /accounts/<account_id>/members/<email>; and the status page: GET /ui, GET /ui/,
    GET /ui/app.js, GET /ui/style.css."""
    parts = _parts(request)
    if parts[:1] == [UI]:
        return _ui(request, backends, parts)
    if parts[:1] == [ACCOUNTS]:
        return _accounts(request, backends, parts)
    if parts == [HEALTHCHECK]:
        if request.method != "GET":
            return api.method_not_allowed(request, backends, HEALTHCHECK_METHODS)
        return api.healthcheck(request, backends)
    if len(parts) == 3 and _job_path(parts):
        return _logs(request, backends, parts[1])
    if len(parts) == 4 and _job_path(parts):
        if request.method != "GET":
            return api.method_not_allowed(request, backends, OUTPUTS_METHODS)
        return api.task_output(request, backends, parts[1], parts[3])
    if not parts or parts[0] != "batch" or len(parts) > 2:
        return api.not_found(request, backends)
    if len(parts) == 1:
        if request.method == "GET":
            return api.list_jobs(request, backends)
        if request.method == "POST":
            return api.create(request, backends)
        return api.method_not_allowed(request, backends, COLLECTION_METHODS)
    if request.method == "GET":
        return api.get(request, backends, parts[1])
    if request.method == "DELETE":
        return api.kill(request, backends, parts[1])
    return api.method_not_allowed(request, backends, JOB_METHODS)


def _job_id(request: Request) -> str | None:
    """`/<id>` or `?id=<id>`."""
    parts = _parts(request)
    if len(parts) == 1:
        return parts[0]
    return request.args.get("id") or None


def create_job(request: Request, backends: Backends) -> Response:
    if request.method != "POST":
        return api.method_not_allowed(request, backends, ("POST",))
    return api.create(request, backends)


def get_job(request: Request, backends: Backends) -> Response:
    """`/<id>`, `?id=<id>`, or the job's log at `/<id>/logs`."""
    parts = _parts(request)
    if len(parts) == 2 and parts[1] == LOGS:
        return _logs(request, backends, parts[0])
    job_id = _job_id(request)
    if request.method != "GET":
        return api.method_not_allowed(request, backends, ("GET",))
    return api.get(request, backends, job_id) if job_id else api.not_found(request, backends)


def list_jobs(request: Request, backends: Backends) -> Response:
    if request.method != "GET" or _parts(request):
        if _parts(request):
            return api.not_found(request, backends)
        return api.method_not_allowed(request, backends, ("GET",))
    return api.list_jobs(request, backends)


def kill_job(request: Request, backends: Backends) -> Response:
    job_id = _job_id(request)
    if request.method not in ("DELETE", "POST"):
        return api.method_not_allowed(request, backends, ("DELETE", "POST"))
    return api.kill(request, backends, job_id) if job_id else api.not_found(request, backends)


def synchronize_batch_jobs(request: Request, backends: Backends) -> Response:
    if request.method not in ("POST", "GET"):
        return api.method_not_allowed(request, backends, ("POST", "GET"))
    return api.synchronize(request, backends)


def framework_error(error: HTTPException, backends: Backends) -> Response:
    """What functions-framework (Flask) refuses before a function runs, in the envelope.

    Its routes match no path holding a newline, so `GET /batch/a%0Ab` lands here: on a job's
    path that is still a malformed job id, answered as `batch_api` answers one."""
    parts = _parts(current_request)
    job_path = _job_path(parts)
    if error.code == 404 and job_path and current_request.method in job_path[1]:
        return api.no_such_job(current_request, backends, job_path[0])
    account_path = _account_path(parts)
    if error.code == 404 and account_path and current_request.method in account_path[1]:
        return api.no_such_account(current_request, backends, account_path[0])
    return api.framework_error(error)
