"""Exit codes and errors of the stager, in one place: the job API imports `ExitCode` to read
a failed init container or cleanup job, and to write the Job's podFailurePolicy."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What the stager's exit status tells the sync (values from BSD sysexits.h)."""

    OK = 0  # done, or already done by an earlier attempt of the same job
    FAILURE = 1  # unexpected: a bug, or a misconfiguration such as a denied bucket
    USAGE = 64  # EX_USAGE: bad or missing arguments / environment
    INPUT_REJECTED = 65  # EX_DATAERR: unsafe or oversized zip, unarchivable output; not retried
    INPUT_MISSING = 66  # EX_NOINPUT: the input object is not in the bucket; retrying won't help
    OUTPUT_CONFLICT = 73  # EX_CANTCREAT: the output object exists and belongs to another job
    TRANSIENT = 75  # EX_TEMPFAIL: timeout, 429, 5xx, connection error; the Job's backoff retries

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


class OutputRejected(InputRejected):  # noqa: N818
    """The job's output cannot be archived as asked (for example an unreadable file)."""

    label = "output rejected"


class InputMissing(StagerError):  # noqa: N818
    exit_code = ExitCode.INPUT_MISSING
    label = "input missing"


class OutputConflictError(StagerError):
    exit_code = ExitCode.OUTPUT_CONFLICT
    label = "output conflict"


class TransientStorageError(StagerError):
    exit_code = ExitCode.TRANSIENT
    label = "storage unavailable"


class StorageRefusedError(StagerError):
    """Cloud Storage refused the request for a reason a retry is unlikely to fix (401, 403,
    404 bucket): a deployment problem rather than the user's."""

    label = "storage error"
