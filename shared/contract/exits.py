"""The stager's exit codes, and the errors that carry them: the job API reads a failed
stager container by its code, and writes the Job's podFailurePolicy from them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the stager's exit status tells the sync (values from BSD sysexits.h)."""

    OK = 0  # done, or already done by an earlier attempt of the same job
    FAILURE = 1  # unexpected: a bug, or an answer the stager does not understand
    USAGE = 64  # EX_USAGE: bad or missing arguments / environment
    INPUT_REJECTED = 65  # EX_DATAERR: unsafe or oversized input zip, unarchivable output
    INPUT_MISSING = 66  # EX_NOINPUT: the input URL reads no object (404, bad or expired URL)
    # EX_CANTCREAT: the output object cannot be created from this attempt: it already exists
    # (412), the upload session is gone or refused (404, 410, 400, 403), or the session
    # holds bytes of an earlier attempt's zip.
    OUTPUT_CONFLICT = 73
    TRANSIENT = 75  # EX_TEMPFAIL: timeout, 429, 5xx, connection errors past the retry time

    @property
    def retryable(self) -> bool:
        """Whether another attempt may succeed (the podFailurePolicy fails the Job otherwise)."""
        return self in (ExitCode.FAILURE, ExitCode.TRANSIENT)


# Codes after which the Job should fail at once (podFailurePolicy action FailJob).
PERMANENT_CODES: tuple[int, ...] = tuple(
    int(code) for code in ExitCode if code is not ExitCode.OK and not code.retryable
)


class StagerError(Exception):
    """An expected failure: its message is the one line printed on stderr."""

    exit_code = ExitCode.FAILURE
    label = "failed"


class UsageError(StagerError):
    exit_code = ExitCode.USAGE
    label = "usage error"


class InputRejected(StagerError):  # noqa: N818 - named for what the user is told
    """The data is refused as it is: a retry with the same data fails the same way."""

    exit_code = ExitCode.INPUT_REJECTED
    label = "input rejected"
