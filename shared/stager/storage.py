"""The Cloud Storage side of the stager: the client, the input download, and an upload sink
that finalizes the output object once, complete, and never over another object.

google.cloud.storage is imported inside the functions: `--help` and usage errors do not pay
for it. Library errors leave this module as the stager's own (errors.py).
"""

from __future__ import annotations

import contextlib
import http.client
import io
import logging
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from shared.stager.config import Credentials
from shared.stager.errors import (
    InputMissing,
    StagerError,
    StorageRefusedError,
    TransientStorageError,
)

if TYPE_CHECKING:
    from google.api_core.retry import Retry
    from google.cloud.storage import Blob, Client

log = logging.getLogger(__name__)

ZIP_CONTENT_TYPE = "application/zip"
# Up to this size the whole zip goes up in one multipart request; beyond it, one resumable
# session. Either way the object is created once, when the last byte is in.
SINGLE_REQUEST_MAX = 8 * 1024 * 1024
REQUEST_TIMEOUT = (10, 120)  # connect, read: seconds
_TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class PreconditionFailed(StagerError):  # noqa: N818 - the HTTP status it stands for
    """The output object already exists (ifGenerationMatch=0 failed)."""


def make_client(credentials: Credentials) -> Client:
    """Emulator (anonymous) > key file from a Secret > Application Default Credentials."""
    from google.cloud import storage

    try:
        if credentials.emulator_host:
            from google.auth.credentials import AnonymousCredentials

            return storage.Client(
                project=credentials.project or "local",
                credentials=AnonymousCredentials(),
                client_options={"api_endpoint": credentials.emulator_host},
            )
        if credentials.key_file:
            return storage.Client.from_service_account_json(
                credentials.key_file, project=credentials.project
            )
        # On GKE, Workload Identity: the pod's service account, no key anywhere.
        return storage.Client(project=credentials.project)
    except Exception as error:
        raise translate(error, "create the storage client") from error


def retry_policy(deadline: float) -> Retry:
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(deadline)


def _status(error: BaseException) -> int | None:
    from google.api_core import exceptions as api_exceptions
    from google.cloud.storage.exceptions import InvalidResponse

    if isinstance(error, api_exceptions.GoogleAPICallError) and error.code is not None:
        return int(error.code)
    if isinstance(error, InvalidResponse):
        return int(error.response.status_code)
    return None


def _transient(error: BaseException) -> bool:
    import requests
    import urllib3
    from google.api_core import exceptions as api_exceptions
    from google.auth import exceptions as auth_exceptions

    if isinstance(error, api_exceptions.RetryError):
        return True  # the in-process retries gave up on a retryable error
    if isinstance(error, auth_exceptions.TransportError | auth_exceptions.RefreshError):
        # The GKE metadata server can lag at pod start; a new attempt usually gets a token.
        return True
    transient_types = (
        ConnectionError,
        TimeoutError,
        requests.ConnectionError,
        requests.Timeout,
        requests.exceptions.ChunkedEncodingError,
        http.client.HTTPException,
        urllib3.exceptions.HTTPError,
    )
    return isinstance(error, transient_types) or _status(error) in _TRANSIENT_STATUS


def translate(error: BaseException, action: str) -> StagerError:
    """The stager's error for a library error; the message says what was being done."""
    if isinstance(error, StagerError):
        return error
    status = _status(error)
    detail = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    if _transient(error):
        return TransientStorageError(f"could not {action}: {detail}")
    if status == 412:
        return PreconditionFailed(f"could not {action}: the object already exists")
    return StorageRefusedError(f"could not {action}: {detail}")


@contextlib.contextmanager
def storage_errors(action: str) -> Iterator[None]:
    try:
        yield
    except StagerError:
        raise
    except Exception as error:
        raise translate(error, action) from error


def download(client: Client, bucket: str, name: str, dest: IO[bytes], *, retry: Retry) -> int:
    """Write the object's bytes to `dest`; its size. A missing object is InputMissing."""
    from google.api_core.exceptions import NotFound

    blob = client.bucket(bucket).blob(name)
    try:
        with storage_errors(f"download gs://{bucket}/{name}"):
            blob.download_to_file(dest, retry=retry, timeout=REQUEST_TIMEOUT)
    except StorageRefusedError as error:
        if isinstance(error.__cause__, NotFound):
            raise InputMissing(f"gs://{bucket}/{name} does not exist") from error
        raise
    return dest.tell()


def existing_job_id(client: Client, bucket: str, name: str, *, retry: Retry) -> str | None:
    """None if the object does not exist, else the job id in its metadata ('' if none)."""
    with storage_errors(f"read gs://{bucket}/{name}"):
        blob = client.bucket(bucket).get_blob(name, retry=retry, timeout=REQUEST_TIMEOUT)
    if blob is None:
        return None
    return str((blob.metadata or {}).get("job-id", ""))


class UploadSink(io.RawIOBase):
    """A write-only stream that becomes one object, created only by `finish()`.

    Holds up to SINGLE_REQUEST_MAX bytes; past that it streams through one resumable
    session in `chunk_size` pieces. Both requests carry ifGenerationMatch=0, so a retried
    cleanup can never replace an object, ours or another job's. `close()` (also called by
    ZipFile and the garbage collector) never finalizes anything.
    """

    def __init__(
        self, blob: Blob, *, chunk_size: int, retry: Retry, metadata: dict[str, str]
    ) -> None:
        super().__init__()
        self._blob = blob
        self._blob.metadata = metadata
        self._chunk_size = chunk_size
        self._retry = retry
        self._head = bytearray()
        self._writer: Any = None
        self._position = 0
        self._failed: StagerError | None = None
        self.resumable = False

    def writable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        """Nothing to do: a resumable session cannot be flushed without finalizing."""

    def write(self, data: Any) -> int:
        if self._failed is not None:
            # ZipFile.close() writes its central directory even after a failed write.
            raise self._failed
        size = len(data)
        try:
            if self._writer is not None:
                with storage_errors(f"upload {self._blob.name}"):
                    self._writer.write(data)
            else:
                self._head += data
                if len(self._head) > SINGLE_REQUEST_MAX:
                    self._start_resumable()
        except StagerError as error:
            self._failed = error
            raise
        self._position += size
        return size

    def _start_resumable(self) -> None:
        with storage_errors(f"start uploading {self._blob.name}"):
            self._writer = self._blob.open(
                "wb",
                chunk_size=self._chunk_size,
                ignore_flush=True,
                retry=self._retry,
                if_generation_match=0,
                content_type=ZIP_CONTENT_TYPE,
                timeout=REQUEST_TIMEOUT,
            )
            self.resumable = True
            head, self._head = self._head, bytearray()
            self._writer.write(head)

    def finish(self) -> None:
        """Send what is left and finalize the object (the one finalize event)."""
        if self._failed is not None:
            raise self._failed
        with storage_errors(f"upload {self._blob.name}"):
            if self._writer is not None:
                self._writer.close()
            else:
                self._blob.upload_from_string(
                    bytes(self._head),
                    content_type=ZIP_CONTENT_TYPE,
                    if_generation_match=0,
                    retry=self._retry,
                    timeout=REQUEST_TIMEOUT,
                )

    def abort(self) -> None:
        """Cancel an unfinished resumable session; the object is never created."""
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.terminate()
        self._head = bytearray()
