"""Strict validation of a create request, with field-level errors as the earlier API gave
them: `{"job_parameters": {"docker_image": "Field is required"}}`.

Everything a client sends is checked here so that the cluster never sees a value it would
reject: a mistake of the client's is a 400, never a 500 from the cluster.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import random
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import SplitResult

from shared.errors import InvalidParameters
from shared.model.job import now_ms
from shared.quantity import parse_quantity
from shared.settings import DEFAULT_MAX_PARALLELISM, MAX_JOB_SECONDS

REQUIRED = "Field is required"

# Kubernetes Job names must be DNS-1123 labels of at most 63 characters; the earlier API's
# limit of 55 (it named a second Job `<name>-cleanup`) is kept, so names stay as they were.
MAX_NAME = 55
# Names a create without one tries before it gives up (derived_names): 1,000 creates in
# one millisecond all find a free one.
MAX_DERIVED_NAMES = 16
# Every pattern is applied with fullmatch: `$` alone also matches before a final newline,
# which let "name\n" through to a cluster that refuses it.
NAME_RE = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
ENV_NAME_RE = re.compile(r"[-._a-zA-Z][-._a-zA-Z0-9]*")  # what Kubernetes accepts
RESERVED_ENV_NAME_RE = re.compile(r"__.*__")  # Firestore reserves such map keys
MAX_ENV_NAME = 256  # characters
MAX_ENV_VARS = 200
MAX_ENV_VALUE = 32 * 1024  # characters
# Names and values together, as UTF-8: the record must fit a Firestore document (1 MiB)
# and the Job an API server request.
MAX_ENV_BYTES = 256 * 1024
MAX_ACCOUNT_ID = 128
# The stage-in URL and the stage-out upload session are valid 7 days at most: the job's pod
# must be done with both by then, so a timeout is capped an hour short of that.
MAX_TIMEOUT = MAX_JOB_SECONDS  # seconds
MAX_RETRIES = 10
# command and args: what a Pod's container takes, bounded so the Job and the record fit.
MAX_ARGV_ITEMS = 1000
MAX_ARGV_BYTES = 256 * 1024  # UTF-8, command and args together
MAX_URL = 8 * 1024  # characters of input_url
MAX_START_AHEAD_MS = 30 * 24 * 3600 * 1000  # start_after: at most 30 days ahead
# Array jobs: one Indexed Job of task_count pods (Kubernetes allows 100,000 completions with
# backoffLimitPerIndex). Their task_environments go to the bucket, not into the record or
# the Job, so they may total more than one job's environment.
MAX_TASKS = 10_000
DEFAULT_PARALLELISM = 100
PARALLELISM_BOUND = "Must be at most MAX_PARALLELISM"
MAX_TASK_ENVIRONMENTS_BYTES = 4 * 1024 * 1024  # UTF-8, every task's names and values
TASK_COUNT_BOUND = "Must be at most task_count"
SHELL_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # task variables are set through sh
# Cloud Storage bucket names: https://cloud.google.com/storage/docs/buckets#naming
BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")
MAX_OBJECT_NAME = 1024  # bytes, UTF-8
RFC3339_RE = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?"
    r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)"
)
# A request_id: the UUID's textual form only (uuid.UUID also takes braces, URNs, bare hex).
UUID_RE = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
)
IMAGE_RE = re.compile(
    rf"(?:{_DOMAIN}(?::[0-9]{{1,5}})?/)?"  # registry (only when it looks like one: see below)
    rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"  # tag
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?",  # digest
    re.ASCII,  # a tag's \w is [A-Za-z0-9_], as in the Docker reference grammar
)
MAX_IMAGE = 255

RESOURCE_KINDS = ("limits", "requests")
RESOURCE_NAMES = ("cpu", "memory")

TOP_LEVEL = {"account_id", "name", "job_parameters", "status", "callback_url", "request_id"}
PARAMETERS = {
    "docker_image",
    "environment_variables",
    "resources",
    "input_zip",
    "timeout_seconds",
    "retries",
    "command",
    "args",
    "input_url",
    "input_upload",
    "start_after",
    "spot",
    "task_count",
    "parallelism",
    "task_environments",
    "max_failed_tasks",
}
ARRAY_FIELDS = ("task_count", "parallelism", "task_environments", "max_failed_tasks")
INPUT_SOURCES = ("input_zip", "input_url", "input_upload")


@dataclass(frozen=True)
class JobRequest:
    """A validated create request. `input_zip` is the still-encoded base64 text."""

    name: str | None
    account_id: str | None
    job_parameters: dict[str, Any]  # without input_zip
    input_zip: str | None
    scheduled_for: int | None = None  # epoch ms of a start_after still ahead; None = now
    callback_url: str | None = None  # where to POST the job at its final status
    request_id: str | None = None  # the client's idempotency key, as a canonical UUID
    fingerprint: str = ""  # sha256 of the body without request_id (see `fingerprint`)
    task_environments: list[dict[str, str]] | None = None  # an array job's, one per task

    @property
    def input_url(self) -> str | None:
        return self.job_parameters.get("input_url")

    @property
    def input_upload(self) -> bool:
        return bool(self.job_parameters.get("input_upload"))


def valid_image(image: str) -> bool:
    if len(image) > MAX_IMAGE or not IMAGE_RE.fullmatch(image):
        return False
    first, slash, _ = image.partition("/")
    if not slash:
        return True  # no registry: the pattern holds the one path component to lowercase
    # The first of several components is a registry only when it looks like one; otherwise
    # it is a path component, and must be lowercase.
    looks_like_registry = "." in first or ":" in first or first == "localhost"
    return looks_like_registry or first == first.lower()


def name_error(name: str) -> str | None:
    """Why `name` cannot be a job's name, or None."""
    if len(name) > MAX_NAME:
        return f"Must be at most {MAX_NAME} characters"
    if not NAME_RE.fullmatch(name):
        return (
            "Must consist of lower case alphanumeric characters or '-', "
            "and start and end with an alphanumeric character"
        )
    return None


