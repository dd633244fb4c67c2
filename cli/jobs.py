"""A create's body from a JobSpec, and what a job's record says about its end."""

from __future__ import annotations

import time
from typing import Any

from cli.errors import EXIT_ERROR, EXIT_FAILED, EXIT_KILLED, EXIT_OK
from cli.params import JobSpec, task_environments

FINAL = ("succeeded", "failed", "killed")
EXIT_CODES = {"succeeded": EXIT_OK, "failed": EXIT_FAILED, "killed": EXIT_KILLED}
# For `ktr wait` over several jobs: the exit code of the worst one. An error (a job that
# cannot be read) is worse than a failure, and a failure is worse than a kill, which
# someone asked for.
SEVERITY = {EXIT_OK: 0, EXIT_KILLED: 1, EXIT_FAILED: 2, EXIT_ERROR: 3}

# Where a field the API refuses came from on the command line.
OPTION_OF_FIELD = {
    "name": "--name",
    "account_id": "--account",
    "job_parameters.docker_image": "--image",
    "job_parameters.environment_variables": "--env",
    "job_parameters.resources.limits.cpu": "--cpu",
    "job_parameters.resources.limits.memory": "--memory",
    "job_parameters.timeout_seconds": "--timeout",
    "job_parameters.retries": "--retries",
    "job_parameters.start_after": "--start-after",
    "job_parameters.command": "the command after --",
    "job_parameters.input_zip": "the input",
    "job_parameters.task_environments": "--params",
}


def option_of(field: str) -> str | None:
    if field.startswith("job_parameters.environment_variables"):
        return "--env"
    return OPTION_OF_FIELD.get(field)


def create_body(spec: JobSpec, *, input_zip: str | None, upload: bool) -> dict[str, Any]:
    params: dict[str, Any] = {"docker_image": spec.image}
    if spec.command:
        params["command"] = list(spec.command)
    if spec.env:
        params["environment_variables"] = dict(spec.env)
    limits = {key: value for key, value in (("cpu", spec.cpu), ("memory", spec.memory)) if value}
    if limits:
        params["resources"] = {"limits": limits}
    if spec.timeout is not None:
        params["timeout_seconds"] = spec.timeout
    if spec.retries is not None:
        params["retries"] = spec.retries
    if spec.spot:
        params["spot"] = True
    if spec.start_after:
        text = spec.start_after.strip()
        params["start_after"] = int(text) if text.isdigit() else text
    if input_zip is not None:
        params["input_zip"] = input_zip
    if upload:
        params["input_upload"] = True
    params.update(task_environments(spec))
    body: dict[str, Any] = {"job_parameters": params}
    if spec.name:
        body["name"] = spec.name
    if spec.account:
        body["account_id"] = spec.account
    return body


def exit_code(job: dict[str, Any]) -> int:
    return EXIT_CODES.get(str(job.get("status")), EXIT_ERROR)


def worst(codes: list[int]) -> int:
    return max(codes, key=lambda code: SEVERITY.get(code, 3), default=EXIT_OK)


def now_ms() -> int:
    return int(time.time() * 1000)
