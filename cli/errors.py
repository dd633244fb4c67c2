"""What the command line reports instead of a traceback, and the exit code of each."""

from __future__ import annotations

from typing import Any

# Exit codes (CONVENTIONS.md): 0 done, 1 the job failed, 2 killed, 3 usage or API errors.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_KILLED = 2
EXIT_ERROR = 3


class CliError(Exception):
    """A one-line message for the user, and the exit code it ends the command with."""

    exit_code = EXIT_ERROR

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def as_json(self) -> dict[str, Any]:
        return {"error": "CliError", "msg": self.message}


class ApiError(CliError):
    """The API answered with an error envelope: its `error`, `msg` and the fields at fault."""

    def __init__(self, status: int, error: str, msg: str, data: Any) -> None:
        self.status = status
        self.error = error or f"HTTP {status}"
        self.msg = msg
        self.data = data
        self.fields = flatten_fields(data)
        head = f"{self.error}: {msg}" if msg else self.error
        super().__init__(head)

    def as_json(self) -> dict[str, Any]:
        return {"error": self.error, "msg": self.msg, "status": self.status, "fields": self.fields}


def flatten_fields(data: Any, prefix: str = "") -> dict[str, str]:
    """The API's nested field errors as dotted paths: `job_parameters.resources.limits.memory`."""
    if not isinstance(data, dict):
        return {prefix: str(data)} if prefix and data not in ("", None) else {}
    flat: dict[str, str] = {}
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            flat.update(flatten_fields(value, path))
        elif isinstance(value, list):
            flat[path] = "; ".join(str(item) for item in value)
        else:
            flat[path] = str(value)
    return flat