def _resources_errors(resources: Any) -> Any:
    if not isinstance(resources, dict):
        return "Must be an object with 'limits' and/or 'requests'"
    errors: dict[str, Any] = {}
    parsed: dict[str, dict[str, Decimal]] = {}
    for kind, values in resources.items():
        if kind not in RESOURCE_KINDS:
            errors[kind] = "Unknown field"
            continue
        if not isinstance(values, dict):
            errors[kind] = "Must be an object with 'cpu' and/or 'memory'"
            continue
        for resource, quantity in values.items():
            if resource not in RESOURCE_NAMES:
                errors.setdefault(kind, {})[resource] = "Unknown resource: use 'cpu' or 'memory'"
                continue
            number = parse_quantity(quantity) if isinstance(quantity, str) else None
            if number is None or number <= 0:
                errors.setdefault(kind, {})[resource] = (
                    "Must be a positive Kubernetes quantity such as '500m' or '128Mi'"
                )
                continue
            parsed.setdefault(kind, {})[resource] = number
    for resource in RESOURCE_NAMES:
        request = parsed.get("requests", {}).get(resource)
        limit = parsed.get("limits", {}).get(resource)
        if request is not None and limit is not None and request > limit:
            errors.setdefault("requests", {})[resource] = "Must be less than or equal to the limit"
    return errors or None


def _env_errors(env: Any) -> Any:
    if not isinstance(env, dict):
        return "Must be an object of names to string values"
    if len(env) > MAX_ENV_VARS:
        return f"At most {MAX_ENV_VARS} variables"
    errors = {}
    size = 0
    for key, value in env.items():
        size += len(key.encode("utf-8", "surrogatepass"))
        if not ENV_NAME_RE.fullmatch(key):
            errors[key] = (
                "Invalid name: use letters, digits, '_', '-' or '.', not starting with a digit"
            )
        elif key == "." or key.startswith(".."):
            errors[key] = "Invalid name: must not be '.' or start with '..'"
        elif len(key) > MAX_ENV_NAME:
            errors[key] = f"Name must be at most {MAX_ENV_NAME} characters"
        elif RESERVED_ENV_NAME_RE.fullmatch(key):
            errors[key] = "Names that start and end with '__' are reserved"
        elif not isinstance(value, str | int | float | bool):
            errors[key] = "Value must be a string"
        elif len(text := _env_text(value)) > MAX_ENV_VALUE:
            errors[key] = f"Value must be at most {MAX_ENV_VALUE} characters"
        elif "\x00" in text:
            errors[key] = "Value must not contain NUL characters"
        else:
            size += len(text.encode("utf-8", "surrogatepass"))
    if not errors and size > MAX_ENV_BYTES:
        return f"Names and values must total at most {MAX_ENV_BYTES} bytes (UTF-8)"
    return errors or None


