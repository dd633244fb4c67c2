"""The project's errors. Adapters wrap library exceptions into these (`raise ... from e`);
the HTTP layer turns an `ApiError` into the envelope and status code in one place."""

from __future__ import annotations

from typing import Any

MAX_UPSTREAM_BODY = 2000  # characters of an upstream error body kept in logs and responses


def cut(text: str, limit: int = MAX_UPSTREAM_BODY) -> str:
    return text if len(text) <= limit else text[:limit] + "...[cut]"


# --- what a client sees -----------------------------------------------------------------


class ApiError(Exception):
    """An error answered in the envelope: {data, error, msg, result: false}."""

    status_code = 500
    error = "InternalError"

    def __init__(self, msg: str = "", data: Any = "") -> None:
        super().__init__(msg or self.error)
        self.msg = msg
        self.data = data
        self.headers: dict[str, str] = {}


class InvalidParameters(ApiError):  # noqa: N818 - the earlier API's error name
    status_code = 400
    error = "InvalidParameters"


class Unauthenticated(ApiError):  # noqa: N818 - reads as the answer it is
    """No identity token, or one that does not verify: who is calling is unknown."""

    status_code = 401
    error = "Unauthenticated"

    def __init__(self, msg: str) -> None:
        super().__init__(msg)
        self.headers["WWW-Authenticate"] = 'Bearer realm="ktr"'


class Forbidden(ApiError):  # noqa: N818 - reads as the answer it is
    """The caller is known, and its roles do not allow this on the account named."""

    status_code = 403
    error = "Forbidden"


class NotFound(ApiError):  # noqa: N818 - reads as the answer it is
    """No such route: the earlier API had no envelope for it at all."""

    status_code = 404
    error = "NotFound"


class DoesNotExist(ApiError):  # noqa: N818 - the earlier API's error name
    """No job has this id (or the id is no UUID), worded as the earlier views put it."""

    status_code = 404
    error = "DoesNotExist"

    def __init__(self, job_id: str) -> None:
        super().__init__(msg=f"Batch job {job_id} not found.")


class NoSuchAccount(ApiError):  # noqa: N818 - reads as the answer it is
    """No account has this id, or the caller is none of its members: the same answer."""

    status_code = 404
    error = "DoesNotExist"

    def __init__(self, account_id: str) -> None:
        super().__init__(msg=f"Account {account_id} not found.")


class MethodNotAllowed(ApiError):  # noqa: N818
    """Carries the methods the path does serve: a 405 must name them in `Allow` (RFC 9110)."""

    status_code = 405
    error = "MethodNotAllowed"

    def __init__(self, msg: str = "", data: Any = "", *, allowed: tuple[str, ...] = ()) -> None:
        super().__init__(msg, data)
        self.headers["Allow"] = ", ".join(allowed)


class PayloadTooLarge(ApiError):  # noqa: N818
    status_code = 413
    error = "PayloadTooLarge"


class Conflict(ApiError):  # noqa: N818 - reads as the answer it is
    """A `request_id` already used, within its 24 h, by a request with a different body."""

    status_code = 409
    error = "Conflict"


class Unavailable(ApiError):  # noqa: N818
    """The health check: a dependency failed or did not answer in time."""

    status_code = 503
    error = "Unavailable"


class ClusterError(ApiError):
    status_code = 500
    error = "ClusterError"


class StorageError(ApiError):
    status_code = 503
    error = "StorageError"


class DatabaseError(ApiError):
    status_code = 503
    error = "DatabaseError"


class ConfigurationError(ApiError):
    """The service is deployed in a way that cannot work (say, it cannot sign URLs): a
    retry will not help, an operator must."""

    status_code = 500
    error = "ConfigurationError"


# --- adapter boundaries -----------------------------------------------------------------


class ClusterApiError(Exception):
    """The Kubernetes API answered with an error (or could not be reached)."""

    def __init__(self, status: int, reason: str, body: Any, action: str) -> None:
        super().__init__(f"{action}: {status} {reason}")
        self.status = status
        self.reason = reason
        self.body = body  # the API's Status object, as a dict when it was JSON
        self.action = action

    @property
    def transient(self) -> bool:
        return self.status in (0, 429) or self.status >= 500


class ClusterNotFoundError(ClusterApiError):
    pass


class ClusterConflictError(ClusterApiError):
    pass


class StoreError(Exception):
    """Firestore failed or could not be reached."""


class TransitionRefusedError(Exception):
    """The job's current status does not allow the requested change."""

    def __init__(self, job_id: str, current: str, target: str) -> None:
        super().__init__(f"job {job_id}: {current} -> {target} is not allowed")
        self.job_id = job_id
        self.current = current
        self.target = target


class BucketError(Exception):
    """Cloud Storage failed or could not be reached."""


class SigningError(BucketError):
    """The credentials cannot sign a URL (no key, no service account for IAM signBlob)."""


class SigningUnavailableError(SigningError):
    """The services that sign a URL (the metadata server, IAM) did not answer in time."""
