"""The Cloud Storage adapter: job input and output objects, and the output's URL."""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import quote

from shared.errors import BucketError
from shared.settings import Settings

if TYPE_CHECKING:
    from google.cloud import storage

T = TypeVar("T")
log = logging.getLogger(__name__)
UNSIGNED_RETRY_MS = 5 * 60 * 1000


class ObjectExistsError(BucketError):
    """The object is already there and was not overwritten."""


def storage_client(settings: Settings) -> storage.Client:
    """Emulator (STORAGE_EMULATOR_HOST), a key file (GC_CREDENTIALS_FILE_PATH), or ADC."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=settings.project or "local", credentials=AnonymousCredentials()
        )
    if settings.credentials_file:
        return storage.Client.from_service_account_json(
            settings.credentials_file, project=settings.project
        )
    return storage.Client(project=settings.project)


def _wrap(action: str, call: Callable[[], T]) -> T:
    from google.api_core import exceptions
    from google.auth.exceptions import TransportError
    from requests import RequestException

    try:
        return call()
    except exceptions.PreconditionFailed as error:
        raise ObjectExistsError(f"{action}: the object already exists") from error
    except (exceptions.GoogleAPIError, RequestException, TransportError) as error:
        raise BucketError(f"{action}: {error}") from error


class Bucket:
    def __init__(self, client: storage.Client, name: str) -> None:
        self.client = client
        self.name = name
        self.bucket = client.bucket(name)

    def upload_input(self, object_name: str, data: bytes, job_id: str) -> None:
        """Upload a job's input zip; never overwrites an existing object."""
        blob = self.bucket.blob(object_name)
        blob.metadata = {"job-id": job_id}
        _wrap(
            f"uploading {object_name}",
            lambda: blob.upload_from_string(
                data, content_type="application/zip", if_generation_match=0
            ),
        )

    def delete(self, object_name: str) -> bool:
        from google.api_core import exceptions

        try:
            _wrap(f"deleting {object_name}", lambda: self.bucket.blob(object_name).delete())
        except BucketError as error:
            if isinstance(error.__cause__, exceptions.NotFound):
                return False
            raise
        return True

    def metadata(self, object_name: str) -> dict[str, Any] | None:
        """The object's metadata (job-id, ...) if it exists, else None."""
        blob = _wrap(f"reading {object_name}", lambda: self.bucket.get_blob(object_name))
        if blob is None:
            return None
        return dict(blob.metadata or {})

    def output_url(self, object_name: str, lifetime: int) -> tuple[str, int | None]:
        """A URL the caller can fetch, and when it expires (epoch ms; None = never).

        A V4 signed URL when the credentials can sign (a key file, or the function's
        service account through the IAM signBlob API); otherwise, against the emulator,
        its download URL.
        """
        emulator = os.environ.get("STORAGE_EMULATOR_HOST")
        if emulator:
            path = f"/download/storage/v1/b/{self.name}/o/{quote(object_name, safe='')}"
            return f"{emulator.rstrip('/')}{path}?alt=media", None
        expires_ms = int((datetime.datetime.now(datetime.UTC).timestamp() + lifetime) * 1000)
        blob = self.bucket.blob(object_name)
        expiration = datetime.timedelta(seconds=lifetime)
        credentials = self.client._credentials  # noqa: SLF001 - the client's own credentials
        if hasattr(credentials, "sign_bytes") and getattr(credentials, "signer", None):
            url = _wrap(
                "signing the output URL",
                lambda: blob.generate_signed_url(version="v4", expiration=expiration),
            )
            return url, expires_ms

        def sign_with_iam() -> str:
            import google.auth.transport.requests

            if not credentials.valid:
                credentials.refresh(google.auth.transport.requests.Request())
            return str(
                blob.generate_signed_url(
                    version="v4",
                    expiration=expiration,
                    service_account_email=credentials.service_account_email,
                    access_token=credentials.token,
                )
            )

        try:
            return _wrap("signing the output URL", sign_with_iam), expires_ms
        except (BucketError, AttributeError) as error:
            # No way to sign (say, user credentials): an authenticated download URL, and
            # another try at signing in a few minutes.
            log.warning("cannot sign the output URL: %s", error)
            plain = f"https://storage.googleapis.com/{self.name}/{quote(object_name)}"
            return plain, int(
                datetime.datetime.now(datetime.UTC).timestamp() * 1000
            ) + UNSIGNED_RETRY_MS