def _whole(value: Any) -> int | None:
    """An integer, as JSON Schema counts them: 600 and 600.0, not 600.5 or true."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def _int_error(value: Any, low: int, high: int) -> str | None:
    number = _whole(value)
    if number is None or not low <= number <= high:
        return f"Must be a whole number from {low} to {high}"
    return None


def _argv_error(value: Any) -> str | None:
    """command or args: a list of strings, as a container takes them."""
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return "Must be a list of strings"
    if len(value) > MAX_ARGV_ITEMS:
        return f"At most {MAX_ARGV_ITEMS} items"
    if any("\x00" in item for item in value):
        return "Items must not contain NUL characters"
    return None


def _argv_size_error(params: dict[str, Any]) -> str | None:
    items = [*(params.get("command") or []), *(params.get("args") or [])]
    size = sum(len(item.encode("utf-8", "surrogatepass")) for item in items)
    if size > MAX_ARGV_BYTES:
        return f"command and args must total at most {MAX_ARGV_BYTES} bytes (UTF-8)"
    return None


def _http_url(value: Any, wrong: str) -> SplitResult | str:
    """An http(s) URL with a host, split; or the error (`wrong` when it is not one at all).
    Where it points is checked by the create, which needs the network."""
    from urllib.parse import urlsplit

    if not isinstance(value, str) or not value:
        return wrong
    if len(value) > MAX_URL or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return f"Must be a URL of at most {MAX_URL} characters, without spaces or controls"
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return "Not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return wrong
    return parts


def _input_zip_error(value: Any) -> str | None:
    if not isinstance(value, str):
        return "Must be a base64 string"
    if not value.strip():
        return "Not a zip: it is empty (leave input_zip out for a job without input)"
    return None


def _input_url_error(value: Any) -> str | None:
    """`gs://BUCKET/OBJECT`, or an http(s) URL with a host (shared/jobs/references.py checks
    where it points)."""
    wrong = "Must be a gs:// or https:// URL"
    if isinstance(value, str) and value.startswith("gs://"):
        if len(value) > MAX_URL or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
            return f"Must be a URL of at most {MAX_URL} characters, without spaces or controls"
        bucket, slash, name = value.removeprefix("gs://").partition("/")
        if not BUCKET_RE.fullmatch(bucket) or not slash or not name:
            return "Must be gs://BUCKET/OBJECT"
        if len(name.encode("utf-8", "surrogatepass")) > MAX_OBJECT_NAME:
            return f"The object name must be at most {MAX_OBJECT_NAME} bytes"
        return None
    parts = _http_url(value, wrong)
    return parts if isinstance(parts, str) else None


def _start_after(value: Any) -> int | str:
    """An RFC 3339 time, or epoch milliseconds: epoch ms, or the error."""
    problem = "Must be an RFC 3339 time (2026-12-01T08:00:00Z) or epoch milliseconds"
    if isinstance(value, str):
        text = value
        if not RFC3339_RE.fullmatch(text):
            return problem + " with a time zone"
        try:
            moment = datetime.datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
        except ValueError:
            return problem
        at = int(moment.timestamp() * 1000)
    else:
        number = _whole(value)
        if number is None or number < 0:
            return problem
        at = number
    if at - now_ms() > MAX_START_AHEAD_MS:
        return "Must be at most 30 days ahead"
    return at


def _bool_error(value: Any) -> str | None:
    return None if isinstance(value, bool) else "Must be true or false"


def _parameter_errors(params: dict[str, Any], max_parallelism: int) -> dict[str, Any]:
    errors: dict[str, Any] = {key: "Unknown field" for key in params if key not in PARAMETERS}
    image = params.get("docker_image")
    if image is None or image == "":
        errors["docker_image"] = REQUIRED
    elif not isinstance(image, str) or not valid_image(image):
        errors["docker_image"] = "Not a valid image reference"
    checks: dict[str, Any] = {
        "environment_variables": _env_errors,
        "resources": _resources_errors,
        "timeout_seconds": lambda v: _int_error(v, 1, MAX_TIMEOUT),
        "retries": lambda v: _int_error(v, 0, MAX_RETRIES),
        "input_zip": _input_zip_error,
        "command": _argv_error,
        "args": _argv_error,
        "input_url": _input_url_error,
        "input_upload": _bool_error,
        "spot": _bool_error,
        "start_after": lambda v: error if isinstance(error := _start_after(v), str) else None,
    }
    for key, check in checks.items():
        if params.get(key) is not None:
            error = check(params[key])
            if error:
                errors[key] = error
    if "command" not in errors and "args" not in errors and (error := _argv_size_error(params)):
        errors["args" if params.get("args") else "command"] = error
    errors.update(_array_errors(params, max_parallelism))
    sources = [key for key in INPUT_SOURCES if params.get(key) not in (None, False, "")]
    if len(sources) > 1:
        for key in sources:
            errors.setdefault(key, f"Give only one of {', '.join(INPUT_SOURCES)}")
    return errors


def _task_environments_error(value: Any) -> Any:
    if not isinstance(value, list) or not value:
        return "Must be a non-empty list of objects of names to string values, one per task"
    if len(value) > MAX_TASKS:
        return f"At most {MAX_TASKS} tasks"
    errors = {str(index): error for index, env in enumerate(value) if (error := _env_errors(env))}
    for index, env in enumerate(value):
        if str(index) in errors:
            continue  # not an object, or a variable refused already
        bad = [key for key in env if not SHELL_NAME_RE.fullmatch(key)]
        if bad:
            errors[str(index)] = {
                key: "Must be a shell variable name: letters, digits, '_'" for key in bad
            }
    if errors:
        return errors
    text = json.dumps(value, ensure_ascii=False)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_TASK_ENVIRONMENTS_BYTES:
        return f"Must total at most {MAX_TASK_ENVIRONMENTS_BYTES} bytes as JSON (UTF-8)"
    return None


def _array_errors(params: dict[str, Any], max_parallelism: int) -> dict[str, Any]:
    """task_count, parallelism, task_environments and max_failed_tasks, alone and together.

    task_environments reach the user's container through a shell that sources them before
    it runs the command (manifests.TASK_ENV_SCRIPT): so they need a `command`, and an image
    with /bin/sh.
    """
    errors: dict[str, Any] = {}
    environments = params.get("task_environments")
    if environments is not None and (error := _task_environments_error(environments)):
        errors["task_environments"] = error
    count = params.get("task_count")
    if count is not None and (error := _int_error(count, 1, MAX_TASKS)):
        errors["task_count"] = error
    if errors:
        return errors
    if count is None and isinstance(environments, list):
        count = len(environments)
    if environments is not None and len(environments) != _whole(count):
        errors["task_environments"] = f"Must hold one object per task: {_whole(count)}"
    if environments is not None and not params.get("command"):
        errors["task_environments"] = (
            "Needs a command: the tasks' variables are set by a shell that then runs it"
        )
    if count is None:
        for key in ("parallelism", "max_failed_tasks"):
            if params.get(key) is not None:
                errors[key] = "Only for array jobs: give task_count"
        return errors
    tasks = _whole(count) or 1
    for key, low in (("parallelism", 1), ("max_failed_tasks", 0)):
        if params.get(key) is None:
            continue
        if error := _int_error(params[key], low, MAX_TASKS):
            errors[key] = error
        elif (_whole(params[key]) or 0) > tasks:
            errors[key] = f"{TASK_COUNT_BOUND} ({tasks})"
        elif key == "parallelism" and (_whole(params[key]) or 0) > max_parallelism:
            limit = f"{PARALLELISM_BOUND} ({max_parallelism})"
            errors[key] = f"{limit}: the most tasks one job may run at once here"
    return errors


def validate_create(body: Any, *, max_parallelism: int = DEFAULT_MAX_PARALLELISM) -> JobRequest:
    """The request, checked; InvalidParameters with every field's error otherwise.
    `max_parallelism` is the installation's MAX_PARALLELISM."""
    if not isinstance(body, dict):
        raise InvalidParameters("Request body must be a JSON object", data="")
    errors = _body_errors(body, max_parallelism)
    if errors:
        raise InvalidParameters(data=errors)
    params = body["job_parameters"]
    kept, scheduled_for, environments = _kept_parameters(params, max_parallelism)
    request_id = body.get("request_id")
    return JobRequest(
        name=body.get("name") or None,
        account_id=body.get("account_id"),
        job_parameters=kept,
        input_zip=params.get("input_zip") or None,
        scheduled_for=scheduled_for,
        callback_url=body.get("callback_url"),
        request_id=_uuid(request_id) if request_id is not None else None,
        fingerprint=fingerprint(body) if request_id is not None else "",
        task_environments=environments,
    )


