"""The stager's errors. The exit codes, and the errors the job API shares with the stager
(a refused zip, a usage error), are in shared/contract/exits.py."""

from __future__ import annotations

from shared.contract.exits import ExitCode, InputRejected, StagerError


class OutputRejected(InputRejected):  # noqa: N818
    """The job's output cannot be archived as asked (for example an unreadable file)."""

    label = "output rejected"


class InputMissing(StagerError):  # noqa: N818
    exit_code = ExitCode.INPUT_MISSING
    label = "input missing"


class OutputConflictError(StagerError):
    """The output object cannot be created from this attempt; no retry can change that."""

    exit_code = ExitCode.OUTPUT_CONFLICT
    label = "output conflict"


class OutputExistsError(OutputConflictError):
    """Cloud Storage already holds the output object (the session's ifGenerationMatch=0)."""

    label = "output exists"


class UploadSessionError(OutputConflictError):
    """The upload session is gone (expired, cancelled, finished) or refuses this upload."""

    label = "upload session unusable"


class MixedAttemptsError(OutputConflictError):
    """The session holds bytes that are not this attempt's: an earlier attempt's zip."""

    label = "output conflict"


class TransientStorageError(StagerError):
    exit_code = ExitCode.TRANSIENT
    label = "storage unavailable"


class ProtocolError(StagerError):
    """Cloud Storage answered something the upload protocol does not allow (exit 1)."""

    label = "unexpected storage answer"