def _body_errors(body: dict[str, Any], max_parallelism: int) -> dict[str, Any]:
    """Each field's error, by field (job_parameters' by parameter); empty when none."""
    errors: dict[str, Any] = {key: "Unknown field" for key in body if key not in TOP_LEVEL}
    # The earlier API's own sample request sends "status": "created", and its test client
    # "status": null (the default); anything else would be a client trying to set a status.
    if body.get("status") not in (None, "created"):
        errors["status"] = "Read-only field"
    name = body.get("name")
    if name is not None and name != "":
        error = "Must be a string" if not isinstance(name, str) else name_error(name)
        if error:
            errors["name"] = error
    account_id = body.get("account_id")
    if account_id is not None and (
        not isinstance(account_id, str) or not 0 < len(account_id) <= MAX_ACCOUNT_ID
    ):
        errors["account_id"] = f"Must be a string of 1 to {MAX_ACCOUNT_ID} characters"
    callback_url = body.get("callback_url")
    if callback_url is not None and (error := _callback_url_error(callback_url)):
        errors["callback_url"] = error
    request_id = body.get("request_id")
    if request_id is not None and _uuid(request_id) is None:
        errors["request_id"] = "Must be a UUID, e.g. 0f2b8c1e-4a8e-4c5e-9a57-1c2d3e4f5a6b"
    params = body.get("job_parameters")
    if params is None:
        errors["job_parameters"] = {"docker_image": REQUIRED}
    elif not isinstance(params, dict):
        errors["job_parameters"] = "Must be an object"
    elif param_errors := _parameter_errors(params, max_parallelism):
        errors["job_parameters"] = param_errors
    return errors


def _kept_parameters(
    params: dict[str, Any], max_parallelism: int
) -> tuple[dict[str, Any], int | None, list[dict[str, str]] | None]:
    """The checked job_parameters as the record keeps them, when the job is scheduled for
    (None: at once), and an array job's task environments."""
    kept = {key: value for key, value in params.items() if key != "input_zip" and value is not None}
    for flag in ("input_upload", "spot"):
        if kept.get(flag) is False:
            del kept[flag]  # false is the default: the record says only what differs
    scheduled_for = None
    if "start_after" in kept:
        at = _start_after(kept["start_after"])
        assert isinstance(at, int)
        scheduled_for = at if at > now_ms() else None
    environments = kept.pop("task_environments", None)
    if environments is not None:
        kept.setdefault("task_count", len(environments))
        environments = [_env_strings(env) for env in environments]
    if "task_count" in kept:
        most = min(DEFAULT_PARALLELISM, max_parallelism)
        kept.setdefault("parallelism", min(_whole(kept["task_count"]) or 1, most))
        kept.setdefault("max_failed_tasks", 0)
    for key in ("timeout_seconds", "retries", *ARRAY_FIELDS[:2], "max_failed_tasks"):
        if key in kept:
            kept[key] = _whole(kept[key])
    if "environment_variables" in kept:
        kept["environment_variables"] = _env_strings(kept["environment_variables"])
    return kept, scheduled_for, environments


def _env_strings(env: dict[str, Any]) -> dict[str, str]:
    return {key: val if isinstance(val, str) else _env_text(val) for key, val in env.items()}


def _callback_url_error(value: Any) -> str | None:
    """An https (or, where allowed, http) URL with a host and no credentials."""
    parts = _http_url(value, "Must be an https:// URL")
    if isinstance(parts, str):
        return parts
    if parts.username is not None or parts.password is not None:
        return "Must not hold credentials: the body is signed with CALLBACK_SECRET"
    return None


def _uuid(value: Any) -> str | None:
    """The UUID in its one textual form (8-4-4-4-12 hex digits, any case), lowercased."""
    if not isinstance(value, str) or not UUID_RE.fullmatch(value):
        return None
    return str(uuid.UUID(value))


def fingerprint(body: dict[str, Any]) -> str:
    """sha256 of the body as canonical JSON (keys sorted, no spaces), `request_id` left out:
    a repeat is the same request whatever the order of its keys or the spelling of its id."""
    rest = {key: value for key, value in body.items() if key != "request_id"}
    text = json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def derived_name(image: str, created_ms: int) -> str:
    """`<slug of the whole image reference>-<created ms>`, as the earlier model derived a
    blank name (python-slugify: lowercase, each run of anything but [a-z0-9] one `-`,
    trimmed). A slug too long for the name limit is cut, never the timestamp, so the name
    is a valid Kubernetes name. Two creates in one millisecond derive the same name: see
    derived_names."""
    slug = re.sub(r"[^a-z0-9]+", "-", image.lower()).strip("-") or "job"
    suffix = f"-{created_ms}"
    return slug[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def derived_names(image: str, created_ms: int) -> Iterator[str]:
    """The names a create without one tries in turn, each taken only if no job has it:
    derived_name at `created_ms`, then at later milliseconds.

    After the k-th taken name the next is 1 to 2**k ms further on, chosen at random, so
    that many creates of one millisecond spread out instead of all trying the same next
    millisecond again: 50 at once need about 10 tries at worst and stay within half a
    second of their creation time. Ends after MAX_DERIVED_NAMES names."""
    moment = created_ms
    for attempt in range(MAX_DERIVED_NAMES):
        yield derived_name(image, moment)
        moment += 1 + random.randrange(2**attempt)
